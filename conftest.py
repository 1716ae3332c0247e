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


@pytest.fixture(scope="session")
def browser_type_launch_args(browser_type_launch_args: dict[str, Any]) -> dict[str, Any]:
    args = {**browser_type_launch_args, "args": CHROMIUM_FLAGS}
    executable = chromium_executable()
    if executable:
        args["executable_path"] = executable
    return args
