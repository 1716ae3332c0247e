"""Stripe's own Customer Portal (billing.stripe.com) in test mode, for live runs.

Checkout's page object (`StripeTestModeCheckout`) lives beside the emulator's in `e2e/pages/stripe.py`.
The portal's card form is Stripe's Payment Element, an iframe; everything else is plain buttons.
"""

from __future__ import annotations

import re

from playwright.async_api import Page, expect
from playwright.async_api import TimeoutError as PlaywrightTimeoutError

from e2e.pages.stripe import CARDS


class StripeTestModePortal:
    """Same methods as `EmulatorPortal`, against billing.stripe.com."""

    def __init__(self, page: Page) -> None:
        self.page = page

    async def update_payment_method(self, card: str = CARDS["mastercard"]) -> None:
        element = self.page.frame_locator("iframe[title*='payment' i]").first
        await element.locator("input[name=number]").fill(card, timeout=30_000)
        await element.locator("input[name=expiry]").fill("11 / 33")
        await element.locator("input[name=cvc]").fill("321")
        country_zip = element.locator("input[name=postalCode]")
        if await country_zip.count():
            await country_zip.fill("10001")
        await self.page.get_by_role("button", name=re.compile(r"^(Add|Save|Update)")).last.click()

    async def switch_price(self, label: re.Pattern[str]) -> None:
        """From the portal homepage or the update flow: pick the plan whose card matches `label`.

        `label` is the emulator's radio label ("Pro … / year"); on Stripe's page the plan is a card
        with a "Select" button, and yearly prices sit behind a "Yearly" switch.
        """
        await expect(self.page.get_by_role("button").first).to_be_visible(timeout=30_000)  # the SPA has rendered
        update = self.page.get_by_role("link", name=re.compile(r"^Update (plan|subscription)")).or_(
            self.page.get_by_role("button", name=re.compile(r"^Update (plan|subscription)"))
        )
        if await update.count():
            await update.first.click()
        if "year" in label.pattern:
            yearly = self.page.get_by_role("button", name=re.compile(r"^Yearly")).or_(
                self.page.get_by_role("tab", name=re.compile(r"^Yearly"))
            )
            if await yearly.count():
                await yearly.first.click()
        plan_name = label.pattern.split(".*")[0]
        card = (
            self.page.locator("div")
            .filter(has_text=plan_name)
            .filter(has=self.page.get_by_role("button", name="Select"))
        )
        await card.last.get_by_role("button", name="Select").click(timeout=30_000)
        await self.page.get_by_role("button", name="Continue").click()
        await self.confirm()

    async def confirm(self) -> None:
        await self.page.get_by_role("button", name=re.compile(r"^Confirm")).click(timeout=30_000)

    async def cancel(self, reason: str = "Too expensive") -> None:
        await self.page.get_by_role("button", name=re.compile(r"^Cancel (subscription|plan)")).last.click(
            timeout=30_000
        )
        reason_option = self.page.get_by_label(reason)
        try:
            await reason_option.check(timeout=10_000)
            await self.page.get_by_role("button", name=re.compile(r"^(Submit|Cancel)")).last.click()
        except PlaywrightTimeoutError:
            pass  # the reason survey is optional in the portal configuration

    async def return_to_app(self) -> None:
        await self.page.get_by_role("link", name=re.compile(r"^Return to")).first.click()

    async def expect_done(self) -> None:
        await expect(self.page.get_by_role("link", name=re.compile(r"^Return to")).first).to_be_visible()
