"""Every page of the site, each in the state worth looking at, for the page-by-page checks
(accessibility, mobile layout, screenshots).

`build_site` signs in one person per state (no plan, active subscription, past due, lifetime) in
their own browser context, keeps each one's cookies (`storage_state`) and the URLs that only they
can open (their Checkout success page). `SitePage.open` then opens a page in a fresh context of
the right person. Offline only: the past-due state needs the Stripe emulator's clock.
"""

from __future__ import annotations

import asyncio
import re
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any

import httpx
from playwright.async_api import Browser, BrowserContext, Page, expect

from e2e.pages.app import AccountPage, PlansPage
from e2e.pages.identity import LocalProviderLogin
from e2e.pages.stripe import CARDS, EmulatorCheckout, EmulatorPortal

NO_PLAN, ACTIVE, PAST_DUE, LIFETIME, ANONYMOUS = "no-plan", "active", "past-due", "lifetime", "anonymous"


@dataclass
class Site:
    """Where the stack answers, and each person's saved browser state."""

    base_url: str
    stripe_api_base: str
    states: dict[str, Any] = field(default_factory=dict)
    checkout_success_url: str = ""

    def url(self, path: str) -> str:
        return self.base_url + path


@dataclass(frozen=True)
class SitePage:
    """One page in one state: `name` is also its screenshot's name."""

    name: str
    person: str
    path: str = ""
    # What shows that the page is the one meant, in the state meant (a CSS selector).
    marker: str = "main"
    # For pages reached by an action rather than a URL (a sign-in error, a new Checkout Session).
    reach: Callable[[Page, Site], Awaitable[None]] | None = None

    async def open(self, browser: Browser, site: Site, **context_args: Any) -> tuple[BrowserContext, Page]:
        """A new context for `person` with `context_args`, on this page once it has loaded."""
        state = site.states.get(self.person)
        context = await browser.new_context(locale="en-US", storage_state=state, **context_args)
        page = await context.new_page()
        if self.reach is not None:
            await self.reach(page, site)
        else:
            await page.goto(site.url(self.path.replace("{checkout_success}", site.checkout_success_url)))
        await page.wait_for_load_state("load")
        await expect(page.locator(self.marker).first).to_be_visible(timeout=30_000)
        return context, page


async def _sign_in_error(page: Page, site: Site) -> None:
    await page.goto(site.url("/auth/login?next=/account"))
    await LocalProviderLogin(page).deny()
    await expect(page.get_by_role("heading", name="Sign-in failed")).to_be_visible()


async def _emulator_checkout(page: Page, site: Site) -> None:
    await PlansPage(page, site.base_url).open()
    await PlansPage(page, site.base_url).choose("Pro", "monthly")
    await expect(page.get_by_label("Card number")).to_be_visible(timeout=30_000)


PAGES = [
    SitePage("home", ANONYMOUS, "/", "main a[href*='/auth/login']"),
    SitePage("signin-error", ANONYMOUS, marker="[data-testid=signin-error]", reach=_sign_in_error),
    SitePage("account-no-plan", NO_PLAN, "/account", "[data-testid=no-plan]"),
    SitePage("account-active", ACTIVE, "/account", "[data-testid=subscription-status][data-status=active]"),
    SitePage("account-past-due", PAST_DUE, "/account", "[data-testid=billing-banner]"),
    SitePage("account-lifetime", LIFETIME, "/account", "[data-testid=lifetime-status]"),
    SitePage("plans", NO_PLAN, "/plans", "form[action*='/billing/checkout'] button"),
    SitePage("checkout-success", ACTIVE, "{checkout_success}", "[data-testid=checkout-result]"),
    SitePage("portal", ACTIVE, "/portal", "[data-workflow] button"),
    SitePage("history-empty", NO_PLAN, "/billing/history", ".history-empty"),
    SitePage("history", ACTIVE, "/billing/history", "tbody tr[data-payment-id]"),
    SitePage("history-failed", PAST_DUE, "/billing/history", "tr[data-status=failed] .badge-button"),
    SitePage("not-found", NO_PLAN, "/no-such-page", ".error-card"),
    SitePage("emulator-checkout", NO_PLAN, marker="#cardNumber", reach=_emulator_checkout),
]


async def _person(browser: Browser, site: Site, name: str) -> tuple[BrowserContext, Page]:
    context = await browser.new_context(viewport={"width": 1280, "height": 860}, locale="en-US")
    page = await context.new_page()
    await page.goto(site.url("/auth/login?next=/plans"))
    await LocalProviderLogin(page).sign_in_as(f"{name}@example.com")
    await expect(page).to_have_url(site.url("/plans"), timeout=30_000)
    return context, page


async def _subscribe(page: Page, site: Site, plan: str) -> None:
    await PlansPage(page, site.base_url).choose(plan, "monthly")
    await EmulatorCheckout(page).pay(CARDS["visa"])
    await expect(page.get_by_test_id("subscription-status")).to_contain_text("Active", timeout=30_000)


async def _active(browser: Browser, site: Site, tag: str) -> None:
    context, page = await _person(browser, site, f"site-active-{tag}")
    await _subscribe(page, site, "Pro")
    site.checkout_success_url = page.url.removeprefix(site.base_url)
    site.states[ACTIVE] = await context.storage_state()
    await context.close()


async def _lifetime(browser: Browser, site: Site, tag: str) -> None:
    context, page = await _person(browser, site, f"site-lifetime-{tag}")
    await PlansPage(page, site.base_url).buy_lifetime("Business")
    await EmulatorCheckout(page).pay(CARDS["visa"])
    await expect(page.get_by_test_id("checkout-result")).to_contain_text("lifetime access", timeout=30_000)
    site.states[LIFETIME] = await context.storage_state()
    await context.close()


async def _no_plan(browser: Browser, site: Site, tag: str) -> None:
    context, _ = await _person(browser, site, f"site-none-{tag}")
    site.states[NO_PLAN] = await context.storage_state()
    await context.close()


async def build_site(browser: Browser, base_url: str, stripe_api_base: str, tag: str) -> Site:
    """Sign in the four people and bring each to their state (about 20 s)."""
    site = Site(base_url=base_url, stripe_api_base=stripe_api_base)
    past_due, page = await _person(browser, site, f"site-pastdue-{tag}")
    await asyncio.gather(
        _active(browser, site, tag),
        _lifetime(browser, site, tag),
        _no_plan(browser, site, tag),
        _subscribe(page, site, "Starter"),
    )
    # The 0341 card attaches but every charge fails: the renewal 31 days on makes the person past due.
    await AccountPage(page, base_url).open()
    await page.get_by_role("button", name="Change Payment Method").click()
    await EmulatorPortal(page).update_payment_method(CARDS["fails_later"])
    await expect(page).to_have_url(site.url("/account"), timeout=30_000)
    async with httpx.AsyncClient(base_url=stripe_api_base, timeout=60) as client:
        (await client.post("/_emulator/clock/advance", json={"seconds": 31 * 86_400})).raise_for_status()
    status = page.get_by_test_id("subscription-status")
    for _ in range(30):
        await page.reload()
        if re.search("Past due", await status.inner_text()):
            break
        await asyncio.sleep(0.5)
    await expect(status).to_contain_text("Past due")
    site.states[PAST_DUE] = await past_due.storage_state()
    await past_due.close()
    return site
