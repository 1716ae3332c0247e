"""Issue 7 in a real browser: payments made through Checkout, a renewal (emulator clock) and
refunds (Stripe API) appear in `/billing/history` with the right badges, and the invoice PDF
link downloads a PDF.

A refund updates its payment's row (issue 7: "a refund updates the row"), it never adds one, so
the three rows are: the subscription's first payment (Succeeded), its renewal refunded in part
(Partially refunded) and a lifetime purchase refunded in full (Refunded).
"""

from __future__ import annotations

import re

import pytest
from playwright.async_api import Page, expect

from e2e.conftest import LiveStack, screenshot_path
from e2e.live.services import Emulator, Services, reload_until
from e2e.pages.stripe import CARDS

pytestmark = pytest.mark.browser


async def test_history_shows_each_payment_with_its_badge_and_a_pdf(page: Page, live_stack: LiveStack) -> None:
    services = Services(mode="offline", base_url=live_stack.base_url, emulator_api_base=live_stack.stripe_api_base)
    emulator = Emulator(live_stack.stripe_api_base)
    who = services.person("history")

    await services.sign_in(page, who, "/billing/history")
    await expect(page.get_by_role("heading", name="No payments yet")).to_be_visible()
    await page.screenshot(path=screenshot_path("history-empty"), full_page=True)

    await services.subscribe(page, who, "Pro", "monthly", CARDS["visa"])
    await emulator.advance_clock(days=31)  # the monthly renewal is charged
    rows = page.locator("tbody tr[data-payment-id]")
    await page.goto(services.url("/billing/history"))
    await reload_until(page, page.locator("#history-rows"), "Showing 2 payments")

    # A lifetime purchase, so that one payment can be refunded in full and one in part.
    await services.plans(page).open()
    await services.plans(page).buy_lifetime("Business")
    await services.checkout(page).pay(CARDS["visa"])
    await expect(page.get_by_test_id("checkout-result")).to_contain_text("lifetime access", timeout=30_000)

    customer = (await emulator.stripe.v1.customers.search_async(params={"query": f"email:'{who}'"})).data[0]
    intents = (await emulator.stripe.v1.payment_intents.list_async(params={"customer": customer.id})).data
    assert len(intents) == 3 and all(i.status == "succeeded" for i in intents), intents
    _first, renewal, lifetime = sorted(intents, key=lambda i: i.created)
    assert lifetime.amount != renewal.amount
    await emulator.stripe.v1.refunds.create_async(params={"payment_intent": lifetime.id})
    await emulator.stripe.v1.refunds.create_async(params={"payment_intent": renewal.id, "amount": 500})

    await page.goto(services.url("/billing/history"))
    await reload_until(page, page.locator("tr[data-payment-id]:has-text('Partially refunded')"), "Partially refunded")
    await reload_until(page, page.locator("tbody"), re.compile(r"\bRefunded"))
    await expect(rows).to_have_count(3)
    badges = [b.strip() for b in await rows.locator("[data-label=Status]").all_inner_texts()]
    statuses = await rows.evaluate_all("rows => rows.map(r => r.dataset.status)")
    # Newest first: the refunded lifetime purchase, the partly refunded renewal, the first payment.
    assert badges == ["Refunded", "Partially refunded", "Succeeded"], badges
    assert statuses == ["refunded", "partially_refunded", "succeeded"], statuses
    await expect(rows.nth(1).locator("[data-label=Amount]")).to_contain_text(re.compile(r"5\.00 refunded"))
    await expect(rows.nth(0).locator("[data-label=Description]")).to_contain_text("Business")
    await expect(rows.nth(2).locator("[data-label=Description]")).to_contain_text("Pro")
    for row in range(3):
        await expect(rows.nth(row).locator("[data-label='Payment method']")).to_contain_text("4242")
    await page.screenshot(path=screenshot_path("history"), full_page=True)

    pdf_link = rows.nth(2).get_by_role("link", name=re.compile(r"^Invoice PDF"))
    # Alt+click is Chromium's "download the link". The mouse goes to the middle of the link's box:
    # Playwright's own click aims at the first of the link's boxes, which is its clipped `.sr-only`
    # span, and the table cell answers there instead.
    box = await pdf_link.bounding_box()
    assert box is not None
    async with page.expect_download() as download_info:
        await page.mouse.move(box["x"] + box["width"] / 2, box["y"] + box["height"] / 2)
        await page.keyboard.down("Alt")
        await page.mouse.click(box["x"] + box["width"] / 2, box["y"] + box["height"] / 2)
        await page.keyboard.up("Alt")
    download = await download_info.value
    assert download.suggested_filename.endswith(".pdf"), download.suggested_filename
    content = (await download.path()).read_bytes()
    assert content[:4] == b"%PDF", content[:40]
