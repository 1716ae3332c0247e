"""Issue 18 in a real browser: the main pages in every language, at desktop and phone sizes.

One subscriber chooses each language with the footer switcher (a plain form), then walks the
account, plans, billing history, portal and error pages and the emulator's Checkout page; an
anonymous visitor's browser language picks the home page's. On each page: `<html lang>` is the
language, no English UI words are left (names such as "Pro" and amounts aside) and nothing is
wider than the window (German words are long). Screenshots go to
`test-results/screenshots/languages/<lang>-<page>-<size>.png`; the German account page also to
`test-results/screenshots/de-account-desktop.png` (the README's).
"""

from __future__ import annotations

import re
import secrets
import shutil

import pytest
from playwright.async_api import Browser, Page, ViewportSize, expect

from e2e.conftest import SCREENSHOTS, LiveStack
from e2e.pages.app import PlansPage
from e2e.pages.identity import LocalProviderLogin
from e2e.pages.stripe import CARDS, EmulatorCheckout

pytestmark = pytest.mark.browser

SIZES: dict[str, ViewportSize] = {"desktop": {"width": 1280, "height": 800}, "phone": {"width": 390, "height": 844}}
LANGUAGES = ("de", "fr", "es")
# English words and phrases of the UI that no other language's page may show (case-sensitive, whole words).
ENGLISH = [
    "Account",
    "Plans",
    "Billing history",
    "Sign out",
    "Sign in",
    "Your plan",
    "Choose a plan",
    "Choose your plan",
    "Payment method",
    "Manage Subscription",
    "Change Payment Method",
    "More billing options",
    "Upgrade now",
    "Monthly",
    "Yearly",
    "months free",
    "Renews on",
    "Member since",
    "Next charge",
    "Profile",
    "Email",
    "verified",
    "Active",
    "Current plan",
    "You are on this plan",
    "Download CSV",
    "Invoice",
    "Receipt",
    "Apply",
    "Reset",
    "Per page",
    "From",
    "Succeeded",
    "Amount",
    "newest first",
    "Manage billing",
    "Update payment method",
    "Change plan",
    "Cancel subscription",
    "Invoices and receipts",
    "Billing details",
    "Page not found",
    "Go to the start page",
    "Card number",
    "Expiration date",
    "Security code",
    "Cardholder name",
    "Total due today",
    "Test mode",
    "Pay",
    "Subscribe",
    "Back",
    "Skip to content",
    "Payments are processed",
    "Language",
    "Welcome",
    "See what you paid",
    "Manage it yourself",
    "storage",
    "projects",
    "support",
    "Custom domain",
    "month",
    "year",
    "once",
    "Lifetime",
    "lifetime access",
    "Prices in",
    "Switch to",
    "with your subscription",
    "Your plan includes",
]


async def english_left(page: Page) -> list[str]:
    # Text Stripe wrote (a payment's invoice line, "1 × Pro (at $19.00 / month)") is data, like names.
    text = await page.evaluate(
        """() => { const body = document.body.cloneNode(true);
                   body.querySelectorAll('[data-stripe-text]').forEach((el) => el.remove());
                   document.documentElement.appendChild(body); const text = body.innerText; body.remove();
                   return text; }"""
    )
    return [word for word in ENGLISH if re.search(rf"(?<![\w-]){re.escape(word)}(?![\w-])", text)]


async def check(page: Page, language: str, name: str) -> None:
    """`<html lang>`, no English, no horizontal overflow, at both sizes; screenshots."""
    await expect(page.locator("html")).to_have_attribute("lang", re.compile(rf"^{language}(-[A-Z]{{2}})?$"))
    for size, viewport in SIZES.items():
        await page.set_viewport_size(viewport)
        leftover = await english_left(page)
        assert not leftover, f"{language} {name} {size}: English left: {leftover}"
        overflow = await page.evaluate("document.documentElement.scrollWidth - window.innerWidth")
        assert overflow <= 0, f"{language} {name} {size}: {overflow}px wider than the window"
        folder = SCREENSHOTS / "languages"
        folder.mkdir(parents=True, exist_ok=True)
        shot = folder / f"{language}-{name}-{size}.png"
        await page.screenshot(path=str(shot), full_page=True)
        if (language, name, size) == ("de", "account", "desktop"):
            shutil.copyfile(shot, SCREENSHOTS / "de-account-desktop.png")
    await page.set_viewport_size(SIZES["desktop"])


async def test_main_pages_in_every_language(browser: Browser, live_stack: LiveStack) -> None:
    context = await browser.new_context(viewport=SIZES["desktop"], locale="en-US")
    page = await context.new_page()
    await page.goto(live_stack.url("/auth/login?next=/plans"))
    await LocalProviderLogin(page).sign_in_as(f"sprachen{secrets.token_hex(3)}")
    await expect(page).to_have_url(live_stack.url("/plans"))
    await PlansPage(page, live_stack.base_url).choose("Pro", "monthly")
    await EmulatorCheckout(page).pay(CARDS["visa"], email="sprachen@example.com")
    await expect(page.get_by_test_id("subscription-status")).to_be_visible()

    for language in LANGUAGES:
        await page.goto(live_stack.url("/account"))
        # The switcher is a plain form: one submit button per language, named in that language.
        await page.locator(f'.language-switcher button[value="{language}"]').click()
        await expect(page).to_have_url(live_stack.url("/account"))
        await expect(page.locator(".language-switcher [aria-current=true]")).to_have_attribute("value", language)
        await check(page, language, "account")
        for name, path in (("plans", "/plans"), ("history", "/billing/history"), ("portal", "/portal")):
            await page.goto(live_stack.url(path))
            await check(page, language, name)
        response = await page.goto(live_stack.url("/no-such-page"))
        assert response is not None and response.status == 404
        await check(page, language, "error")

        # Stripe Checkout (the emulator's page) in the same language: the lifetime purchase.
        await page.goto(live_stack.url("/plans"))
        await page.locator('article[data-plan="pro"] form.lifetime-form button').click()
        await expect(page).to_have_url(re.compile(r"/c/pay/cs_"))
        await check(page, language, "checkout")
    await context.close()

    for language in LANGUAGES:  # an anonymous visitor: the browser's language
        anonymous = await browser.new_context(viewport=SIZES["desktop"], locale=f"{language}-{language.upper()}")
        home = await anonymous.new_page()
        await home.goto(live_stack.url("/"))
        await check(home, language, "home")
        await anonymous.close()
