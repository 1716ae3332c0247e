"""axe-core (bundled by `axe-playwright-python`, no network) on every page, each in the states
worth checking: zero serious or critical violations. Plus the two things axe cannot judge alone:
forms have labels and status badges are not colour only."""

from __future__ import annotations

import re
from collections.abc import AsyncIterator
from typing import Any

import pytest
from axe_playwright_python.async_playwright import Axe
from playwright.async_api import Browser, Locator, expect

from e2e.conftest import LiveStack, screenshot_path
from e2e.pages.site import ACTIVE, PAGES, PAST_DUE, Site, SitePage, build_site

pytestmark = pytest.mark.browser

BLOCKING = ("serious", "critical")

# Pages with a known violation in the app's (or the emulator's) templates: strict, so each one
# turns red once fixed. Keyed by SitePage.name.
KNOWN_VIOLATIONS: dict[str, str] = {}

# Desktop screenshots of the pages no journey photographs (the others keep their journey's picture).
SCREENSHOTS = {"signin-error", "account-no-plan", "not-found"}


@pytest.fixture(scope="module")
async def site(browser: Browser, live_stack: LiveStack) -> AsyncIterator[Site]:
    yield await build_site(browser, live_stack.base_url, live_stack.stripe_api_base, "a11y")


def _describe(violations: list[dict[str, Any]]) -> str:
    lines = []
    for violation in violations:
        targets = [", ".join(node["target"]) for node in violation["nodes"]][:5]
        lines.append(f"{violation['impact']}: {violation['id']} ({violation['help']}) at {targets}")
    return "\n".join(lines)


def _params() -> list[Any]:
    return [
        pytest.param(p, id=p.name, marks=[pytest.mark.xfail(strict=True, reason=KNOWN_VIOLATIONS[p.name])])
        if p.name in KNOWN_VIOLATIONS
        else pytest.param(p, id=p.name)
        for p in PAGES
    ]


@pytest.mark.parametrize("site_page", _params())
async def test_no_serious_or_critical_axe_violations(browser: Browser, site: Site, site_page: SitePage) -> None:
    context, page = await site_page.open(browser, site, viewport={"width": 1280, "height": 860})
    try:
        if site_page.name in SCREENSHOTS:
            await page.screenshot(path=screenshot_path(site_page.name), full_page=True)
        results = await Axe().run(page)
        violations = [v for v in results.response["violations"] if v["impact"] in BLOCKING]
        assert not violations, f"{site_page.name} ({page.url}):\n{_describe(violations)}"
    finally:
        await context.close()


@pytest.mark.parametrize(
    "site_page", [p for p in PAGES if p.name in ("plans", "history", "emulator-checkout")], ids=str
)
async def test_every_form_control_has_a_label(browser: Browser, site: Site, site_page: SitePage) -> None:
    context, page = await site_page.open(browser, site, viewport={"width": 1280, "height": 860})
    try:
        unlabelled = await page.locator("input:not([type=hidden]), select, textarea").evaluate_all(
            """els => els.filter(e => !(e.labels && e.labels.length) && !e.getAttribute('aria-label')
                                      && !e.getAttribute('aria-labelledby')).map(e => e.outerHTML)"""
        )
        assert not unlabelled, unlabelled
    finally:
        await context.close()


@pytest.mark.parametrize("person", [ACTIVE, PAST_DUE])
async def test_status_badge_says_the_status_in_words(browser: Browser, site: Site, person: str) -> None:
    account = next(p for p in PAGES if p.person == person and p.path == "/account")
    context, page = await account.open(browser, site)
    try:
        badge = page.get_by_test_id("subscription-status")
        await expect(badge).to_have_text({ACTIVE: "✓ Active", PAST_DUE: "! Past due"}[person])
        # The icon is decoration; the word is what assistive technology reads.
        await expect(badge.locator("[aria-hidden=true]")).to_have_count(1)
    finally:
        await context.close()


async def _shown(tooltip: Locator) -> bool:
    """Whether the visually hidden (1×1, clipped) failure reason is open: Playwright's "visible"
    counts a clipped 1 px box as visible, so measure it."""
    box = await tooltip.bounding_box()
    return box is not None and box["width"] > 2 and box["height"] > 2


async def test_failure_reason_is_shown_on_keyboard_focus_and_hover(browser: Browser, site: Site) -> None:
    history = next(p for p in PAGES if p.name == "history-failed")
    context, page = await history.open(browser, site)
    try:
        badge = page.locator("tr[data-status=failed] .badge-button").first
        reason = page.locator("tr[data-status=failed] [role=tooltip]").first
        await expect(badge).to_have_accessible_description(re.compile(r"\S"))
        assert not await _shown(reason)
        await badge.focus()
        assert await _shown(reason), "focusing the Failed badge should open its reason"
        await page.keyboard.press("Escape")  # WCAG 1.4.13: dismissable without moving focus
        assert not await _shown(reason), "Escape should close the reason"
        await badge.blur()
        await badge.hover()
        assert await _shown(reason), "hovering the Failed badge should open its reason"
    finally:
        await context.close()
