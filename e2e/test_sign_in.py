"""A person signs in through the local OpenID provider, sees their account, and signs out."""

from __future__ import annotations

import re

import pytest
from playwright.async_api import Page, expect

from e2e.conftest import LiveStack, screenshot_path
from e2e.pages.identity import LocalProviderLogin

pytestmark = pytest.mark.browser


async def test_sign_in_see_account_and_sign_out(page: Page, live_stack: LiveStack) -> None:
    await page.goto(live_stack.url("/"))
    await page.screenshot(path=screenshot_path("home"), full_page=True)
    await page.goto(live_stack.url("/account"))
    await expect(page).to_have_url(re.compile(r"/oauth2/authorize"))

    await LocalProviderLogin(page).sign_in_as("demo")

    await expect(page).to_have_url(live_stack.url("/account"))
    await expect(page.get_by_test_id("account-name")).to_have_text("Dana Demo")
    await expect(page.get_by_test_id("account-email")).to_contain_text("demo@example.com")
    await expect(page.get_by_role("navigation", name="Main")).to_contain_text("Dana Demo")
    await page.screenshot(path=screenshot_path("account"), full_page=True)

    session_cookie = next(c for c in await page.context.cookies() if c["name"] == "billing_session")
    assert session_cookie["httpOnly"] and session_cookie["sameSite"] == "Lax"

    await page.get_by_role("button", name="Sign out").click()
    await LocalProviderLogin(page).confirm_sign_out()
    await expect(page).to_have_url(live_stack.url("/"))
    await expect(page.get_by_role("link", name="Sign in").first).to_be_visible()

    # Signed out: the account page asks to sign in again, even with the old cookie restored.
    await page.context.add_cookies([{**session_cookie}])
    await page.goto(live_stack.url("/account"))
    await expect(page).to_have_url(re.compile(r"/oauth2/authorize"))


async def test_cancelled_sign_in_shows_a_clear_message(page: Page, live_stack: LiveStack) -> None:
    await page.goto(live_stack.url("/auth/login?next=/account"))
    await LocalProviderLogin(page).deny()
    await expect(page.get_by_role("heading", name="Sign-in failed")).to_be_visible()
    await expect(page.get_by_test_id("signin-error")).to_contain_text("cancelled")
    await page.goto(live_stack.url("/account"))
    await expect(page).to_have_url(re.compile(r"/oauth2/authorize"))
