"""Auth0's Universal Login (the "New" experience) and its logout, for live runs."""

from __future__ import annotations

from playwright.async_api import Page, expect
from playwright.async_api import TimeoutError as PlaywrightTimeoutError


class Auth0Login:
    """Universal Login: one page with `#username`, `#password` and the "Continue" button.

    Auth0 identifies people by their credentials, not by a subject typed in a form, so
    `sign_in_as` ignores the subject the offline journeys use and signs in the tenant's test user.
    """

    def __init__(self, page: Page, username: str, password: str) -> None:
        self.page = page
        self.username = username
        self.password = password

    async def sign_in_as(self, subject: str = "") -> None:
        await expect(self.page.locator("#username")).to_be_visible(timeout=30_000)
        await self.page.locator("#username").fill(self.username)
        password = self.page.locator("#password")
        if not await password.is_visible():
            # Identifier-first tenants ask for the password on a second page.
            await self.page.locator("button[type=submit][name=action]").first.click()
            await expect(password).to_be_visible(timeout=30_000)
        await password.fill(self.password)
        await self.page.locator("button[type=submit][name=action]").first.click()
        consent = self.page.locator("button[type=submit][name=action][value=accept]")
        try:
            # First sign-in of a user to a third-party application shows a consent page.
            await consent.click(timeout=3_000)
        except PlaywrightTimeoutError:
            pass  # no consent page: the usual case

    async def deny(self) -> None:
        """Universal Login has no "Deny" on the login page; only the consent page can refuse."""
        await self.page.locator("button[type=submit][name=action][value=deny]").click()

    async def confirm_sign_out(self) -> None:
        """Auth0's `/v2/logout` (and OIDC end-session) redirects back without asking."""
