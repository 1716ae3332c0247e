"""Health check, error pages, redirects and cookies."""

from __future__ import annotations

import gzip

import httpx
import pytest

from app.web.redirects import safe_next_path
from tests.conftest import sign_in


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        ("/account", "/account"),
        ("/billing/history?page=2&size=25", "/billing/history?page=2&size=25"),
        (None, "/account"),
        ("", "/account"),
        ("https://evil.example/", "/account"),
        ("//evil.example/", "/account"),
        ("/\\evil.example", "/account"),
        ("/\tevil", "/account"),
        ("account", "/account"),
        ("javascript:alert(1)", "/account"),
    ],
)
def test_safe_next_path_keeps_only_local_paths(value: str | None, expected: str) -> None:
    assert safe_next_path(value) == expected


async def test_healthz_reports_the_database_and_the_event_queue(client: httpx.AsyncClient) -> None:
    response = await client.get("/healthz")
    assert response.status_code == 200
    body = response.json()
    assert body["status"] == "ok" and body["database"] == "ok" and body["problems"] == []
    assert body["events"] == {"due": 0, "oldest_due_seconds": 0.0, "processing": 0, "failed": 0, "dead": 0}
    assert body["worker"] == "off", "this app's tests run without an in-process worker"
    assert "set-cookie" not in response.headers


async def test_unknown_page_gets_the_styled_404(client: httpx.AsyncClient) -> None:
    response = await client.get("/no/such/page")
    assert response.status_code == 404
    assert "Page not found" in response.text
    assert '<nav class="nav"' in response.text  # the site layout, not a bare error


async def test_htmx_404_is_an_inline_fragment_for_the_flash_area(client: httpx.AsyncClient) -> None:
    response = await client.get("/no/such/page", headers={"HX-Request": "true"})
    assert response.status_code == 404
    assert response.headers["hx-retarget"] == "#flash"
    assert "<html" not in response.text and "Page not found" in response.text


async def test_home_invites_to_sign_in_and_sends_members_to_their_account(client: httpx.AsyncClient) -> None:
    response = await client.get("/")
    assert response.status_code == 200 and 'href="/auth/login"' in response.text
    await sign_in(client)
    response = await client.get("/")
    assert response.status_code == 303 and response.headers["location"] == "/account"


async def test_cookies_are_httponly_and_samesite_lax(client: httpx.AsyncClient) -> None:
    response = await client.get("/auth/login")
    cookie = response.headers["set-cookie"].lower()
    assert "httponly" in cookie and "samesite=lax" in cookie


async def test_static_htmx_is_served_and_pinned(client: httpx.AsyncClient) -> None:
    page = await client.get("/")
    assert "/static/vendor/htmx-2.0.11.min.js" in page.text
    script = await client.get("/static/vendor/htmx-2.0.11.min.js")
    assert script.status_code == 200 and '"2.0.11"' in script.text


async def test_pages_are_gzipped_at_the_default_level_for_browsers_that_ask(client: httpx.AsyncClient) -> None:
    """A page is gzipped when the browser accepts it, at zlib's default level (the gzip header's
    XFL byte is 2 at level 9, Litestar's default, and 4 at level 1), and reads the same."""
    plain = await client.get("/plans", headers={"Accept-Encoding": "identity"})
    async with client.stream("GET", "/plans", headers={"Accept-Encoding": "gzip"}) as response:
        raw = b"".join([chunk async for chunk in response.aiter_raw()])
    assert response.headers["content-encoding"] == "gzip"
    assert raw[:2] == b"\x1f\x8b" and raw[8] == 0
    assert gzip.decompress(raw).decode() == plain.text
