"""Issue 12 in a real browser: what a brand-new customer trips over. One test per problem of the
issue; each failed on the code before it.

1. A person without an email pays (types one in Checkout) and completes subscribe → manage →
   change card → cancel → keep plan → history; the account shows that email and the next charge.
2. "Manage Subscription" opens the portal homepage with card, invoices, plan change and cancel.
3. A pending cancellation offers Keep my plan instead of a second cancellation.
4. Changing only the email says exactly that.
5. The plans switch and the history filter form swap with their content (JavaScript on).
6. The pages that answered 500 answer with a precise page.
7. The 404 page knows who is signed in; the CSV's Content-Type has one charset.
"""

from __future__ import annotations

import re
import secrets

import pytest
from playwright.async_api import BrowserContext, Page, expect

from e2e.conftest import LiveStack
from e2e.pages.app import AccountPage, PlansPage, Toasts
from e2e.pages.identity import LocalProviderLogin
from e2e.pages.stripe import CARDS, EmulatorCheckout, EmulatorPortal

pytestmark = pytest.mark.browser


async def sign_in(page: Page, stack: LiveStack, subject: str, next_path: str = "/plans") -> None:
    await page.goto(stack.url(f"/auth/login?next={next_path}"))
    await LocalProviderLogin(page).sign_in_as(subject)
    await expect(page).to_have_url(stack.url(next_path))


async def subscribe(page: Page, stack: LiveStack, subject: str) -> None:
    await sign_in(page, stack, subject)
    await PlansPage(page, stack.base_url).choose("Pro", "monthly")
    await EmulatorCheckout(page).pay(CARDS["visa"])
    await expect(page.get_by_test_id("subscription-status")).to_contain_text("Active")
    await AccountPage(page, stack.base_url).open()


async def test_a_new_subject_without_email_subscribes_manages_cancels_keeps_and_sees_history(
    page: Page, live_stack: LiveStack
) -> None:
    subject = f"newbie{secrets.token_hex(3)}"  # the local provider's email claim is then "newbie…", no address
    email = f"{subject}@example.com"
    await sign_in(page, live_stack, subject)
    await PlansPage(page, live_stack.base_url).choose("Pro", "monthly")
    email_field = page.get_by_label("Email")
    await expect(email_field).to_be_editable()
    await EmulatorCheckout(page).pay(CARDS["visa"], email=email)
    await expect(page.get_by_test_id("subscription-status")).to_contain_text("Active")

    account = AccountPage(page, live_stack.base_url)
    await account.open()
    await expect(page.get_by_test_id("account-email")).to_have_text(email)
    await expect(page.get_by_test_id("next-charge")).to_contain_text(re.compile(r"^\$19\.00 on "))

    # Manage Subscription: the portal's homepage, with a spinner and its gear icon while it opens.
    manage = page.get_by_role("button", name="Manage Subscription")
    await expect(manage.locator("svg.icon")).to_have_count(1)
    await expect(page.get_by_role("button", name="Change Payment Method").locator("svg.icon")).to_have_count(1)

    # Hold the form on the page (after app.js's own submit handler ran) to look at its busy state.
    await page.evaluate("document.addEventListener('submit', (event) => event.preventDefault())")
    await manage.click()
    manage_form = page.locator("form:has(input[name=workflow][value=overview])")
    await expect(manage_form.locator(".spinner")).to_be_visible()
    await expect(manage_form.locator("svg.icon")).to_be_hidden()
    await expect(manage_form.get_by_role("button")).to_be_disabled()
    await expect(manage_form.get_by_role("button")).to_have_text("Opening…")
    await page.reload()
    await page.get_by_role("button", name="Manage Subscription").click()
    await expect(page).to_have_url(re.compile(r"/p/session/bps_[^/]+/?(\?.*)?$"))
    for heading in ("Current subscription", "Payment method", "Invoice history"):
        await expect(page.get_by_role("heading", name=heading)).to_be_visible()
    await expect(page.get_by_role("link", name="Update subscription")).to_be_visible()

    # Change card from the homepage, then back to the app.
    await page.get_by_role("link", name="Update payment method").click()
    await EmulatorPortal(page).update_payment_method(CARDS["mastercard"])
    await EmulatorPortal(page).return_to_app()
    await expect(page).to_have_url(live_stack.url("/account"))
    await Toasts(page).expect("Payment method: Visa •••• 4242 → Mastercard •••• 4444")

    # Cancel from the homepage: the return lands on the cancellation page.
    await page.get_by_role("button", name="Manage Subscription").click()
    await page.get_by_role("link", name="Cancel subscription").click()
    await EmulatorPortal(page).cancel("Too expensive")
    await EmulatorPortal(page).return_to_app()
    await expect(page).to_have_url(re.compile(r"/portal/cancelled\?ps=\d+$"))
    await expect(page.get_by_role("heading", name=re.compile(r"^Your plan ends on "))).to_be_visible()
    await expect(page.get_by_test_id("kept-features")).to_be_visible()
    # Stripe's page already asked why: the question is not asked twice.
    await expect(page.get_by_role("heading", name="Why are you leaving?")).to_have_count(0)

    # Keep my plan.
    await page.get_by_role("button", name="Keep my plan").click()
    await expect(page).to_have_url(live_stack.url("/account"))
    await Toasts(page).expect(re.compile(r"You kept your plan: it renews on "))
    await expect(page.get_by_test_id("renewal")).to_have_attribute("aria-label", re.compile(r"^Renews on "))
    await expect(page.get_by_test_id("next-charge")).to_contain_text("$19.00")

    await page.get_by_role("link", name="Billing history").click()
    await expect(page.locator("tbody tr[data-payment-id]")).to_have_count(1)
    await expect(page.locator("tbody tr[data-payment-id]").first).to_contain_text("Succeeded")


async def test_a_pending_cancellation_offers_keep_my_plan_not_a_second_cancellation(
    page: Page, live_stack: LiveStack
) -> None:
    await subscribe(page, live_stack, f"twice.{secrets.token_hex(3)}@example.com")
    await page.goto(live_stack.url("/portal"))
    await page.get_by_role("button", name="Cancel subscription").click()
    await EmulatorPortal(page).cancel("I don't use the service enough")  # a reason Stripe collected
    await expect(page).to_have_url(re.compile(r"/portal/cancelled\?ps=\d+$"))

    await page.goto(live_stack.url("/portal"))
    card = page.locator("[data-workflow=cancellation_process]")
    await expect(card.get_by_test_id("cancellation-pending")).to_contain_text("Your plan already cancels on")
    await expect(card.get_by_role("button", name="Cancel subscription")).to_have_count(0)
    await AccountPage(page, live_stack.base_url).open()
    await expect(page.get_by_test_id("renewal")).to_have_attribute("aria-label", re.compile(r"^Cancels on "))
    await page.get_by_role("button", name="Keep my plan").click()
    await Toasts(page).expect(re.compile(r"You kept your plan"))
    await expect(page.get_by_role("button", name="Keep my plan")).to_have_count(0)


async def test_changing_only_the_email_says_only_that(page: Page, live_stack: LiveStack) -> None:
    old = f"only.email.{secrets.token_hex(3)}@example.com"
    await subscribe(page, live_stack, old)
    await page.goto(live_stack.url("/portal"))
    await page.get_by_role("button", name="Billing details").click()
    await EmulatorPortal(page).update_email("renamed@example.com")
    await EmulatorPortal(page).return_to_app()
    await expect(page).to_have_url(live_stack.url("/account"))
    await Toasts(page).expect(f"Billing email: {old} → renamed@example.com")
    await expect(page.locator("#flash")).not_to_contain_text("address")


async def test_plans_switch_and_history_filter_swap_with_their_content(page: Page, live_stack: LiveStack) -> None:
    await sign_in(page, live_stack, f"switcher.{secrets.token_hex(3)}@example.com")
    switch = page.get_by_role("navigation", name="Billing interval")
    await switch.get_by_role("link", name=re.compile(r"^Yearly")).click()
    await expect(page).to_have_url(re.compile(r"interval=year"))
    await expect(switch.get_by_role("link", name=re.compile(r"^Yearly"))).to_have_attribute("aria-current", "true")
    await expect(switch.get_by_role("link", name="Monthly")).not_to_have_attribute("aria-current", "true")
    await expect(page.locator("[data-plan=pro] .price")).to_contain_text("/ year")

    await page.goto(live_stack.url("/billing/history"))
    await page.get_by_label("From").fill("2026-12-01")
    await page.get_by_label("To").fill("2026-11-01")
    await page.get_by_role("button", name="Apply").click()
    # The error sits next to its field in the swapped form (it used to stay outside the swap).
    await expect(page.locator("#history-to-error")).to_have_text("The end date must be on or after the start date.")
    await expect(page.get_by_label("To")).to_have_attribute("aria-invalid", "true")
    await expect(page.locator("h1")).to_have_count(1)  # the fragment, not a page inside the page


async def test_pages_that_answered_500_now_say_what_is_wrong(
    context: BrowserContext, page: Page, live_stack: LiveStack
) -> None:
    await sign_in(page, live_stack, f"odd.{secrets.token_hex(3)}@example.com", "/account")
    host = live_stack.base_url.split("//", 1)[1].split(":")[0]
    await context.add_cookies([{"name": "tz", "value": "Mars/Olympus_Mons", "domain": host, "path": "/"}])
    for path in ("/billing/checkout/success?session_id=", "/portal/return?ps=2147483648"):
        response = await page.goto(live_stack.url(path))
        assert response is not None and response.status == 400, (path, response and response.status)
        await expect(page.get_by_role("heading", name="That request could not be understood")).to_be_visible()
    await context.add_cookies([{"name": "tz", "value": "Asia/Tokyo", "domain": host, "path": "/"}])
    response = await page.goto(live_stack.url("/billing/history?from=0001-01-01"))
    assert response is not None and response.status == 400
    await expect(page.locator("#history-from-error")).to_have_text(
        "Enter a start date between 1970-01-01 and 9998-12-31."
    )


async def test_the_404_page_shows_the_signed_in_person_and_the_csv_has_one_charset(
    page: Page, live_stack: LiveStack
) -> None:
    await sign_in(page, live_stack, f"lost.{secrets.token_hex(3)}@example.com", "/account")
    response = await page.goto(live_stack.url("/no/such/page"))
    assert response is not None and response.status == 404
    await expect(page.get_by_role("heading", name="Page not found")).to_be_visible()
    await expect(page.get_by_role("button", name="Sign out")).to_be_visible()
    await expect(page.get_by_role("link", name="Sign in")).to_have_count(0)
    csv = await page.request.get(live_stack.url("/billing/history.csv"))
    assert csv.headers["content-type"] == "text/csv; charset=utf-8"
