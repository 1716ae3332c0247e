"""Payment history (`/billing/history`, `/billing/history.csv`) over real HTTP on a real PostgreSQL."""

from __future__ import annotations

import csv
import html
import io
import re
from collections.abc import AsyncIterator, Awaitable, Callable
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
import pytest

from app.auth.tables import User
from app.billing.tables import PaymentTransaction
from tests.conftest import sign_in

Client = httpx.AsyncClient

BASE_TIME = datetime(2026, 11, 23, 12, 0, tzinfo=UTC)
ROW_ID = re.compile(r'data-payment-id="(\d+)"')


async def signed_in_user(client: Client, subject: str) -> User:
    response = await sign_in(client, subject)
    assert response.status_code == 303, response.text
    user = await User.objects().get(User.subject == subject)
    assert user is not None
    return user


async def seed_payments(user_id: int, count: int, prefix: str, *, tie_group: int = 3) -> None:
    """`count` payments for `user_id`; every `tie_group` consecutive payments share one timestamp.

    Status by `g % 10`: 0 failed, 1 pending, 2 refunded, 3 partially refunded, else succeeded.
    Every fifth payment is in JPY (a zero-decimal currency).
    """
    await PaymentTransaction.raw(
        """
        INSERT INTO payment_transaction (
            user_id, stripe_payment_intent_id, stripe_customer_id, amount_cents, amount_refunded_cents,
            currency, status, payment_method, payment_method_last4, description, failure_reason, metadata,
            hosted_invoice_url, invoice_pdf_url, receipt_url, created_at, updated_at)
        SELECT {}, {} || g, 'cus_' || {}, 1000 + g,
               CASE g % 10 WHEN 2 THEN 1000 + g WHEN 3 THEN 100 ELSE 0 END,
               CASE WHEN g % 5 = 4 THEN 'jpy' ELSE 'usd' END,
               CASE g % 10 WHEN 0 THEN 'failed' WHEN 1 THEN 'pending' WHEN 2 THEN 'refunded'
                           WHEN 3 THEN 'partially_refunded' ELSE 'succeeded' END,
               'visa', '4242', 'Pro plan #' || g,
               CASE WHEN g % 10 = 0 THEN 'Your card was declined.' END, jsonb_build_object(),
               'https://invoice.example/i/' || g, 'https://invoice.example/i/' || g || '.pdf',
               'https://pay.example/r/' || g,
               {}::timestamptz - (g / {}) * interval '1 hour', now()
        FROM generate_series(1, {}) AS g
        """,
        user_id,
        f"pi_{prefix}_",
        prefix,
        BASE_TIME,
        tie_group,
        count,
    )


async def expected_ids(user_id: int, where: str = "true", *args: Any) -> list[int]:
    rows = await PaymentTransaction.raw(
        f"SELECT id FROM payment_transaction WHERE user_id = {{}} AND {where} ORDER BY created_at DESC, id DESC",
        user_id,
        *args,
    )
    return [r["id"] for r in rows]


def row_ids(page_html: str) -> list[int]:
    return [int(i) for i in ROW_ID.findall(page_html)]


def pager_link(page_html: str, rel: str) -> str | None:
    match = re.search(rf'rel="{rel}"[^>]*? href="([^"]+)"', page_html)
    return html.unescape(match.group(1)) if match else None


async def get_ok(client: Client, url: str, **kwargs: Any) -> str:
    response = await client.get(url, follow_redirects=False, **kwargs)
    assert response.status_code == 200, (url, response.status_code, response.text[:500])
    return response.text


async def walk(client: Client, start_url: str) -> tuple[list[int], list[int], int]:
    """Follow "Next" to the end, then "Previous" back to the start.

    Returns (ids forward, ids backward in page-by-page newest-first order, number of pages).
    """
    forward: list[list[int]] = []
    url: str | None = start_url
    last_html = ""
    while url:
        last_html = await get_ok(client, url)
        forward.append(row_ids(last_html))
        url = pager_link(last_html, "next")
    backward: list[list[int]] = [row_ids(last_html)]
    url = pager_link(last_html, "prev")
    while url:
        page_html = await get_ok(client, url, headers={"HX-Request": "true"})
        backward.insert(0, row_ids(page_html))
        url = pager_link(page_html, "prev")
    assert backward == forward, "paging back must give exactly the pages seen going forward"
    return [i for p in forward for i in p], [i for p in backward for i in p], len(forward)


async def test_walking_all_pages_forward_and_back_visits_every_row_once(client: Client) -> None:
    alice = await signed_in_user(client, "alice")
    await seed_payments(alice.id, 1000, "a", tie_group=7)
    want = await expected_ids(alice.id)
    for size in (25, 50):
        forward, backward, pages = await walk(client, f"/billing/history?size={size}")
        assert forward == want and backward == want
        assert len(set(forward)) == 1000
        assert pages == 1000 // size


async def test_first_page_is_the_newest_ten_with_no_previous_link(client: Client) -> None:
    alice = await signed_in_user(client, "alice")
    await seed_payments(alice.id, 30, "a")
    page_html = await get_ok(client, "/billing/history")
    assert row_ids(page_html) == (await expected_ids(alice.id))[:10]
    assert pager_link(page_html, "prev") is None and pager_link(page_html, "next")
    assert '<caption class="sr-only">Your payments, newest first</caption>' in page_html
    assert '<th role="columnheader" scope="col">Date</th>' in page_html


async def test_filters_and_csv_agree_with_the_page(client: Client) -> None:
    alice = await signed_in_user(client, "alice")
    await seed_payments(alice.id, 1000, "a")
    start, end = "2026-11-12", "2026-11-20"
    lower, upper = datetime(2026, 11, 12, tzinfo=UTC), datetime(2026, 11, 21, tzinfo=UTC)
    want = await expected_ids(
        alice.id,
        "status IN ('refunded', 'partially_refunded') AND created_at >= {} AND created_at < {}",
        lower,
        upper,
    )
    assert 50 < len(want) < 200
    forward, _, _ = await walk(client, f"/billing/history?status=refunded&from={start}&to={end}&size=25")
    assert forward == want
    first = await get_ok(client, f"/billing/history?status=refunded&from={start}&to={end}")
    next_link = pager_link(first, "next") or ""
    assert "status=refunded" in next_link and f"from={start}" in next_link and f"to={end}" in next_link
    csv_link = re.search(r'href="([^"]*history\.csv[^"]*)"', first)
    assert (
        csv_link and html.unescape(csv_link.group(1)) == f"/billing/history.csv?status=refunded&from={start}&to={end}"
    )

    response = await client.get(html.unescape(csv_link.group(1)))
    assert response.status_code == 200
    assert response.headers["content-type"].startswith("text/csv")
    assert response.headers["content-disposition"] == 'attachment; filename="payments.csv"'
    records = list(csv.DictReader(io.StringIO(response.text)))
    by_id = {r["id"]: r for r in await PaymentTransaction.select().where(PaymentTransaction.user == alice.id)}
    assert [r["payment_intent"] for r in records] == [by_id[i]["stripe_payment_intent_id"] for i in want]
    for record in records[:20]:
        row = next(v for v in by_id.values() if v["stripe_payment_intent_id"] == record["payment_intent"])
        assert record["status"] in ("refunded", "partially_refunded")
        assert record["created_at_utc"] == row["created_at"].astimezone(UTC).isoformat().replace("+00:00", "Z")
        if row["currency"] == "jpy":
            assert record["currency"] == "JPY" and record["amount"] == str(row["amount_cents"])
        else:
            assert record["currency"] == "USD"
            assert record["amount"] == f"{row['amount_cents'] // 100}.{row['amount_cents'] % 100:02d}"


async def test_csv_without_filters_streams_every_row_with_a_header(client: Client) -> None:
    alice = await signed_in_user(client, "alice")
    await seed_payments(alice.id, 1000, "a")
    response = await client.get("/billing/history.csv")
    assert response.status_code == 200
    lines = response.text.splitlines()
    assert lines[0].startswith("created_at_utc,description,amount,amount_refunded,currency,status")
    assert len(lines) == 1001
    assert len({line.split(",")[9] for line in lines[1:]}) == 1000


async def test_another_users_rows_and_cursors_never_cross_over(client: Client, app_url: str) -> None:
    alice = await signed_in_user(client, "alice")
    await seed_payments(alice.id, 40, "a")
    async with httpx.AsyncClient(base_url=app_url, timeout=20) as bob_client:
        bob = await signed_in_user(bob_client, "bob")
        await seed_payments(bob.id, 40, "b")
        bob_ids = set(await expected_ids(bob.id))
        alice_ids, _, _ = await walk(client, "/billing/history")
        assert alice_ids == await expected_ids(alice.id)
        assert not bob_ids & set(alice_ids)
        csv_text = (await client.get("/billing/history.csv")).text
        assert "pi_b_" not in csv_text and csv_text.count("pi_a_") == 40

        alice_next = pager_link(await get_ok(client, "/billing/history"), "next")
        assert alice_next
        response = await bob_client.get(alice_next)
        assert response.status_code == 400
        assert "not valid" in response.text
        assert not set(row_ids(response.text))


TAMPERINGS: dict[str, Callable[[str], str]] = {
    "mac changed": lambda c: c[:-5] + ("A" if c[-5] != "A" else "B") + c[-4:],
    "mac re-spelled": lambda c: c[:-1] + chr(ord(c[-1]) ^ 1),  # same bits in base64's padding
    # {"created_at":"2030-01-01T00:00:00+00:00","id":999999} with the original MAC
    "payload swapped": lambda c: (
        "eyJjcmVhdGVkX2F0IjoiMjAzMC0wMS0wMVQwMDowMDowMCswMDowMCIsImlkIjo5OTk5OTl9" + c[c.index(".") :]
    ),
    "garbage": lambda c: "garbage",
    "no separator": lambda c: c.replace(".", ""),
    "bad base64": lambda c: "!!!." + c.partition(".")[2],
}


async def test_tampered_cursor_is_a_400_page(client: Client) -> None:
    alice = await signed_in_user(client, "alice")
    await seed_payments(alice.id, 30, "a")
    next_link = pager_link(await get_ok(client, "/billing/history"), "next") or ""
    cursor = re.search(r"after=([^&]+)", next_link)
    assert cursor
    for name, mutate in TAMPERINGS.items():
        for param in ("after", "before"):
            response = await client.get("/billing/history", params={param: mutate(cursor.group(1))})
            assert response.status_code == 400, (name, param)
            assert "<html" in response.text and "not valid" in response.text
            assert not row_ids(response.text)
    both = await client.get("/billing/history", params={"after": cursor.group(1), "before": cursor.group(1)})
    assert both.status_code == 400


async def test_htmx_request_gets_the_form_with_its_rows_and_plain_request_the_page(client: Client) -> None:
    alice = await signed_in_user(client, "alice")
    await seed_payments(alice.id, 30, "a")
    page = await client.get("/billing/history")
    assert "<html" in page.text and 'id="history-results"' in page.text and "<form" in page.text
    assert page.headers["vary"].lower().count("hx-request") == 1
    fragment = await client.get("/billing/history?size=25", headers={"HX-Request": "true"})
    assert fragment.status_code == 200 and fragment.headers["vary"].lower().count("hx-request") == 1
    # The filter form travels with the rows, showing the values (and errors) of what was filtered.
    assert "<html" not in fragment.text and 'id="history-results"' not in fragment.text
    assert "<form" in fragment.text and 'id="history-rows"' in fragment.text
    assert '<option value="25" selected>' in fragment.text
    assert len(row_ids(fragment.text)) == 25
    assert 'hx-target="#history-results"' in fragment.text and 'hx-push-url="true"' in fragment.text
    invalid = await client.get("/billing/history?from=yesterday", headers={"HX-Request": "true"})
    assert invalid.status_code == 400 and 'id="history-from-error"' in invalid.text and "<html" not in invalid.text
    restore = await client.get("/billing/history", headers={"HX-Request": "true", "HX-History-Restore-Request": "true"})
    assert "<html" in restore.text


async def test_rows_show_badges_failure_reason_money_and_documents(client: Client) -> None:
    alice = await signed_in_user(client, "alice")
    common = {"user": alice.id, "stripe_customer_id": "cus_a", "payment_method": "visa"}
    await PaymentTransaction.insert(
        PaymentTransaction(
            **common,
            stripe_payment_intent_id="pi_failed",
            amount_cents=1999,
            currency="usd",
            status="failed",
            failure_reason="Your card has insufficient funds.",
            payment_method_last4="0341",
            created_at=BASE_TIME,
        ),
        PaymentTransaction(
            **common,
            stripe_payment_intent_id="pi_yen",
            amount_cents=500,
            currency="jpy",
            status="succeeded",
            payment_method_last4="4242",
            description="Lifetime",
            hosted_invoice_url="https://invoice.stripe.com/i/1",
            invoice_pdf_url="https://pay.stripe.com/invoice/1/pdf",
            receipt_url="https://pay.stripe.com/receipts/1",
            created_at=BASE_TIME - timedelta(days=1),
        ),
        PaymentTransaction(
            **common,
            stripe_payment_intent_id="pi_partial",
            amount_cents=2000,
            amount_refunded_cents=500,
            currency="eur",
            status="partially_refunded",
            hosted_invoice_url="javascript:alert(1)",
            description="<script>alert(1)</script>",
            failure_reason='=HYPERLINK("https://evil.example")',
            created_at=BASE_TIME - timedelta(days=2),
        ),
    )
    text = await get_ok(client, "/billing/history", headers={"Accept-Language": "en-GB"})
    assert "Your card has insufficient funds." in text
    assert re.search(
        r'<button type="button" class="badge badge-danger badge-button" aria-describedby="failure-\d+"', text
    )
    assert '<span class="badge badge-ok">Succeeded</span>' in text
    assert '<span class="badge badge-grey">Partially refunded</span>' in text
    assert "JP¥500" in text or "¥500" in text
    assert "¥5.00" not in text
    assert "€20.00" in text and "€5.00 refunded" in text
    assert 'Visa <span aria-hidden="true">••••</span><span class="sr-only">ending in</span> 4242' in text
    assert (
        '<a href="https://pay.stripe.com/invoice/1/pdf" rel="noopener noreferrer">'
        '<span class="sr-only">Invoice </span>PDF<span class="sr-only"> for 22 Nov 2026</span></a>'
    ) in text
    assert "javascript:" not in text
    assert "<script>alert(1)" not in text and "&lt;script&gt;alert(1)" in text
    exported = (await client.get("/billing/history.csv")).text
    assert '"\'=HYPERLINK(""https://evil.example"")"' in exported, "spreadsheet formulas are defused"


async def test_date_range_is_read_in_the_persons_time_zone(client: Client) -> None:
    alice = await signed_in_user(client, "alice")
    # 22 Nov 16:30 UTC is already 23 Nov 01:30 in Tokyo.
    late = PaymentTransaction(
        user=alice.id, stripe_payment_intent_id="pi_tokyo", stripe_customer_id="cus_a", amount_cents=100,
        status="succeeded", created_at=datetime(2026, 11, 22, 16, 30, tzinfo=UTC),
    )  # fmt: skip
    await PaymentTransaction.insert(late)
    query = "/billing/history?from=2026-11-23&to=2026-11-23"
    assert not row_ids(await get_ok(client, query))
    client.cookies.set("tz", "Asia/Tokyo")
    tokyo = await get_ok(client, query)
    assert row_ids(tokyo) == [late.id] and "Nov 23, 2026" in tokyo


async def test_invalid_filters_are_a_400_with_the_reason(client: Client) -> None:
    await signed_in_user(client, "alice")
    cases = {
        "status=lost": "Choose a status from the list",
        "from=yesterday": "Enter the start date as YYYY-MM-DD",
        "from=2026-11-23&to=2026-11-01": "The end date must be on or after the start date",
        "size=1000": "Choose 10, 25 or 50",
    }
    for query, message in cases.items():
        response = await client.get(f"/billing/history?{query}")
        assert response.status_code == 400, query
        assert message in response.text and "<form" in response.text
        fragment = await client.get(f"/billing/history?{query}", headers={"HX-Request": "true"})
        assert fragment.status_code == 400 and message in fragment.text and "<html" not in fragment.text
    assert (await client.get("/billing/history.csv?status=lost")).status_code == 400


async def test_empty_history_points_to_the_plans(client: Client) -> None:
    await signed_in_user(client, "alice")
    text = await get_ok(client, "/billing/history")
    assert '<a class="button" href="/plans">Choose a plan</a>' in text
    assert "<table" not in text
    filtered = await get_ok(client, "/billing/history?status=failed")
    assert "No payments match these filters" in filtered


async def test_signed_out_request_redirects_to_sign_in(client: Client) -> None:
    for path in ("/billing/history?status=failed", "/billing/history.csv"):
        response = await client.get(path, follow_redirects=False)
        assert response.status_code == 303
        assert response.headers["location"].startswith("/auth/login?next=%2Fbilling%2Fhistory")


@pytest.fixture
async def query_counter(monkeypatch: pytest.MonkeyPatch) -> AsyncIterator[list[str]]:
    """Every SQL statement the app runs (all go through the Piccolo engine's `run_querystring`)."""
    from piccolo_conf import DB

    seen: list[str] = []
    original: Callable[..., Awaitable[Any]] = DB.run_querystring  # bound to the app's engine

    async def counting(engine: Any, querystring: Any, *args: Any, **kwargs: Any) -> Any:
        seen.append(str(querystring))
        return await original(querystring, *args, **kwargs)

    monkeypatch.setattr(type(DB), "run_querystring", counting)
    yield seen


async def test_query_count_does_not_grow_with_rows_shown(client: Client, query_counter: list[str]) -> None:
    alice = await signed_in_user(client, "alice")
    await seed_payments(alice.id, 200, "a")
    counts: dict[str, int] = {}
    first = await get_ok(client, "/billing/history?size=25")
    deep_link = pager_link(first, "next") or ""
    for label, url in {
        "10": "/billing/history",
        "50": "/billing/history?size=50",
        "deep": deep_link,
        "back": pager_link(await get_ok(client, deep_link), "prev") or "",
    }.items():
        query_counter.clear()
        page_html = await get_ok(client, url)
        assert row_ids(page_html)
        counts[label] = len(query_counter)
    assert len(set(counts.values())) == 1, counts
    # The signed-in user's row, then one query for the whole page.
    assert counts["10"] <= 2, query_counter


@pytest.mark.browser
async def test_mobile_page_does_not_overflow_and_htmx_pager_swaps_rows(
    client: Client, app_url: str, browser: Any
) -> None:
    from axe_playwright_python.async_playwright import Axe
    from playwright.async_api import expect

    alice = await signed_in_user(client, "alice")
    await seed_payments(alice.id, 30, "a")
    await PaymentTransaction.update({PaymentTransaction.description: "Pro plan, yearly, " * 8}).where(
        PaymentTransaction.user == alice.id
    )
    context = await browser.new_context(viewport={"width": 390, "height": 844}, locale="en-US")
    try:
        await context.add_cookies(
            [{"name": c.name, "value": c.value or "", "url": app_url} for c in client.cookies.jar]
        )
        page = await context.new_page()
        await page.goto(f"{app_url}/billing/history")
        await expect(page.locator("tr[data-payment-id]")).to_have_count(10)
        overflow = await page.evaluate("document.documentElement.scrollWidth - window.innerWidth")
        assert overflow <= 0, f"the page is {overflow}px wider than the 390px viewport"

        failed = page.get_by_role("button", name=re.compile("Failed")).first
        await failed.focus()
        reason = page.locator(f"#{await failed.get_attribute('aria-describedby')}")
        await expect(reason).to_be_visible()
        await expect(reason).to_have_text("Your card was declined.")
        assert (await reason.bounding_box() or {}).get("width", 0) > 100, "the reason shows as a tooltip on focus"
        await page.keyboard.press("Escape")
        assert (await reason.bounding_box() or {}).get("width", 0) <= 1, "Escape hides the tooltip"

        first_ids = await page.locator("tr[data-payment-id]").evaluate_all("rows => rows.map(r => r.dataset.paymentId)")
        await page.evaluate("window.__same_document = true")
        await page.get_by_role("link", name=re.compile("Next")).click()
        await expect(page).to_have_url(re.compile(r"after="))
        await expect(page.locator("tr[data-payment-id]").first).not_to_have_attribute("data-payment-id", first_ids[0])
        assert await page.evaluate("window.__same_document === true"), "HTMX swapped the rows in place"
        await expect(page.locator("#history-summary")).to_be_focused()
        assert await page.locator("h1").count() == 1

        await page.set_viewport_size({"width": 1280, "height": 900})
        violations = (await Axe().run(page)).response["violations"]
        assert not violations, [(v["id"], v["help"]) for v in violations]
    finally:
        await context.close()
