"""Choosing a plan and paying through (emulated) Stripe Checkout, in a real browser."""

from __future__ import annotations

import re

import pytest
from playwright.async_api import Page, expect

from e2e.conftest import LiveStack, screenshot_path
from e2e.pages.app import AccountPage, PlansPage
from e2e.pages.identity import LocalProviderLogin
from e2e.pages.stripe import CARDS, EmulatorCheckout

pytestmark = pytest.mark.browser


async def sign_in(page: Page, stack: LiveStack, email: str) -> None:
    await page.goto(stack.url("/auth/login?next=/plans"))
    await LocalProviderLogin(page).sign_in_as(email)
    await expect(page).to_have_url(stack.url("/plans"))


async def test_pay_for_a_monthly_plan_and_see_it_active(page: Page, live_stack: LiveStack) -> None:
    await sign_in(page, live_stack, "ada.e2e@example.com")
    await page.screenshot(path=screenshot_path("plans"), full_page=True)
    await PlansPage(page, live_stack.base_url).choose("Pro", "monthly")
    await expect(page).to_have_url(re.compile(r"/c/pay/cs_"))
    await page.screenshot(path=screenshot_path("checkout-emulator"), full_page=True)
    await EmulatorCheckout(page).pay(CARDS["visa"])
    await expect(page).to_have_url(re.compile(r"/billing/checkout/success\?session_id=cs_"))
    await expect(page.get_by_role("heading", name="Thank you — payment received")).to_be_visible()
    await expect(page.get_by_test_id("subscription-status")).to_contain_text("Active")
    await page.screenshot(path=screenshot_path("checkout-success"), full_page=True)
    account = AccountPage(page, live_stack.base_url)
    await account.open()
    await account.expect_plan("Pro")
    await account.expect_status("Active")
    await expect(page.get_by_test_id("renewal")).to_be_visible()
    await expect(page.get_by_test_id("default-card")).to_contain_text("4242")
    await page.screenshot(path=screenshot_path("account-active"), full_page=True)


async def test_declined_card_stays_on_checkout_and_leaves_no_subscription(page: Page, live_stack: LiveStack) -> None:
    await sign_in(page, live_stack, "dora.e2e@example.com")
    await PlansPage(page, live_stack.base_url).choose("Starter", "monthly")
    checkout = EmulatorCheckout(page)
    await checkout.pay(CARDS["declined"])
    await checkout.expect_error("declined")
    await expect(page).to_have_url(re.compile(r"/c/pay/cs_"))
    await checkout.back()
    await expect(page).to_have_url(live_stack.url("/plans"))
    account = AccountPage(page, live_stack.base_url)
    await account.open()
    await expect(page.get_by_test_id("no-plan")).to_be_visible()


async def test_lifetime_purchase_shows_lifetime_access(page: Page, live_stack: LiveStack) -> None:
    await sign_in(page, live_stack, "linus.e2e@example.com")
    await PlansPage(page, live_stack.base_url).buy_lifetime("Business")
    await EmulatorCheckout(page).pay(CARDS["visa"])
    await expect(page.get_by_test_id("checkout-result")).to_contain_text("lifetime access")
    account = AccountPage(page, live_stack.base_url)
    await account.open()
    await expect(page.get_by_test_id("lifetime-status")).to_contain_text("Lifetime access")
    await account.expect_plan("Business")
