"""Server-side sessions exist only when something must be stored, and expire."""

from __future__ import annotations

import asyncio
import contextlib
import os
from pathlib import Path
from typing import Any

import httpx
import pytest
import redis.asyncio as aioredis
from litestar.stores.file import FileStore
from litestar.stores.redis import RedisStore

from app.web import sessions
from app.web.sessions import PENDING_SESSION_TTL, purge_expired_sessions
from tests.conftest import sign_in

ANONYMOUS_PATHS = ["/", "/plans", "/account", "/billing/history", "/portal", "/no/such/page", "/static/js/app.js"]


def session_files(data_dir: Path) -> list[Path]:
    folder = data_dir / "sessions"
    return [p for p in folder.iterdir() if p.is_file()] if folder.exists() else []


async def test_a_thousand_anonymous_gets_create_no_session(client: httpx.AsyncClient, tmp_path: Path) -> None:
    responses: list[httpx.Response] = []
    for batch in range(50):  # 1,000 requests, 20 at a time (one client's connection pool)
        paths = [ANONYMOUS_PATHS[(batch * 20 + i) % len(ANONYMOUS_PATHS)] for i in range(20)]
        responses += await asyncio.gather(*(client.get(path) for path in paths))
    assert len(responses) == 1000
    assert {r.status_code for r in responses} <= {200, 303, 404}
    assert not [r for r in responses if "billing_session" in r.headers.get("set-cookie", "")]
    assert session_files(tmp_path) == []
    # Something to store (a sign-in's state and nonce) is what creates one.
    await client.get("/auth/login", params={"next": "/account"})
    assert len(session_files(tmp_path)) == 1


async def test_an_unfinished_sign_in_expires_soon_and_sign_out_deletes_the_session(
    client: httpx.AsyncClient, tmp_path: Path
) -> None:
    await client.get("/auth/login", params={"next": "/account"})
    store = FileStore(path=tmp_path / "sessions")
    pending = client.cookies["billing_session"]
    assert len(session_files(tmp_path)) == 1
    assert 0 < (await store.expires_in(pending) or 0) <= PENDING_SESSION_TTL
    await sign_in(client)
    signed_in = client.cookies["billing_session"]
    assert signed_in != pending and len(session_files(tmp_path)) == 1  # rotated: the pending one is gone
    assert (await store.expires_in(signed_in) or 0) > PENDING_SESSION_TTL
    page = await client.get("/account")
    csrf = page.cookies.get("billing_csrf") or client.cookies.get("billing_csrf")
    response = await client.post("/auth/logout", data={"_csrf_token": csrf})
    assert response.status_code in (302, 303)
    assert session_files(tmp_path) == []


async def test_expired_file_sessions_are_swept(tmp_path: Path) -> None:
    store = FileStore(path=tmp_path / "sessions", create_directories=True)
    await store.set("old", b"{}", expires_in=1)
    await store.set("fresh", b"{}", expires_in=3600)
    await asyncio.sleep(1.1)
    sweeper = asyncio.create_task(purge_expired_sessions(store, every=3600))
    try:
        for _ in range(100):
            if len(session_files(tmp_path)) == 1:
                break
            await asyncio.sleep(0.02)
    finally:
        sweeper.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await sweeper
    assert len(session_files(tmp_path)) == 1
    assert await store.exists("fresh")


async def test_redis_sessions_carry_their_expiry() -> None:
    """Redis (several web processes) deletes expired sessions itself: every key has a TTL."""
    client = aioredis.from_url("redis://127.0.0.1:6379/7")
    store = RedisStore(client, namespace="billing-sessions-test")
    try:
        await store.set("pending", b"{}", expires_in=PENDING_SESSION_TTL)
        assert 0 < await client.ttl("billing-sessions-test:pending") <= PENDING_SESSION_TTL
    finally:
        await store.delete_all()
        await client.aclose()


async def test_an_unchanged_session_is_not_written_again(
    client: httpx.AsyncClient, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    await sign_in(client)
    session_id = client.cookies["billing_session"]
    [file] = session_files(tmp_path)
    written = file.stat().st_mtime_ns
    for path in ("/account", "/plans", "/portal", "/billing/history"):
        page = await client.get(path)
        assert page.status_code == 200
        assert "billing_session" not in page.headers.get("set-cookie", ""), path
    assert file.stat().st_mtime_ns == written and client.cookies["billing_session"] == session_id
    # A change is written at once: a flash message shown on the next page.
    await client.post(
        "/account/keep-plan", data={"_csrf_token": client.cookies["billing_csrf"]}, follow_redirects=False
    )
    assert file.stat().st_mtime_ns != written
    assert "nothing to undo" in (await client.get("/account")).text
    # Unchanged, but last written longer ago than REWRITE_AFTER_SECONDS: written again (expiry renewed).
    monkeypatch.setattr(sessions, "REWRITE_AFTER_SECONDS", -1)
    again = await client.get("/account")
    assert "billing_session" in again.headers.get("set-cookie", "")
    assert (await FileStore(path=tmp_path / "sessions").expires_in(session_id) or 0) > PENDING_SESSION_TTL


async def test_the_session_file_store_reads_what_litestar_wrote_and_drops_expired(tmp_path: Path) -> None:
    """`SessionFileStore.get` (a plain read in the event loop) finds the file Litestar's `FileStore.set`
    wrote under its own name for the key, answers None for an unknown key, and removes an expired one."""
    store = sessions.SessionFileStore(path=tmp_path, create_directories=True)
    await FileStore.set(store, "sid-1", b'{"user_id": 7}', expires_in=60)
    await FileStore.set(store, "sid-old", b"{}", expires_in=1)
    assert await store.get("sid-1") == b'{"user_id": 7}'
    assert await store.get("sid-unknown") is None
    await asyncio.sleep(1.1)
    assert await store.get("sid-old") is None
    assert len(os.listdir(tmp_path)) == 1


async def test_an_unreachable_redis_is_a_503_page_and_envelope_not_a_500(
    db: None, oidc_provider: Any, tmp_path: Path
) -> None:
    """Sessions and rate limits in Redis (`REDIS_URL`), and Redis gone: pages and the host API say
    "try again shortly" with `Retry-After`, in the person's language; nothing is a 500."""
    from app.asgi import create_app
    from app.settings import Settings
    from tests.conftest import settings_env
    from tests.support.servers import free_port, serve_in_loop

    port, dead = free_port(), free_port()
    env = settings_env(
        oidc_provider, tmp_path, APP_BASE_URL=f"http://127.0.0.1:{port}", REDIS_URL=f"redis://127.0.0.1:{dead}/0"
    )
    async with serve_in_loop(create_app(Settings.from_env(env)), port) as base_url:
        async with httpx.AsyncClient(base_url=base_url, cookies={"billing_session": "a" * 32}) as http:
            page = await http.get("/account")
            german = await http.get("/plans", headers={"Accept-Language": "de"})
            api = await http.get("/api/v1/customers/erin/state", headers={"Authorization": "Bearer bpk_x_y"})
    assert page.status_code == 503 and page.headers["retry-after"] == "5"
    assert "Nothing was lost; please try again shortly." in page.text
    assert german.status_code == 503 and "Es ist nichts verloren gegangen" in german.text
    assert api.status_code == 503 and api.headers["retry-after"] == "5"
    assert api.json()["error_code"] == "service_unavailable"
