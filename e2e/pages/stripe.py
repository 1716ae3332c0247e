"""Stripe's hosted pages: the emulator's (offline) and Stripe's own (test mode), one interface each."""

from __future__ import annotations

import re

from playwright.async_api import Page, expect

CARDS = {
    "visa": "4242 4242 4242 4242",
    "mastercard": "5555 5555 5555 4444",
    "declined": "4000 0000 0000 0002",
    "insufficient_funds": "4000 0000 0000 9995",
    "fails_later": "4000 0000 0000 0341",
}


class EmulatorCheckout:
    """The emulator's Checkout page (`e2e/stripe_emulator/templates/checkout.html`)."""

    def __init__(self, page: Page) -> None:
        self.page = page

    async def pay(self, card: str = CARDS["visa"], email: str | None = None, name: str = "Test Buyer") -> None:
        """Fill the card form and submit; the browser then follows the redirect (or stays on a decline)."""
        email_field = self.page.get_by_label("Email")
        if email and await email_field.is_editable():
            await email_field.fill(email)
        await self.page.get_by_label("Card number").fill(card)
        await self.page.get_by_label("Expiration date (MM / YY)").fill("12 / 34")
        await self.page.get_by_label("Security code (CVC)").fill("123")
        await self.page.get_by_label("Cardholder name").fill(name)
        await self.page.get_by_role("button", name="Subscribe").or_(self.page.get_by_role("button", name="Pay")).click()

    async def expect_error(self, text: str) -> None:
        await expect(self.page.get_by_role("alert")).to_contain_text(text)

    async def back(self) -> None:
        await self.page.get_by_role("link", name="Back").click()


class StripeTestModeCheckout:
    """Stripe's own hosted Checkout (checkout.stripe.com) in test mode; used when real keys are set."""

    def __init__(self, page: Page) -> None:
        self.page = page

    async def pay(self, card: str = CARDS["visa"], email: str | None = None, name: str = "Test Buyer") -> None:
        if email:
            field = self.page.locator("#email")
            if await field.is_editable():
                await field.fill(email)
        await self.page.locator("#cardNumber").fill(card)
        await self.page.locator("#cardExpiry").fill("12 / 34")
        await self.page.locator("#cardCvc").fill("123")
        await self.page.locator("#billingName").fill(name)
        await self.page.locator("button[type=submit]").click()

    async def expect_error(self, text: str) -> None:
        await expect(self.page.get_by_text(text, exact=False).first).to_be_visible(timeout=30_000)

    async def back(self) -> None:
        await self.page.get_by_role("link", name="Back").first.click()


class EmulatorPortal:
    """The emulator's Customer Portal (`portal_home.html`, `portal_flow.html`)."""

    def __init__(self, page: Page) -> None:
        self.page = page

    async def update_payment_method(self, card: str = CARDS["mastercard"]) -> None:
        await expect(self.page.get_by_role("heading", name="Update payment method")).to_be_visible()
        await self.page.get_by_label("Card number").fill(card)
        await self.page.get_by_label("Expiration date (MM / YY)").fill("11 / 33")
        await self.page.get_by_label("Security code (CVC)").fill("321")
        await self.page.get_by_label("Cardholder name").fill("Test Buyer")
        await self.page.get_by_role("button", name="Save payment method").click()

    async def switch_price(self, label: re.Pattern[str]) -> None:
        """From the portal homepage ("Update subscription") or the update flow: pick the price, confirm."""
        update = self.page.get_by_role("link", name="Update subscription")
        if await update.count():
            await update.click()
        await self.page.get_by_label(label).check()
        await self.page.get_by_role("button", name="Continue").click()
        await self.confirm()

    async def confirm(self) -> None:
        await self.page.get_by_role("button", name="Confirm").click()

    async def cancel(self, reason: str = "Too expensive") -> None:
        await self.page.get_by_label(reason).check()
        await self.page.get_by_role("button", name="Cancel subscription").click()

    async def update_email(self, email: str) -> None:
        await self.page.get_by_role("link", name="Update information").click()
        await self.page.get_by_label("Email").fill(email)
        await self.page.get_by_role("button", name="Save").click()

    async def return_to_app(self) -> None:
        await self.page.get_by_role("link", name=re.compile(r"^Return to")).first.click()
