"""Browser tests against the app as `make run` starts it (`python -m app.devstack`).

The stack runs as a child process with its embedded defaults: the local OpenID provider, the
Stripe emulator, and the app on free ports. It uses its own database on the PostgreSQL named by
`DATABASE_URL` (set by the root conftest), so it never sees rows of the integration tests.
"""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import urlsplit, urlunsplit

import asyncpg
import pytest
from playwright.async_api import Browser, BrowserContext, Page

from app.devstack import wait_for_http
from app.settings import PROJECT_ROOT
from tests.support.servers import free_port

# Tests never rewrite tracked files: `make screenshots` copies these into docs/screenshots/.
SCREENSHOTS = PROJECT_ROOT / "test-results" / "screenshots"


@dataclass(frozen=True)
class LiveStack:
    """Where the running stack answers."""

    base_url: str
    oidc_issuer: str
    stripe_api_base: str
    log_path: Path

    def url(self, path: str) -> str:
        return self.base_url + path


def _database_url(name: str) -> str:
    parts = urlsplit(os.environ["DATABASE_URL"])
    return urlunsplit(parts._replace(path=f"/{name}"))


async def _recreate_database(name: str) -> None:
    admin = await asyncpg.connect(_database_url("postgres"))
    try:
        await admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        await admin.execute(f'CREATE DATABASE "{name}"')
    finally:
        await admin.close()


@pytest.fixture(scope="session")
async def live_stack(tmp_path_factory: pytest.TempPathFactory) -> AsyncIterator[LiveStack]:
    """`make run`'s stack on free ports, with a fresh database, for the whole session."""
    database = urlsplit(os.environ["DATABASE_URL"]).path.lstrip("/") + "_e2e"
    await _recreate_database(database)
    data_dir = tmp_path_factory.mktemp("stack")
    port, oidc_port, stripe_port = free_port(), free_port(), free_port()
    env = {
        key: value
        for key, value in os.environ.items()
        if not key.startswith(("AUTH0_", "OIDC_", "STRIPE_", "SESSION_", "APP_BASE_URL", "REDIS_URL"))
    }
    env.update(
        DATABASE_URL=_database_url(database),
        DATA_DIR=str(data_dir),
        PORT=str(port),
        OIDC_PORT=str(oidc_port),
        STRIPE_EMULATOR_PORT=str(stripe_port),
        LOG_LEVEL="INFO",
    )
    log_path = data_dir / "stack.log"
    with open(log_path, "wb") as log:  # noqa: ASYNC230 (once per session, before the stack starts)
        process = subprocess.Popen(  # noqa: ASYNC220 (started once per session)
            [sys.executable, "-m", "app.devstack"],
            cwd=PROJECT_ROOT,
            env=env,
            stdout=log,
            stderr=subprocess.STDOUT,
        )
        try:
            wait_for_http(f"http://127.0.0.1:{port}/healthz", timeout=180, process=process)
        except RuntimeError:
            process.kill()
            raise RuntimeError("the stack did not start:\n" + log_path.read_text()[-4000:]) from None
        try:
            yield LiveStack(
                base_url=f"http://localhost:{port}",
                oidc_issuer=f"http://localhost:{oidc_port}",
                stripe_api_base=f"http://localhost:{stripe_port}",
                log_path=log_path,
            )
        finally:
            process.terminate()
            try:
                process.wait(timeout=15)
            except subprocess.TimeoutExpired:
                process.kill()


@pytest.fixture
async def context(browser: Browser) -> AsyncIterator[BrowserContext]:
    """A fresh browser profile (cookies, storage) for each test."""
    ctx = await browser.new_context(viewport={"width": 1280, "height": 860}, locale="en-US")
    yield ctx
    await ctx.close()


@pytest.fixture
async def page(context: BrowserContext) -> AsyncIterator[Page]:
    yield await context.new_page()


def screenshot_path(name: str) -> Path:
    """Where a page's screenshot goes (`test-results/screenshots/<name>.png`; `make screenshots` copies
    them to `docs/screenshots/` for the README)."""
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    return SCREENSHOTS / f"{name}.png"
