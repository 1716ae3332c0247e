"""Fixtures for integration tests: a migrated PostgreSQL, a scriptable OpenID provider over real
HTTP, and the app under Litestar's `AsyncTestClient` (same event loop as the test, so tests can
query the database the app writes to)."""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlencode, urlsplit

import httpx
import pytest

from app.asgi import create_app
from app.settings import Settings
from tests.support.oidc_provider import ScriptedProvider, build_provider_app
from tests.support.servers import free_port, serve_in_loop, serve_in_thread

TABLES_TO_KEEP = {"migration"}


@pytest.fixture(scope="session")
async def migrated_database() -> None:
    """Apply every migration once per test run, as `make run` does."""
    from app.devstack import apply_migrations

    await apply_migrations()


@pytest.fixture
async def db(migrated_database: None) -> AsyncIterator[None]:
    """An empty database for each test (all app tables truncated)."""
    from piccolo_conf import DB

    rows = await DB._run_in_new_connection("SELECT tablename FROM pg_tables WHERE schemaname = 'public'")
    tables = [r["tablename"] for r in rows if r["tablename"] not in TABLES_TO_KEEP]
    if tables:
        quoted = ", ".join(f'"{t}"' for t in tables)
        await DB._run_in_new_connection(f"TRUNCATE {quoted} RESTART IDENTITY CASCADE")
    yield


@pytest.fixture(scope="session")
def oidc_provider() -> Iterator[ScriptedProvider]:
    """The scriptable provider, served on a free loopback port for the whole run."""
    provider = ScriptedProvider()
    with serve_in_thread(build_provider_app(provider)) as base_url:
        provider.issuer = base_url
        yield provider


@pytest.fixture(autouse=True)
def _reset_provider(request: pytest.FixtureRequest) -> None:
    if "oidc_provider" in request.fixturenames:
        provider: ScriptedProvider = request.getfixturevalue("oidc_provider")
        provider.overrides.clear()
        provider.sign_with = None
        provider.claims_for.clear()
        provider.token_requests.clear()


def settings_env(provider: ScriptedProvider, tmp_path: Path, **extra: str) -> dict[str, str]:
    """The environment a deployment would give the app under test."""
    return {
        "SESSION_SECRET": "s" * 40,
        "DATA_DIR": str(tmp_path),
        "OIDC_ISSUER": provider.issuer,
        "AUTH0_CLIENT_ID": provider.client_id,
        "AUTH0_CLIENT_SECRET": provider.client_secret,
        "STRIPE_SECRET_KEY": "sk_test_unused",
        "STRIPE_WEBHOOK_SECRET": "whsec_unused",
        # Tests apply events explicitly (`drain`); a polling worker would add stray queries.
        "EVENT_WORKER": "off",
        **extra,
    }


@pytest.fixture
async def app_url(oidc_provider: ScriptedProvider, tmp_path: Path, db: None) -> AsyncIterator[str]:
    """The app, configured as a deployment would be, served over real HTTP on this test's loop."""
    port = free_port()
    env = settings_env(oidc_provider, tmp_path, APP_BASE_URL=f"http://127.0.0.1:{port}")
    async with serve_in_loop(create_app(Settings.from_env(env)), port) as base_url:
        yield base_url


@pytest.fixture
async def client(app_url: str) -> AsyncIterator[httpx.AsyncClient]:
    """An HTTP client with its own cookie jar (one browser)."""
    async with httpx.AsyncClient(base_url=app_url, timeout=20) as http:
        yield http


async def start_sign_in(client: httpx.AsyncClient, next_path: str = "/account") -> str:
    """GET /auth/login; returns the provider authorization URL it redirects to."""
    response = await client.get("/auth/login", params={"next": next_path}, follow_redirects=False)
    assert response.status_code == 303, response.text
    return str(response.headers["location"])


def query_of(url: str) -> dict[str, str]:
    """The query parameters of `url`, one value each."""
    return {k: v[0] for k, v in parse_qs(urlsplit(url).query).items()}


async def authorize_at_provider(authorization_url: str, subject: str = "alice") -> dict[str, str]:
    """Play the browser at the provider's authorize endpoint; returns the callback's query."""
    async with httpx.AsyncClient() as http:
        response = await http.get(f"{authorization_url}&{urlencode({'login_hint': subject})}")
    assert response.status_code in (302, 303, 307), response.text
    return query_of(response.headers["location"])


async def sign_in(client: httpx.AsyncClient, subject: str = "alice", next_path: str = "/account") -> Any:
    """The whole happy path; returns the callback response (303 to `next_path`)."""
    callback = await authorize_at_provider(await start_sign_in(client, next_path), subject)
    return await client.get("/auth/callback", params=callback)


WEBHOOK_SECRET = "whsec_integration_tests_secret"


@pytest.fixture(scope="session")
def app_port() -> int:
    """One port for every app under test, so the emulator's webhook endpoint stays valid."""
    return free_port()


@pytest.fixture(scope="session")
def stripe_emulator(app_port: int) -> Iterator[Any]:
    """The offline Stripe emulator (a real HTTP server) with the app's webhook endpoint registered."""
    from e2e.stripe_emulator import EmulatorConfig, WebhookTarget, run_in_thread

    config = EmulatorConfig(
        port=0,
        webhooks=[WebhookTarget(f"http://127.0.0.1:{app_port}/webhooks/stripe", WEBHOOK_SECRET)],
        retry_schedule=[0.2, 0.5, 1.0],
        webhook_timeout=5.0,
    )
    running = run_in_thread(config)
    yield running
    running.stop()


@pytest.fixture
def emulator_control(stripe_emulator: Any) -> Iterator[httpx.Client]:
    """Control client on the emulator, reset before the test (state, chaos switches)."""
    with httpx.Client(base_url=stripe_emulator.url, timeout=10) as http:
        http.post("/_emulator/reset").raise_for_status()
        yield http
        http.post("/_emulator/chaos", json={"shuffle": False, "duplicate": False, "delay_seconds": 0, "hold": False})


@pytest.fixture
def billing_settings(oidc_provider: ScriptedProvider, tmp_path: Path, stripe_emulator: Any, app_port: int) -> Settings:
    """Settings of an app that talks to the emulator; the event worker is off so tests drain events themselves."""
    env = settings_env(
        oidc_provider,
        tmp_path,
        APP_BASE_URL=f"http://127.0.0.1:{app_port}",
        STRIPE_SECRET_KEY="sk_test_integration",
        STRIPE_PUBLISHABLE_KEY="pk_test_integration",
        STRIPE_WEBHOOK_SECRET=WEBHOOK_SECRET,
        STRIPE_API_BASE=stripe_emulator.url,
        EVENT_WORKER="off",
    )
    return Settings.from_env(env)


@pytest.fixture
async def billing_app_url(
    billing_settings: Settings, app_port: int, db: None, emulator_control: httpx.Client
) -> AsyncIterator[str]:
    """The app against the emulator, with the demo catalogue pushed and applied through webhooks.

    The catalogue's own events are applied and then removed, so each test starts with an empty
    event log.
    """
    from app.billing.tables import Plan, StripeEvent
    from app.plans.catalog import load_catalog, push_catalog
    from app.stripe_gateway import StripeGateway
    from app.webhooks.service import drain

    gateway = StripeGateway(billing_settings.stripe)
    async with serve_in_loop(create_app(billing_settings), app_port) as base_url:
        await push_catalog(gateway, load_catalog())
        await wait_for_deliveries(billing_settings.stripe.api_base or "")
        await drain(gateway)
        assert await Plan.count() == 3, "the catalogue arrived through product/price webhooks"
        await StripeEvent.delete(force=True)
        yield base_url


async def wait_for_deliveries(emulator_url: str, seconds: float = 30.0) -> None:
    """Wait (without blocking the event loop the app runs on) until the emulator delivered everything."""
    import asyncio
    import time

    deadline = time.monotonic() + seconds
    async with httpx.AsyncClient(base_url=emulator_url) as http:
        while time.monotonic() < deadline:
            if (await http.get("/_emulator/deliveries")).json()["idle"]:
                return
            await asyncio.sleep(0.05)
    raise AssertionError("webhook deliveries did not settle")


@pytest.fixture
async def billing_client(billing_app_url: str) -> AsyncIterator[httpx.AsyncClient]:
    async with httpx.AsyncClient(base_url=billing_app_url, timeout=30) as http:
        yield http


@pytest.fixture
def gateway(billing_settings: Settings) -> Any:
    from app.stripe_gateway import StripeGateway

    return StripeGateway(billing_settings.stripe)


@pytest.fixture
async def portal_configured(billing_app_url: str, gateway: Any) -> None:
    """The Customer Portal configurations of `portal.toml`, pushed to the emulator."""
    from app.portal.service import load_portal_spec, push_portal

    await push_portal(gateway, load_portal_spec())
