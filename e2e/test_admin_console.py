"""The operator console in a real browser against `make run`'s stack (one module, the session's stack).

The demo operator (`operator`, role `admin` in the local provider's ID token) edits a portal
configuration and sees it in the emulator's portal, reads analytics over seeded sessions, replays a
failed event, finds and resyncs a customer, and changes the brand colour; axe checks every console
page. A customer without a role gets 403 on every `/admin` route; the console works with JavaScript
off. Screenshots go to `test-results/screenshots/` (`make admin-screenshots` copies them to docs/).
"""

from __future__ import annotations

import os
import re
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from urllib.parse import urlsplit

import asyncpg
import pytest
from axe_playwright_python.async_playwright import Axe
from playwright.async_api import Browser, BrowserContext, Page, expect

from app.settings import PROJECT_ROOT
from e2e.conftest import LiveStack, _database_url
from e2e.pages.identity import LocalProviderLogin
from e2e.test_portal import subscribe
from tests.test_admin import ADMIN_ROUTES

pytestmark = pytest.mark.browser

SHOTS = PROJECT_ROOT / "test-results" / "screenshots"
CUSTOMER = "console.customer@example.com"


def shot(name: str) -> Path:
    SHOTS.mkdir(parents=True, exist_ok=True)
    return SHOTS / f"admin-{name}.png"


async def stack_db() -> asyncpg.Connection:
    name = urlsplit(os.environ["DATABASE_URL"]).path.lstrip("/") + "_e2e"
    return await asyncpg.connect(_database_url(name))


async def sign_in(page: Page, stack: LiveStack, subject: str, next_path: str = "/account") -> None:
    await page.goto(stack.url(f"/auth/login?next={next_path}"))
    await LocalProviderLogin(page).sign_in_as(subject)
    await expect(page).to_have_url(re.compile(re.escape(next_path)))


async def no_serious_axe_violations(page: Page) -> None:
    results = await Axe().run(page)
    bad = [f"{v['id']}: {v['help']}" for v in results.response["violations"] if v["impact"] in ("serious", "critical")]
    assert not bad, f"{page.url}: {bad}"


@pytest.fixture(scope="module")
async def customer_with_history(browser: Browser, live_stack: LiveStack) -> AsyncIterator[int]:
    """A subscribed customer, with seeded portal sessions and one of their events given up (dead)."""
    context = await browser.new_context(viewport={"width": 1280, "height": 860}, locale="en-US")
    page = await context.new_page()
    await subscribe(page, live_stack, CUSTOMER)
    await context.close()
    db = await stack_db()
    try:
        user_id = await db.fetchval('SELECT id FROM "user" WHERE subject = $1', CUSTOMER)
        now = datetime.now(UTC)
        for i, (workflow, seconds, outcome) in enumerate(
            [
                ("payment_update", 45, "changed"),
                ("billing_review", 20, "no_changes"),
                ("cancellation_process", None, None),
            ]
        ):
            created = now - timedelta(days=i + 1)
            returned = created + timedelta(seconds=seconds) if seconds else None
            await db.execute(
                "INSERT INTO portal_session (user_id, workflow, before, created_at, returned_at, outcome) "
                "VALUES ($1, $2, '{}', $3, $4, $5)",
                user_id,
                workflow,
                created,
                returned,
                outcome,
            )
        await db.execute(
            # `dead`: retried past EVENT_RETRY_HOURS and given up (a `failed` one the worker would retry by itself).
            "UPDATE stripe_event SET status = 'dead', attempts = 80, last_error = 'StripeUnavailable: seeded failure' "
            "WHERE id = (SELECT max(id) FROM stripe_event WHERE type = 'customer.subscription.created')"
        )
    finally:
        await db.close()
    yield int(user_id)


async def test_operator_manages_the_portal_from_the_console(
    browser: Browser, live_stack: LiveStack, customer_with_history: int
) -> None:
    context = await browser.new_context(viewport={"width": 1280, "height": 900}, locale="en-US")
    page = await context.new_page()
    await sign_in(page, live_stack, "operator")
    await expect(page.get_by_role("link", name="Admin")).to_be_visible()
    await page.get_by_role("link", name="Admin").click()
    await expect(page.get_by_role("heading", name="Operator console")).to_be_visible()
    await no_serious_axe_violations(page)
    await page.screenshot(path=shot("overview"), full_page=True)

    # Portal configurations: edit the one the billing_review workflow uses.
    await page.get_by_role("link", name="Portal configurations").click()
    await expect(page.get_by_role("heading", name="Drift from portal.toml")).to_be_visible()
    await no_serious_axe_violations(page)
    await page.screenshot(path=shot("configurations"), full_page=True)
    row = page.get_by_role("row").filter(has_text="billing_review")
    await row.get_by_role("link").first.click()
    await no_serious_axe_violations(page)
    await page.get_by_role("link", name="Edit").click()
    await page.get_by_label("Headline").fill("x" * 61)
    await page.get_by_role("button", name="Save to Stripe").click()
    await expect(page.get_by_text("At most 60 characters (61 given).")).to_be_visible()
    await no_serious_axe_violations(page)
    await page.screenshot(path=shot("configuration-form"), full_page=True)
    await page.get_by_label("Headline").fill("Invoices for Acme, all in one place")
    await page.get_by_role("button", name="Save to Stripe").click()
    await expect(page.get_by_text("Configuration saved.")).to_be_visible()
    await expect(page.locator(".facts")).to_contain_text("Invoices for Acme, all in one place")

    # Analytics over the seeded sessions.
    await page.get_by_role("link", name="Analytics").click()
    await page.get_by_role("link", name="7 days").click()
    sessions = page.locator(".stat", has_text="Sessions").first.locator("dd")
    assert int(await sessions.inner_text()) >= 3
    await expect(page.get_by_role("img", name="Sessions per workflow")).to_be_visible()
    await no_serious_axe_violations(page)
    await page.screenshot(path=shot("analytics"), full_page=True)

    # Stripe events: the dead one is replayed.
    await page.get_by_role("link", name="Stripe events").click()
    await page.get_by_label("Status", exact=True).select_option("dead")
    await page.get_by_role("button", name="Filter").click()
    failed = page.get_by_role("row").filter(has_text="customer.subscription.created")
    await expect(failed).to_have_count(1)
    event_id = (await failed.locator("code").first.inner_text()).strip()
    await no_serious_axe_violations(page)
    await page.screenshot(path=shot("events"), full_page=True)
    await failed.get_by_role("checkbox").check()
    await page.get_by_role("button", name="Replay selected").click()
    await expect(page.get_by_text("Replayed: 1 event applied.")).to_be_visible()
    await page.goto(live_stack.url(f"/admin/events/{event_id}"))
    await expect(page.locator(".facts")).to_contain_text("processed")
    await no_serious_axe_violations(page)
    await page.screenshot(path=shot("event"), full_page=True)

    # Customers: find by email, resync.
    await page.get_by_role("link", name="Customers").first.click()
    await page.get_by_label("Email, Stripe customer id or OIDC subject").fill("console.customer@")
    await page.get_by_role("button", name="Search").click()
    await expect(page.get_by_role("link", name=CUSTOMER)).to_have_count(1)
    await no_serious_axe_violations(page)
    await page.get_by_role("link", name=CUSTOMER).first.click()
    await expect(page.get_by_role("heading", name="Portal sessions")).to_be_visible()
    await page.get_by_role("button", name="Resync from Stripe").click()
    await expect(page.get_by_text(re.compile(r"Resynced from Stripe: \d+ change"))).to_be_visible()
    await no_serious_axe_violations(page)
    await page.screenshot(path=shot("customer"), full_page=True)

    # Entitlements: a dated grant with a note, shown with its source; the host is told through the outbox.
    await page.get_by_label("Feature", exact=True).select_option("custom_domain")
    await page.get_by_label("Ends on (UTC, optional)").fill(f"{datetime.now(UTC).year + 1}-01-31")
    await page.get_by_label("Note (optional)").fill("Launch partner")
    await page.get_by_role("button", name="Grant", exact=True).click()
    await expect(page.get_by_text(re.compile(r"Granted custom_domain until \d{4}-01-31 \(UTC\)\."))).to_be_visible()
    await expect(page.locator("#entitlements")).to_contain_text("Launch partner")
    await page.get_by_label("Feature", exact=True).select_option("priority_support")
    await page.get_by_label("Ends on (UTC, optional)").fill("2020-01-01")
    await page.get_by_role("button", name="Revoke", exact=True).click()
    await expect(page.get_by_text("The end date must be in the future (UTC).")).to_be_visible()
    await no_serious_axe_violations(page)
    await page.locator("#entitlements").screenshot(path=shot("customer-entitlements"))

    # Host API keys: created, shown once.
    await page.get_by_role("link", name="API keys").click()
    await page.get_by_label("Name", exact=True).fill("acme-backend")
    await page.get_by_role("button", name="Create key").click()
    await expect(page.locator("#new-key")).to_contain_text("bpk_")
    await expect(page.get_by_role("row").filter(has_text="acme-backend")).to_contain_text("active")
    await no_serious_axe_violations(page)
    await page.screenshot(path=shot("api-keys"), full_page=True)

    # Host webhook endpoints: added with a whsec_ secret shown once; the grant above waits in the outbox.
    await page.get_by_role("link", name="Host webhooks").click()
    # Port 9 (discard) refuses at once, so the worker's attempts fail fast; disabled again below.
    await page.get_by_label("URL", exact=True).fill("http://127.0.0.1:9/hooks/billing")
    await page.get_by_role("button", name="Add endpoint").click()
    await expect(page.locator("#new-secret")).to_contain_text("whsec_")
    endpoint = page.get_by_role("row").filter(has_text="127.0.0.1:9")
    await expect(endpoint).to_contain_text("enabled")
    await no_serious_axe_violations(page)
    await page.screenshot(path=shot("host-webhooks"), full_page=True)
    await endpoint.get_by_role("button", name=re.compile("^Disable")).click()
    await expect(page.get_by_text("Disabled http://127.0.0.1:9/hooks/billing.")).to_be_visible()

    # Branding: a low-contrast colour is refused, a good one applies to /account.
    await page.get_by_role("link", name="Branding").click()
    await page.get_by_label("Primary colour (buttons, links)").fill("#ffcc00")
    await page.get_by_role("button", name="Save").click()
    await expect(page.get_by_text(re.compile("WCAG AA needs at least 4.5:1"))).to_be_visible()
    await page.get_by_label("Primary colour (buttons, links)").fill("#0b5394")
    await page.get_by_role("button", name="Preview").click()
    await expect(page.get_by_text("This is a preview")).to_be_visible()
    await no_serious_axe_violations(page)
    await page.screenshot(path=shot("branding"), full_page=True)
    await page.get_by_role("button", name="Save").click()
    await expect(page.get_by_text("Branding saved.")).to_be_visible()
    await page.goto(live_stack.url("/account"))
    link = page.get_by_role("link", name="Plans")
    await expect(link).to_be_visible()
    accent = await page.evaluate("getComputedStyle(document.documentElement).getPropertyValue('--accent').trim()")
    assert accent == "#0b5394"

    await page.get_by_role("link", name="Admin").click()
    await page.get_by_role("link", name="Audit trail", exact=True).click()
    for action in (
        "portal_configuration.saved",
        "event.replayed",
        "customer.resynced",
        "entitlement.granted",
        "host_api_key.created",
        "host_webhook_endpoint.added",
        "branding.saved",
    ):
        await expect(page.get_by_text(action).first).to_be_visible()
    await no_serious_axe_violations(page)
    await page.screenshot(path=shot("audit"), full_page=True)

    # Put the default colour back for the other browser tests of this session.
    await page.get_by_role("link", name="Branding").click()
    await page.get_by_label("Primary colour (buttons, links)").fill("#4338ca")
    await page.get_by_role("button", name="Save").click()
    await expect(page.get_by_text("Branding saved.")).to_be_visible()
    await context.close()

    # The customer sees the new headline in the (emulated) Stripe portal.
    customer = await browser.new_context(viewport={"width": 1280, "height": 860}, locale="en-US")
    cpage = await customer.new_page()
    await sign_in(cpage, live_stack, CUSTOMER, "/portal")
    await cpage.get_by_role("button", name="Invoices and receipts").click()
    await expect(cpage.get_by_text("Invoices for Acme, all in one place")).to_be_visible()
    await customer.close()


async def test_a_customer_without_a_role_gets_403_on_every_admin_route(browser: Browser, live_stack: LiveStack) -> None:
    context = await browser.new_context(viewport={"width": 1280, "height": 860}, locale="en-US")
    page = await context.new_page()
    await sign_in(page, live_stack, "no.role@example.com")
    await expect(page.get_by_role("link", name="Admin")).to_have_count(0)
    token = next(c["value"] for c in await context.cookies() if c["name"] == "billing_csrf")
    for method, path in ADMIN_ROUTES:
        if method == "GET":
            response = await page.goto(live_stack.url(path))
            assert response is not None and response.status == 403, f"GET {path}: {response and response.status}"
            await expect(page.get_by_role("heading", name="You can't do that")).to_be_visible()
        else:
            answer = await page.request.post(live_stack.url(path), form={"_csrf_token": token})
            assert answer.status == 403, f"POST {path}: {answer.status}"
    await context.close()


@pytest.fixture
async def no_js(browser: Browser) -> AsyncIterator[BrowserContext]:
    ctx = await browser.new_context(viewport={"width": 1280, "height": 860}, locale="en-US", java_script_enabled=False)
    yield ctx
    await ctx.close()


async def test_the_console_works_without_javascript(
    no_js: BrowserContext, live_stack: LiveStack, customer_with_history: int
) -> None:
    page = await no_js.new_page()
    await sign_in(page, live_stack, "operator", "/admin/")
    await page.get_by_role("link", name="Stripe events").click()
    await page.get_by_label("Type starts with").fill("customer.subscription")
    await page.get_by_role("button", name="Filter").click()
    await expect(page).to_have_url(re.compile(r"type=customer.subscription"))
    await page.get_by_role("row").filter(has_text="customer.subscription.created").first.get_by_role("checkbox").check()
    await page.get_by_role("button", name="Replay selected").click()
    await expect(page.get_by_text(re.compile(r"Replayed: \d+ events? applied."))).to_be_visible()
    await page.get_by_role("link", name="Customers").first.click()
    await page.get_by_label("Email, Stripe customer id or OIDC subject").fill(CUSTOMER)
    await page.get_by_role("button", name="Search").click()
    await page.get_by_role("link", name=CUSTOMER).first.click()
    await page.get_by_role("button", name="Resync from Stripe").click()
    await expect(page.get_by_text(re.compile(r"Resynced from Stripe"))).to_be_visible()
    await page.get_by_role("link", name="Analytics").click()
    await page.get_by_role("link", name="90 days").click()
    await expect(page.get_by_role("img", name="Sessions per day")).to_be_visible()
    await page.get_by_role("link", name="Portal configurations").click()
    await expect(page.get_by_role("heading", name="In Stripe")).to_be_visible()
