"""The customer journeys of issue 8, each written once and run offline (local OpenID provider +
Stripe emulator) and, when configured, against Stripe test mode and the Auth0 tenant (see
`e2e/live/services.py` and docs/QA.md)."""

from __future__ import annotations

import re

import pytest
from playwright.async_api import Browser, Page, expect

from e2e.conftest import screenshot_path
from e2e.live.services import MODES, Services, reload_until, services_for
from e2e.pages.app import Toasts
from e2e.pages.stripe import CARDS

pytestmark = pytest.mark.browser


@pytest.fixture(params=MODES)
def services(request: pytest.FixtureRequest) -> Services:
    return services_for(request)


SLOW = 30_000  # ms: a step that waits for Stripe (or the emulator on a busy 2-core machine)


async def history_rows(page: Page) -> list[dict[str, str]]:
    """The rows of `/billing/history` as the person sees them: status, amount, method, description."""
    return await page.locator("tbody tr[data-payment-id]").evaluate_all(
        """rows => rows.map(r => ({
            id: r.dataset.paymentId,
            status: r.dataset.status,
            badge: r.querySelector('[data-label=Status]').innerText.trim(),
            amount: r.querySelector('[data-label=Amount] .amount').innerText.trim(),
            method: r.querySelector('[data-label="Payment method"]').innerText.trim(),
            description: r.querySelector('[data-label=Description]').innerText.trim(),
        }))"""
    )


async def test_journey_1_subscribe_change_card_switch_yearly_cancel_and_see_history(
    page: Page, services: Services
) -> None:
    who = services.person("journey1")
    await services.subscribe(page, who, "Pro", "monthly", CARDS["visa"])
    account = services.account(page)
    await account.open()
    await account.expect_status("Active")
    await account.expect_plan("Pro")
    await expect(page.get_by_test_id("renewal")).to_have_attribute("aria-label", re.compile(r"^Renews on \S"))

    await page.get_by_role("button", name="Change Payment Method").click()
    await services.portal(page).update_payment_method(CARDS["mastercard"])
    await expect(page).to_have_url(services.url("/account"), timeout=SLOW)
    await Toasts(page).expect("Payment method: Visa •••• 4242 → Mastercard •••• 4444")
    await expect(page.get_by_test_id("default-card")).to_contain_text("Mastercard •••• 4444")

    await page.get_by_role("button", name="Manage Subscription").click()  # the portal's homepage
    await services.portal(page).switch_price(re.compile(r"Pro.*year"))
    await services.portal(page).return_to_app()
    await expect(page).to_have_url(services.url("/account"), timeout=SLOW)
    await Toasts(page).expect(re.compile(r"Plan: Pro monthly → Pro yearly"))
    await expect(page.get_by_test_id("plan-name")).to_contain_text("/ year")

    await page.goto(services.url("/portal"))
    await page.get_by_role("button", name="Cancel subscription").click()
    await services.portal(page).cancel("Too expensive")
    await expect(page).to_have_url(re.compile(r"/portal/cancelled\?ps=\d+$"), timeout=SLOW)
    await Toasts(page).expect(re.compile(r"Cancels on "))
    await expect(page.get_by_role("button", name="Keep my plan")).to_be_visible()
    await account.open()
    await expect(page.get_by_test_id("renewal")).to_have_attribute("aria-label", re.compile(r"^Cancels on \S"))
    await account.expect_status("Active")

    await page.goto(services.url("/billing/history"))
    await expect(page.locator("tbody tr[data-payment-id]").nth(1)).to_be_visible(timeout=SLOW)
    rows = await history_rows(page)
    assert len(rows) >= 2, rows
    newest, first = rows[0], rows[-1]
    assert first["status"] == "succeeded" and "Visa" in first["method"] and "4242" in first["method"], rows
    # The monthly → yearly switch is invoiced and charged at once, on the new Mastercard.
    assert newest["status"] == "succeeded" and "4444" in newest["method"], rows
    assert all(row["badge"].startswith("Succeeded") for row in rows), rows


async def test_journey_2_lifetime_purchase_shows_lifetime_access(page: Page, services: Services) -> None:
    await services.sign_in(page, services.person("journey2"))
    if services.mode == "live" and not await page.get_by_role("button", name=re.compile(r"^Buy Business")).count():
        pytest.skip("live mode: the Auth0 test user already owns lifetime access; use a fresh test user")
    await services.plans(page).buy_lifetime("Business")
    await services.checkout(page).pay(CARDS["visa"])
    await expect(page.get_by_test_id("checkout-result")).to_contain_text("lifetime access", timeout=SLOW)
    account = services.account(page)
    await account.open()
    await expect(page.get_by_test_id("lifetime-status")).to_contain_text("Lifetime access")
    await account.expect_plan("Business")
    await expect(page.get_by_role("button", name="Manage Billing")).to_be_visible()
    await expect(page.get_by_role("button", name="Manage Subscription")).to_have_count(0)
    await page.screenshot(path=screenshot_path("account-lifetime"), full_page=True)


async def test_journey_3_declined_card_leaves_no_subscription(page: Page, services: Services) -> None:
    who = services.person("journey3")
    await services.sign_in(page, who)
    await services.reset_person(page)
    for attempt in range(2 if services.mode == "offline" else 1):  # a second try reuses the customer
        await services.plans(page).choose("Starter", "monthly")
        checkout = services.checkout(page)
        await checkout.pay(CARDS["declined"])
        await checkout.expect_error("declined")
        if attempt == 0:
            await page.screenshot(path=screenshot_path("checkout-declined"))
        await checkout.back()
        await expect(page).to_have_url(re.compile(re.escape(services.url("/plans"))), timeout=SLOW)
    account = services.account(page)
    await account.open()
    await expect(page.get_by_test_id("no-plan")).to_be_visible()
    await expect(page.get_by_test_id("subscription-status")).to_have_count(0)
    await expect(page.get_by_role("button", name="Manage Subscription")).to_have_count(0)
    if services.mode == "offline":
        # Nothing was paid, so no payment rows; the history still points to the plans.
        await page.goto(services.url("/billing/history"))
        await expect(page.get_by_role("heading", name="No payments yet")).to_be_visible()
        await expect(page.locator("tbody tr[data-payment-id]")).to_have_count(0)
        # On Stripe's side: one customer for the person however many attempts, and no subscription.
        stripe = services.emulator.stripe
        customers = (await stripe.v1.customers.search_async(params={"query": f"email:'{who}'"})).data
        assert len(customers) == 1, customers
        subscriptions = await stripe.v1.subscriptions.list_async(params={"customer": customers[0].id, "status": "all"})
        assert not subscriptions.data, subscriptions.data


async def test_journey_4_failed_renewal_past_due_then_recovered(page: Page, services: Services) -> None:
    emulator = services.emulator
    who = services.person("journey4")
    # A 0341 card cannot pay Checkout's first invoice (as on Stripe), so it becomes the default
    # card afterwards through the portal: the renewal is then charged to it and fails.
    await services.subscribe(page, who, "Starter", "monthly", CARDS["visa"])
    account = services.account(page)
    await account.open()
    await page.get_by_role("button", name="Change Payment Method").click()
    await services.portal(page).update_payment_method(CARDS["fails_later"])
    await expect(page).to_have_url(services.url("/account"), timeout=SLOW)
    await expect(page.get_by_test_id("default-card")).to_contain_text("0341")

    await emulator.advance_clock(days=31)
    await reload_until(page, page.get_by_test_id("subscription-status"), "Past due")
    banner = page.get_by_test_id("billing-banner")
    await expect(banner).to_contain_text("Your last payment failed")
    await expect(page.get_by_test_id("subscription-status")).to_have_attribute("data-status", "past_due")
    await page.screenshot(path=screenshot_path("account-past-due"), full_page=True)

    await banner.get_by_role("button", name="Update payment method").click()
    await services.portal(page).update_payment_method(CARDS["visa"])
    await expect(page).to_have_url(services.url("/account"), timeout=SLOW)
    await expect(page.get_by_test_id("default-card")).to_contain_text("4242")

    await emulator.advance_clock(days=3)  # the first dunning retry (`--dunning-retry-days 3,5,7`)
    await reload_until(page, page.get_by_test_id("subscription-status"), "Active")
    await expect(page.get_by_test_id("billing-banner")).to_have_count(0)
    await expect(page.get_by_test_id("renewal")).to_have_attribute("aria-label", re.compile(r"^Renews on "))


async def test_journey_5_held_webhooks_do_not_change_what_the_return_shows(page: Page, services: Services) -> None:
    emulator = services.emulator
    await services.subscribe(page, services.person("journey5"), "Pro", "monthly")
    await emulator.wait_until_delivered()
    await emulator.hold_webhooks()
    try:
        await page.goto(services.url("/portal"))
        await page.get_by_role("button", name="Cancel subscription").click()
        await services.portal(page).cancel("Too expensive")
        await expect(page).to_have_url(re.compile(r"/portal/cancelled\?ps=\d+$"), timeout=SLOW)
        # Nothing was delivered, yet the return synced from Stripe eagerly.
        assert (await emulator.deliveries()).get("pending"), "expected the webhooks to be held"
        await Toasts(page).expect(re.compile(r"Cancels on "))
        await services.account(page).open()
        await expect(page.get_by_test_id("renewal")).to_have_attribute("aria-label", re.compile(r"^Cancels on "))
        await page.reload()
        await expect(page.get_by_test_id("renewal")).to_have_attribute("aria-label", re.compile(r"^Cancels on "))
    finally:
        await emulator.release_webhooks()
    await emulator.wait_until_delivered()
    # The late webhooks do not undo or duplicate what the eager sync recorded.
    await page.reload()
    await expect(page.get_by_test_id("renewal")).to_have_attribute("aria-label", re.compile(r"^Cancels on "))
    await expect(page.get_by_test_id("subscription-status")).to_contain_text("Active")


async def test_journey_6_signed_out_every_billing_page_asks_to_sign_in(page: Page, services: Services) -> None:
    await services.subscribe(page, services.person("journey6"), "Starter", "monthly")
    session_cookie = next(c for c in await page.context.cookies() if c["name"] == "billing_session")
    # Pages opened while signed in, whose forms are posted after signing out.
    stale_checkout, stale_portal = await page.context.new_page(), await page.context.new_page()
    await stale_checkout.goto(services.url("/plans?interval=year"))
    await stale_portal.goto(services.url("/account"))

    await services.account(page).open()
    await page.get_by_role("button", name="Sign out").click()
    await services.login(page).confirm_sign_out()
    await expect(page).to_have_url(re.compile(re.escape(services.url("/"))), timeout=SLOW)

    sign_in = re.compile(r"/oauth2/authorize|/authorize|/u/login")
    for path in (
        "/account",
        "/billing/history",
        "/billing/history.csv",
        "/portal",
        "/billing/checkout/success?session_id=cs_x",
    ):
        await page.goto(services.url("/"))
        await page.goto(services.url(path))
        await expect(page, f"{path} should ask to sign in").to_have_url(sign_in, timeout=SLOW)
    # POST /billing/checkout and POST /portal/sessions from those pages.
    await stale_checkout.get_by_role("button", name=re.compile(r"^Buy Business lifetime access")).click()
    await expect(stale_checkout).to_have_url(sign_in, timeout=SLOW)
    await stale_portal.get_by_role("button", name="Manage Subscription").click()
    await expect(stale_portal).to_have_url(sign_in, timeout=SLOW)
    await stale_checkout.close()
    await stale_portal.close()

    # The old session cookie no longer signs anyone in.
    await page.context.clear_cookies()
    await page.context.add_cookies([{**session_cookie}])
    await page.goto(services.url("/account"))
    await expect(page).to_have_url(sign_in, timeout=SLOW)


async def test_journey_7_two_people_never_see_each_other(browser: Browser, services: Services) -> None:
    if services.mode == "live":
        pytest.skip("live mode: needs two Auth0 test users; runs offline only")
    contexts = [await browser.new_context(viewport={"width": 1280, "height": 860}, locale="en-US") for _ in range(2)]
    try:
        ann, bob = [await ctx.new_page() for ctx in contexts]
        ann_success = await services.subscribe(ann, services.person("journey7-ann"), "Starter", "monthly")
        bob_success = await services.subscribe(bob, services.person("journey7-bob"), "Pro", "monthly")

        # Each one's own portal session return URL, read from the portal's "Return to …" link.
        portal_returns = []
        for person in (ann, bob):
            await services.account(person).open()
            await person.get_by_role("button", name="Change Payment Method").click()
            back = person.get_by_role("link", name=re.compile(r"^Return to"))
            portal_returns.append(await back.first.get_attribute("href"))
            await back.first.click()
            await expect(person).to_have_url(re.compile(re.escape(services.url("/"))), timeout=SLOW)
        assert all(url and "/portal/return?ps=" in url for url in portal_returns), portal_returns

        rows: list[set[str]] = []
        csvs: list[str] = []
        for person in (ann, bob):
            await person.goto(services.url("/billing/history"))
            rows.append({row["id"] for row in await history_rows(person)})
            response = await person.request.get(services.url("/billing/history.csv"))
            assert response.ok
            csvs.append(await response.text())
        assert rows[0] and rows[1] and not rows[0] & rows[1], rows
        assert "Starter" in csvs[0] and "Pro" not in csvs[0], csvs[0]
        assert "Pro" in csvs[1] and "Starter" not in csvs[1], csvs[1]
        # A made-up pager cursor is refused, never answered with someone's rows.
        for cursor in ("after=eyJpZCI6MX0", "before=eyJpZCI6MX0.forged"):
            opened = await ann.goto(services.url(f"/billing/history?{cursor}"))
            assert opened is not None and opened.status == 400, cursor
            await expect(ann.locator("tbody tr[data-payment-id]")).to_have_count(0)

        for me, other_success, other_return in (
            (ann, bob_success, portal_returns[1]),
            (bob, ann_success, portal_returns[0]),
        ):
            opened = await me.goto(other_success)
            assert opened is not None and opened.status == 404, other_success
            opened = await me.goto(str(other_return))
            assert opened is not None and opened.status == 404, other_return
            await expect(me.get_by_role("heading", level=1)).not_to_contain_text("Account")
    finally:
        for ctx in contexts:
            await ctx.close()
