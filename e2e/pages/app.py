"""The billing portal's own pages."""

from __future__ import annotations

import re

from playwright.async_api import Page, expect


class PlansPage:
    def __init__(self, page: Page, base_url: str) -> None:
        self.page = page
        self.base_url = base_url

    async def open(self, interval: str = "month") -> None:
        await self.page.goto(f"{self.base_url}/plans?interval={interval}")

    async def choose(self, plan: str, interval: str = "monthly") -> None:
        await self.page.get_by_role("button", name=f"Upgrade now to {plan} {interval}").click()

    async def buy_lifetime(self, plan: str) -> None:
        await self.page.get_by_role("button", name=re.compile(f"Buy {plan} lifetime access")).click()


class AccountPage:
    def __init__(self, page: Page, base_url: str) -> None:
        self.page = page
        self.base_url = base_url

    async def open(self) -> None:
        await self.page.goto(f"{self.base_url}/account")

    async def expect_status(self, label: str) -> None:
        await expect(self.page.get_by_test_id("subscription-status")).to_contain_text(label)

    async def expect_plan(self, name: str) -> None:
        await expect(self.page.get_by_test_id("plan-name")).to_contain_text(name)


class Toasts:
    """The flash/toast area of every page."""

    def __init__(self, page: Page) -> None:
        self.page = page

    async def expect(self, text: str | re.Pattern[str]) -> None:
        await expect(self.page.locator("#flash")).to_contain_text(text)
