"""Test-wide settings shared by `tests/` and `e2e/`.

Browser tests use pytest-playwright-asyncio (async Playwright API) so that they share one
session-scoped event loop with pytest-asyncio (see `asyncio_default_*_loop_scope` in
pyproject.toml); the sync pytest-playwright plugin cannot run in the same session.
"""

from __future__ import annotations

import os
import shutil
from typing import Any

import pytest

CHROMIUM_FLAGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
]


def chromium_executable() -> str | None:
    """Debian's Chromium when present (CI and dev machines), else Playwright's own browser."""
    return os.environ.get("CHROMIUM_PATH") or shutil.which("chromium") or None


def pytest_configure(config: pytest.Config) -> None:
    """Compile the page languages' catalogs (`make translations` does the same; `.mo` files are
    not committed), so `uv run pytest` works in a fresh checkout too."""
    from babel.messages.mofile import write_mo
    from babel.messages.pofile import read_po

    from app.web.i18n import TRANSLATIONS_DIR

    for po in TRANSLATIONS_DIR.glob("*/LC_MESSAGES/messages.po"):
        mo = po.with_suffix(".mo")
        if not mo.exists() or mo.stat().st_mtime < po.stat().st_mtime:
            with po.open("rb") as source:
                catalog = read_po(source)
            with mo.open("wb") as target:
                write_mo(target, catalog)


@pytest.fixture(scope="session")
def browser_type_launch_args(browser_type_launch_args: dict[str, Any]) -> dict[str, Any]:
    args = {**browser_type_launch_args, "args": CHROMIUM_FLAGS}
    executable = chromium_executable()
    if executable:
        args["executable_path"] = executable
    return args


def _ensure_database() -> None:
    """Point `DATABASE_URL` at a PostgreSQL before any app module (and `piccolo_conf`) is imported.

    Runs when this root conftest is imported, which pytest does before it imports `tests/` or
    `e2e/` conftests (a `pytest_configure` hook would run too late).

    CI exports `DATABASE_URL` for a fresh database on the machine's PostgreSQL; without it an
    embedded PostgreSQL is started in a temporary directory and deleted at the end of the run.
    """
    if os.environ.get("DATABASE_URL"):
        return
    import tempfile
    from pathlib import Path

    from app.devstack import start_embedded_postgres

    root = Path(tempfile.mkdtemp(prefix="billing-test-"))
    os.environ["XDG_RUNTIME_DIR"] = str(root / "run")
    os.environ["DATABASE_URL"] = start_embedded_postgres(root / "postgres", database="billing_test")


_ensure_database()
