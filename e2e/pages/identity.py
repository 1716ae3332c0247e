"""Sign-in pages of the identity providers."""

from __future__ import annotations

from playwright.async_api import Page


class LocalProviderLogin:
    """`oidc-provider-mock`'s authorize form: type any subject and press Authorize."""

    def __init__(self, page: Page) -> None:
        self.page = page

    async def sign_in_as(self, subject: str) -> None:
        await self.page.get_by_placeholder("sub").fill(subject)
        await self.page.get_by_role("button", name="Authorize").click()

    async def deny(self) -> None:
        await self.page.get_by_role("button", name="Deny").click()

    async def confirm_sign_out(self) -> None:
        """The provider's end-session page asks for a confirmation."""
        await self.page.get_by_role("button", name="End session").click()
