"""Customer Portal workflows end to end: open from the app, act in the (emulated) portal, return,
see the change summary and the updated account page."""

from __future__ import annotations

import re

import pytest
from playwright.async_api import Page, expect

from e2e.conftest import LiveStack, screenshot_path
from e2e.pages.app import AccountPage, PlansPage, Toasts
from e2e.pages.identity import LocalProviderLogin
from e2e.pages.stripe import CARDS, EmulatorCheckout, EmulatorPortal

pytestmark = pytest.mark.browser


async def subscribe(page: Page, stack: LiveStack, email: str, plan: str = "Pro", interval: str = "monthly") -> None:
    await page.goto(stack.url("/auth/login?next=/plans"))
    await LocalProviderLogin(page).sign_in_as(email)
    await PlansPage(page, stack.base_url).choose(plan, interval)
    await EmulatorCheckout(page).pay(CARDS["visa"])
    await expect(page.get_by_test_id("subscription-status")).to_contain_text("Active")
    await AccountPage(page, stack.base_url).open()


async def test_change_payment_method(page: Page, live_stack: LiveStack) -> None:
    await subscribe(page, live_stack, "card.change@example.com")
    await page.get_by_role("button", name="Change Payment Method").click()
    await expect(page).to_have_url(re.compile(r"/p/session/bps_.*/payment-method"))
    await page.screenshot(path=screenshot_path("portal-payment-method"), full_page=True)
    await EmulatorPortal(page).update_payment_method(CARDS["mastercard"])
    await expect(page).to_have_url(live_stack.url("/account"))
    await Toasts(page).expect("Payment method: Visa •••• 4242 → Mastercard •••• 4444")
    await expect(page.get_by_test_id("default-card")).to_contain_text("Mastercard •••• 4444")
    await page.screenshot(path=screenshot_path("portal-return-summary"), full_page=True)


async def test_switch_to_yearly_from_manage_subscription(page: Page, live_stack: LiveStack) -> None:
    await subscribe(page, live_stack, "switch.yearly@example.com")
    await page.get_by_role("button", name="Manage Subscription").click()
    await EmulatorPortal(page).switch_price(re.compile(r"Pro.*year"))
    await EmulatorPortal(page).return_to_app()
    await expect(page).to_have_url(live_stack.url("/account"))
    await Toasts(page).expect(re.compile(r"Plan: Pro monthly → Pro yearly, from "))
    await expect(page.get_by_test_id("plan-name")).to_contain_text("/ year")


async def test_switch_plan_chosen_on_the_plans_page(page: Page, live_stack: LiveStack) -> None:
    await subscribe(page, live_stack, "plan.change@example.com", plan="Starter")
    await PlansPage(page, live_stack.base_url).open()
    await page.get_by_role("button", name="Switch to Business monthly").click()
    await EmulatorPortal(page).confirm()
    await expect(page).to_have_url(re.compile(r"/plans"))
    await Toasts(page).expect("Plan: Starter monthly → Business monthly")
    await AccountPage(page, live_stack.base_url).open()
    await AccountPage(page, live_stack.base_url).expect_plan("Business")


async def test_cancel_at_period_end(page: Page, live_stack: LiveStack) -> None:
    await subscribe(page, live_stack, "cancel.me@example.com")
    await page.goto(live_stack.url("/portal"))
    await page.screenshot(path=screenshot_path("portal-workflows"), full_page=True)
    await page.get_by_role("button", name="Cancel subscription").click()
    await EmulatorPortal(page).cancel("Too expensive")
    await expect(page).to_have_url(re.compile(r"/portal/cancelled\?ps=\d+$"))
    await Toasts(page).expect(re.compile(r"Cancels on "))
    await AccountPage(page, live_stack.base_url).open()
    await expect(page.get_by_test_id("renewal")).to_have_attribute("aria-label", re.compile(r"^Cancels on "))
    await expect(page.get_by_test_id("subscription-status")).to_contain_text("Active")


async def test_update_billing_email(page: Page, live_stack: LiveStack) -> None:
    await subscribe(page, live_stack, "old.email@example.com")
    await page.goto(live_stack.url("/portal"))
    await page.get_by_role("button", name="Billing details").click()
    await EmulatorPortal(page).update_email("new.email@example.com")
    await EmulatorPortal(page).return_to_app()
    await expect(page).to_have_url(live_stack.url("/account"))
    await Toasts(page).expect("Billing email: old.email@example.com → new.email@example.com")


async def test_billing_review_without_changes_says_so(page: Page, live_stack: LiveStack) -> None:
    await subscribe(page, live_stack, "just.looking@example.com")
    await page.goto(live_stack.url("/portal"))
    await page.get_by_role("button", name="Invoices and receipts").click()
    await expect(page.get_by_role("link", name=re.compile(r"Download PDF"))).to_be_visible()
    await EmulatorPortal(page).return_to_app()
    await expect(page).to_have_url(re.compile(r"/billing/history"))
    await Toasts(page).expect("No changes")


async def test_person_without_customer_is_pointed_to_plans(page: Page, live_stack: LiveStack) -> None:
    await page.goto(live_stack.url("/auth/login?next=/portal"))
    await LocalProviderLogin(page).sign_in_as("no.customer@example.com")
    await expect(page.get_by_role("heading", name="Nothing to manage yet")).to_be_visible()
    await expect(page.get_by_role("link", name="Choose a plan")).to_be_visible()
