"""Every page on a phone (390×844): a screenshot for the README (`docs/screenshots/mobile-<page>.png`)
and nothing wider than the screen."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

import pytest
from playwright.async_api import Browser

from e2e.conftest import LiveStack, screenshot_path
from e2e.pages.site import PAGES, Site, SitePage, build_site

pytestmark = pytest.mark.browser

PHONE = {"viewport": {"width": 390, "height": 844}, "device_scale_factor": 1, "is_mobile": True, "has_touch": True}

# Pages that overflow because of a known bug in the app's (or the emulator's) templates: strict,
# so each one turns red once fixed. Keyed by SitePage.name.
KNOWN_OVERFLOWS: dict[str, str] = {}

# The elements sticking out on the right, to name the culprit in the failure message.
OVERFLOWING = """() => [...document.querySelectorAll('body *')]
    .filter(e => e.getBoundingClientRect().right > window.innerWidth + 0.5)
    .filter(e => !e.closest('.sr-only'))
    .slice(0, 8)
    .map(e => {
        const classes = typeof e.className === 'string' && e.className.trim()
            ? '.' + e.className.trim().split(/\\s+/).join('.') : '';
        const id = e.id ? '#' + e.id : '';
        return `${e.tagName.toLowerCase()}${id}${classes} right=${Math.round(e.getBoundingClientRect().right)}`;
    })"""


@pytest.fixture(scope="module")
async def site(browser: Browser, live_stack: LiveStack) -> AsyncIterator[Site]:
    yield await build_site(browser, live_stack.base_url, live_stack.stripe_api_base, "mobile")


def _params() -> list[Any]:
    return [
        pytest.param(p, id=p.name, marks=[pytest.mark.xfail(strict=True, reason=KNOWN_OVERFLOWS[p.name])])
        if p.name in KNOWN_OVERFLOWS
        else pytest.param(p, id=p.name)
        for p in PAGES
    ]


@pytest.mark.parametrize("site_page", _params())
async def test_page_fits_a_phone_screen(browser: Browser, site: Site, site_page: SitePage) -> None:
    context, page = await site_page.open(browser, site, **PHONE)
    try:
        height = await page.evaluate("document.documentElement.scrollHeight")
        # Long pages are cut at three screens to keep the PNGs small.
        await page.screenshot(path=screenshot_path(f"mobile-{site_page.name}"), full_page=height <= 3 * 844)
        scroll_width, inner_width = await page.evaluate("[document.documentElement.scrollWidth, window.innerWidth]")
        culprits = await page.evaluate(OVERFLOWING)
        assert scroll_width <= inner_width, (
            f"{site_page.name} ({page.url}) is {scroll_width}px wide on a {inner_width}px screen; "
            f"sticking out: {culprits}"
        )
    finally:
        await context.close()
