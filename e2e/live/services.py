"""Which services a journey runs against, chosen by the environment alone.

* **offline** (always): the `live_stack` fixture's app with the local OpenID provider and the Stripe
  emulator; page objects `LocalProviderLogin`, `EmulatorCheckout`, `EmulatorPortal`; the emulator's
  clock, chaos switch and refunds are available through `Services.emulator`.
* **live**: when `STRIPE_SECRET_KEY` starts with `sk_test_` and `AUTH0_DOMAIN`, `AUTH0_CLIENT_ID`,
  `AUTH0_CLIENT_SECRET`, `E2E_AUTH0_USERNAME`, `E2E_AUTH0_PASSWORD` are set: the app at
  `E2E_BASE_URL` (default `APP_BASE_URL`, else http://localhost:8000; started with `python -m
  app.devstack` if nothing answers there) with Stripe test mode and the Auth0 tenant; page objects
  `Auth0Login`, `StripeTestModeCheckout`, `StripeTestModePortal`. Otherwise the live runs are skipped
  with the reason printed.

A journey takes a `services` fixture (parametrised over `MODES`, body `services_for`) and is
written once.
"""

from __future__ import annotations

import asyncio
import itertools
import os
import re
import subprocess
import sys
import time
from dataclasses import dataclass
from typing import Any, Literal, Protocol
from urllib.parse import urlsplit

import httpx
import pytest
import stripe
from playwright.async_api import Locator, Page, expect

from app.settings import PROJECT_ROOT
from e2e.live.auth0 import Auth0Login
from e2e.live.stripe import StripeTestModePortal
from e2e.pages.app import AccountPage, PlansPage
from e2e.pages.identity import LocalProviderLogin
from e2e.pages.stripe import CARDS, EmulatorCheckout, EmulatorPortal, StripeTestModeCheckout

_people = itertools.count(1)

# Two cores shared with other test runs: an assertion waits up to 15 s (Playwright's default is 5 s)
# before it fails. Passing runs are not slower; only a failure takes longer to report.
expect.set_options(timeout=15_000)

LIVE_VARIABLES = ("AUTH0_DOMAIN", "AUTH0_CLIENT_ID", "AUTH0_CLIENT_SECRET", "E2E_AUTH0_USERNAME", "E2E_AUTH0_PASSWORD")

Mode = Literal["offline", "live"]


def live_skip_reason(env: dict[str, str] | None = None) -> str | None:
    """Why live mode cannot run (the message printed with the skip), or None when it can."""
    env = dict(os.environ) if env is None else env
    missing = [name for name in LIVE_VARIABLES if not env.get(name)]
    if not env.get("STRIPE_SECRET_KEY", "").startswith("sk_test_"):
        missing.insert(0, "STRIPE_SECRET_KEY=sk_test_…")
    if missing:
        return "live mode skipped: set " + ", ".join(missing) + " (see docs/QA.md)"
    return None


class Login(Protocol):
    async def sign_in_as(self, subject: str) -> None: ...
    async def confirm_sign_out(self) -> None: ...


class Checkout(Protocol):
    async def pay(self, card: str = ..., email: str | None = ..., name: str = ...) -> None: ...
    async def expect_error(self, text: str) -> None: ...
    async def back(self) -> None: ...


class Portal(Protocol):
    async def update_payment_method(self, card: str = ...) -> None: ...
    async def switch_price(self, label: re.Pattern[str]) -> None: ...
    async def confirm(self) -> None: ...
    async def cancel(self, reason: str = ...) -> None: ...
    async def return_to_app(self) -> None: ...


class Emulator:
    """The Stripe emulator's control endpoints (`e2e/stripe_emulator/README.md`) and its API."""

    def __init__(self, api_base: str) -> None:
        self.api_base = api_base
        self.stripe = stripe.StripeClient("sk_test_e2e", base_addresses={"api": api_base})

    async def _post(self, path: str, body: dict[str, Any] | None = None) -> dict[str, Any]:
        async with httpx.AsyncClient(base_url=self.api_base, timeout=60) as client:
            response = await client.post(path, json=body or {})
            response.raise_for_status()
            return dict(response.json())

    async def advance_clock(self, days: float) -> None:
        """Move the emulator's global clock; renewals and dunning retries that fall due run now."""
        await self._post("/_emulator/clock/advance", {"seconds": int(days * 86_400)})

    async def hold_webhooks(self) -> None:
        await self._post("/_emulator/chaos", {"hold": True})

    async def release_webhooks(self) -> None:
        """Switch the hold off and deliver everything queued."""
        await self._post("/_emulator/chaos", {"hold": False})
        await self._post("/_emulator/flush")

    async def deliveries(self) -> dict[str, Any]:
        async with httpx.AsyncClient(base_url=self.api_base, timeout=30) as client:
            response = await client.get("/_emulator/deliveries")
            response.raise_for_status()
            return dict(response.json())

    async def wait_until_delivered(self, within: float = 30) -> None:
        """Until no delivery is pending (the app acknowledges a webhook once it is stored)."""
        deadline = time.monotonic() + within
        while time.monotonic() < deadline:
            state = await self.deliveries()
            if state.get("idle") and not state.get("pending"):
                return
            await asyncio.sleep(0.2)
        raise AssertionError(f"webhook deliveries still pending after {within} s")


@dataclass
class Services:
    """The app's address and the page objects for one mode."""

    mode: Mode
    base_url: str
    emulator_api_base: str | None = None
    auth0_username: str = ""
    auth0_password: str = ""

    def url(self, path: str) -> str:
        return self.base_url + path

    @property
    def emulator(self) -> Emulator:
        """The emulator's controls; a journey that needs them is skipped in live mode."""
        if self.emulator_api_base is None:
            pytest.skip("live mode: this journey needs the Stripe emulator's clock/chaos controls")
        return Emulator(self.emulator_api_base)

    def login(self, page: Page) -> Login:
        if self.mode == "live":
            return Auth0Login(page, self.auth0_username, self.auth0_password)
        return LocalProviderLogin(page)

    def checkout(self, page: Page) -> Checkout:
        return StripeTestModeCheckout(page) if self.mode == "live" else EmulatorCheckout(page)

    def portal(self, page: Page) -> Portal:
        return StripeTestModePortal(page) if self.mode == "live" else EmulatorPortal(page)

    def plans(self, page: Page) -> PlansPage:
        return PlansPage(page, self.base_url)

    def account(self, page: Page) -> AccountPage:
        return AccountPage(page, self.base_url)

    def person(self, name: str) -> str:
        """A new OpenID subject/e-mail on each call (offline); live mode has one Auth0 test user."""
        if self.mode == "live":
            return self.auth0_username
        return f"{name}.{next(_people)}@example.com"  # the stack's database is new each session

    # ------------------------------------------------------------------ steps shared by journeys
    async def sign_in(self, page: Page, who: str, next_path: str = "/plans") -> None:
        await page.goto(self.url(f"/auth/login?next={next_path}"))
        await self.login(page).sign_in_as(who)
        await expect(page).to_have_url(self.url(next_path), timeout=30_000)

    async def subscribe(
        self, page: Page, who: str, plan: str = "Pro", interval: str = "monthly", card: str = CARDS["visa"]
    ) -> str:
        """Sign in, pay for a plan at Checkout, land on the success page; returns its URL."""
        await self.sign_in(page, who)
        await self.reset_person(page)
        await self.plans(page).choose(plan, interval)
        await self.checkout(page).pay(card, email=who)
        await expect(page).to_have_url(re.compile(r"/billing/checkout/success\?session_id=cs_"), timeout=60_000)
        await expect(page.get_by_test_id("subscription-status")).to_contain_text("Active")
        return page.url

    async def reset_person(self, page: Page) -> None:
        """Live mode: cancel the Auth0 test user's subscriptions left over from an earlier run, then
        wait until the app has heard of it (webhooks forwarded by `stripe listen`) and open `/plans`.

        Offline every journey signs in a new person, so there is nothing to reset.
        """
        if self.mode != "live":
            return
        client = stripe.StripeClient(os.environ["STRIPE_SECRET_KEY"])
        customers = await client.v1.customers.list_async(params={"email": self.auth0_username, "limit": 10})
        for customer in customers.data:
            subscriptions = await client.v1.subscriptions.list_async(params={"customer": customer.id})
            for subscription in subscriptions.data:
                if subscription.status not in ("canceled", "incomplete_expired"):
                    await client.v1.subscriptions.cancel_async(subscription.id)
        await self.account(page).open()
        await reload_until(
            page, page.locator("#billing-summary"), re.compile(r"don't have a plan|ended on|Lifetime"), 60
        )
        await self.plans(page).open()


async def reload_until(page: Page, locator: Locator, text: str | re.Pattern[str], within: float = 30) -> None:
    """Reload until `locator` contains `text`: for changes a webhook brings after the page was served."""
    deadline = time.monotonic() + within
    while True:
        try:
            await expect(locator).to_contain_text(text, timeout=1_500)
            return
        except AssertionError:
            if time.monotonic() > deadline:
                raise
        await page.reload()


# ---------------------------------------------------------------------------------- fixtures
def _answers(url: str) -> bool:
    try:
        return httpx.get(url, timeout=2).status_code < 500
    except httpx.HTTPError:
        return False


_live_app_url: list[str] = []


def live_app_url(config: pytest.Config) -> str:
    """The app configured for Stripe test mode and Auth0: an already running one, or started here
    (once per session, stopped at its end).

    Auth0 only redirects to registered callback URLs, so the port is the one of `E2E_BASE_URL` /
    `APP_BASE_URL` (register `<base>/auth/callback` in the Auth0 application).
    """
    if _live_app_url:
        return _live_app_url[0]
    base_url = (os.environ.get("E2E_BASE_URL") or os.environ.get("APP_BASE_URL") or "http://localhost:8000").rstrip("/")
    if not _answers(base_url + "/healthz"):
        if not os.environ.get("STRIPE_WEBHOOK_SECRET", "").startswith("whsec_"):
            pytest.fail(
                "live mode: set STRIPE_WEBHOOK_SECRET to the whsec_… that "
                f"`stripe listen --forward-to {base_url}/webhooks/stripe` prints (see docs/QA.md)"
            )
        _start_live_app(config, base_url)
    _live_app_url.append(base_url)
    return base_url


def _start_live_app(config: pytest.Config, base_url: str) -> None:
    """`python -m app.devstack` with the real keys, a fresh database and the catalogue pushed.

    The database is `<DATABASE_URL's database>_live`, recreated, so the run never sees the rows of
    the integration tests; the plans (`plans.toml`) and portal configurations (`portal.toml`) are
    pushed to the Stripe test-mode account (idempotent) and synced into it.
    """
    import tempfile
    from concurrent.futures import ThreadPoolExecutor

    from app.devstack import wait_for_http
    from e2e.conftest import _database_url, _recreate_database

    database = urlsplit(os.environ["DATABASE_URL"]).path.lstrip("/") + "_live"
    with ThreadPoolExecutor(1) as pool:  # a loop of its own: the session's loop may be running
        pool.submit(asyncio.run, _recreate_database(database)).result()
    env = {
        **os.environ,
        "APP_BASE_URL": base_url,
        "PORT": str(urlsplit(base_url).port or 80),
        "DATABASE_URL": _database_url(database),
        "DATA_DIR": tempfile.mkdtemp(prefix="billing-live-"),
    }
    process = subprocess.Popen([sys.executable, "-m", "app.devstack"], cwd=PROJECT_ROOT, env=env)

    def stop() -> None:
        process.terminate()
        try:
            process.wait(timeout=15)
        except subprocess.TimeoutExpired:
            process.kill()

    config.add_cleanup(stop)
    wait_for_http(base_url + "/healthz", timeout=90, process=process)
    for command in (["plans", "push"], ["portal", "push"]):
        subprocess.run([sys.executable, "-m", "litestar", "billing", *command], cwd=PROJECT_ROOT, env=env, check=True)


MODES = ["offline", "live"]


def services_for(request: pytest.FixtureRequest) -> Services:
    """The body of each test module's `services` fixture (`@pytest.fixture(params=MODES)`).

    `live` is skipped with the reason printed unless the environment selects it.
    """
    if request.param == "live":
        reason = live_skip_reason()
        if reason:
            pytest.skip(reason)
        return Services(
            mode="live",
            base_url=live_app_url(request.config),
            auth0_username=os.environ["E2E_AUTH0_USERNAME"],
            auth0_password=os.environ["E2E_AUTH0_PASSWORD"],
        )
    stack = request.getfixturevalue("live_stack")
    return Services(mode="offline", base_url=stack.base_url, emulator_api_base=stack.stripe_api_base)
