"""Journeys 1 and 2 with JavaScript switched off: every step is a plain link or form.

The journeys are the ones of `test_journeys.py`, run in a browser context with
`java_script_enabled=False` (the `context` fixture below replaces e2e/conftest.py's). Offline
only: Stripe's own hosted pages need JavaScript, so the live variants are skipped.
"""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest
from playwright.async_api import Browser, BrowserContext, Page

from e2e.live.services import MODES, Services, services_for
from e2e.test_journeys import test_journey_1_subscribe_change_card_switch_yearly_cancel_and_see_history as journey_1
from e2e.test_journeys import test_journey_2_lifetime_purchase_shows_lifetime_access as journey_2

pytestmark = pytest.mark.browser


@pytest.fixture(params=MODES)
def services(request: pytest.FixtureRequest) -> Services:
    return services_for(request)


@pytest.fixture
async def context(browser: Browser) -> AsyncIterator[BrowserContext]:
    ctx = await browser.new_context(viewport={"width": 1280, "height": 860}, locale="en-US", java_script_enabled=False)
    yield ctx
    await ctx.close()


@pytest.fixture
def offline(services: Services) -> Services:
    if services.mode == "live":
        pytest.skip("live mode: Stripe's hosted Checkout and Customer Portal need JavaScript")
    return services


async def test_journey_1_without_javascript(page: Page, offline: Services) -> None:
    assert not await _javascript_runs(page, offline)
    await journey_1(page, offline)


async def test_journey_2_without_javascript(page: Page, offline: Services) -> None:
    assert not await _javascript_runs(page, offline)
    await journey_2(page, offline)


async def _javascript_runs(page: Page, services: Services) -> bool:
    """Whether a page's scripts run: `<noscript>`-free check via a script that edits the title."""
    await page.route(
        "**/__js_probe",
        lambda route: route.fulfill(
            content_type="text/html", body="<title>off</title><script>document.title = 'on'</script>"
        ),
    )
    await page.goto(services.url("/__js_probe"))
    running = await page.title() == "on"
    await page.unroute("**/__js_probe")
    return running
