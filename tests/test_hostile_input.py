"""Every route and query/form parameter with hostile values: never a 5xx, never a cut-off download.

The route table below must name every route the app registers (the test fails on a new route that
is missing from it), so a new parameter cannot slip past this walk.
"""

from __future__ import annotations

import re
from typing import Any
from urllib.parse import quote, urlsplit

import httpx
import pytest

from app.portal.tables import PortalSession
from tests.conftest import sign_in
from tests.support.billing import buy, signed_in_user

pytestmark = pytest.mark.usefixtures("portal_configured")

HUGE = "9" * 400
VALUES = [
    "",
    " ",
    "-1",
    "0",
    "2147483648",  # 2**31: past PostgreSQL's integer
    "99999999999999999999999",
    HUGE,
    "x" * 6000,
    "\x00",
    "a\x00b",
    "0001-01-01",
    "9999-12-31",
    "2026-02-30",
    "2026-13-01",
    "1e309",
    "NaN",
    "<script>alert(1)</script>",
    "../../etc/passwd",
    "%",
    "🙂",
]
# (method, path, parameters walked); "junk" is a parameter no handler declares.
ROUTES: list[tuple[str, str, tuple[str, ...]]] = [
    ("GET", "/", ("junk",)),
    ("GET", "/healthz", ("junk",)),
    ("GET", "/account", ("junk",)),
    ("POST", "/account/keep-plan", ("junk",)),
    ("GET", "/plans", ("interval",)),
    ("POST", "/billing/checkout", ("price",)),
    ("GET", "/billing/checkout/success", ("session_id",)),
    ("GET", "/billing/history", ("status", "from", "to", "size", "after", "before")),
    ("GET", "/billing/history.csv", ("status", "from", "to")),
    ("GET", "/portal", ("junk",)),
    ("POST", "/portal/sessions", ("workflow", "price")),
    ("GET", "/portal/return", ("ps",)),
    ("GET", "/portal/cancelled", ("ps",)),
    ("POST", "/portal/cancelled", ("ps", "reason")),
    ("GET", "/no/such/page", ("junk",)),
    ("POST", "/language", ("language", "next")),
]
# Walked with a signed-out browser (they change or need the sign-in state).
ANONYMOUS_ROUTES: list[tuple[str, str, tuple[str, ...]]] = [
    ("GET", "/auth/login", ("next",)),
    ("GET", "/auth/callback", ("code", "state", "error")),
    ("POST", "/auth/logout", ("junk",)),
    ("POST", "/webhooks/stripe", ("junk",)),
    ("GET", "/schema/openapi.json", ("junk",)),
    ("GET", "/schema/no-such-renderer", ("junk",)),
    ("POST", "/language", ("language", "next")),
]
# The operator console, walked by an admin; `{…}` path parameters take each hostile value too.
ADMIN_WALK: list[tuple[str, str, tuple[str, ...]]] = [
    ("GET", "/admin", ("junk",)),
    ("GET", "/admin/analytics", ("preset", "start", "end", "tz")),
    ("GET", "/admin/analytics/{table_file:str}", ("preset", "start", "end")),
    ("GET", "/admin/audit", ("before", "junk")),
    ("GET", "/admin/branding", ("junk",)),
    ("POST", "/admin/branding", ("primary_color", "accent_color", "logo_url", "action")),
    ("GET", "/admin/configurations", ("junk",)),
    ("GET", "/admin/configurations/export.toml", ("junk",)),
    ("GET", "/admin/configurations/new", ("junk",)),
    ("GET", "/admin/configurations/{configuration_id:str}", ("junk",)),
    ("POST", "/admin/configurations/{configuration_id:str}/active", ("active",)),
    ("GET", "/admin/configurations/{configuration_id:str}/edit", ("junk",)),
    ("POST", "/admin/configurations/{configuration_id:str}/use", ("workflow",)),
    ("GET", "/admin/customers", ("q",)),
    ("GET", "/admin/customers/{user_id:int}", ("junk",)),
    ("POST", "/admin/customers/{user_id:int}/resync", ("junk",)),
    ("POST", "/admin/customers/{user_id:int}/entitlements", ("feature", "kind", "until", "note")),
    ("POST", "/admin/customers/{user_id:int}/entitlements/{override_id:int}/end", ("junk",)),
    ("GET", "/admin/api-keys", ("junk",)),
    ("POST", "/admin/api-keys", ("name",)),
    ("POST", "/admin/api-keys/{prefix:str}/revoke", ("junk",)),
    ("GET", "/admin/host-webhooks", ("junk",)),
    ("POST", "/admin/host-webhooks", ("url",)),
    ("POST", "/admin/host-webhooks/{endpoint_id:int}/enabled", ("enabled",)),
    ("POST", "/admin/host-webhooks/{endpoint_id:int}/delete", ("junk",)),
    ("POST", "/admin/host-webhooks/deliveries/{delivery_id:int}/redeliver", ("junk",)),
    ("GET", "/admin/events", ("status", "type", "customer", "from", "to", "before", "tz")),
    ("POST", "/admin/events/ignore", ("ids", "next")),
    ("POST", "/admin/events/reconcile", ("hours", "next")),
    ("POST", "/admin/events/replay", ("ids", "next")),
    ("GET", "/admin/events/{event_id:str}", ("junk",)),
    ("GET", "/brand.css", ("primary", "accent", "part")),
    ("GET", "/brand/logo", ("v",)),
]
# Litestar's own routers (static files, the OpenAPI renderers: two are walked above) and the JSON API,
# whose every operation schemathesis walks from the OpenAPI document (tests/test_api_properties.py).
NOT_WALKED_PREFIXES = ("/static/", "/schema", "/api/", "/v1/billing/", "/stripe/customer-portal")
TIME_ZONES = ["Asia/Tokyo", "Pacific/Kiritimati", "America/Adak", "Mars/Base", "../../etc/passwd", "x" * 3000, "%00"]


def registered_routes(app: Any) -> set[str]:
    return {route.path for route in app.routes}


def test_the_walk_covers_every_registered_route(billing_settings: Any) -> None:
    from app.asgi import create_app

    walked = {path for _, path, _ in ROUTES + ANONYMOUS_ROUTES + ADMIN_WALK} | {"/{path:path}", ""}
    registered = registered_routes(create_app(billing_settings))
    missing = {p for p in registered if p.rstrip("/") not in walked and not p.startswith(NOT_WALKED_PREFIXES)}
    assert not missing, f"routes not walked by the hostile-input test: {sorted(missing)}"


CUT_OFF = 599  # stands for "the body stopped mid-download"


async def _request(client: httpx.AsyncClient, method: str, path: str, params: dict[str, str]) -> httpx.Response:
    if method == "GET":
        async with client.stream("GET", path, params=params) as response:
            try:
                await response.aread()  # a streamed CSV must finish, not stop mid-download
            except httpx.RemoteProtocolError:
                response.status_code = CUT_OFF
            return response
    data = {**params, "_csrf_token": client.cookies.get("billing_csrf") or ""}
    return await client.post(path, data=data)


async def _walk(
    client: httpx.AsyncClient, routes: list[tuple[str, str, tuple[str, ...]]], values: list[str]
) -> list[str]:
    failures = []
    for method, template, names in routes:
        path = template
        if "{" in template:
            for value in values:  # each hostile value as the path parameter
                concrete = re.sub(r"\{[^}]+\}", quote(value, safe="") or "%20", template)
                response = await _request(client, method, concrete, {})
                if response.status_code >= 500:
                    failures.append(f"{method} {concrete[:60]!r} -> {response.status_code}")
            path = re.sub(r"\{[^}]+\}", "1", template)
        for name in names:
            for value in values:
                params = {name: value}
                if path == "/portal/sessions" and name == "price":
                    params["workflow"] = "plan_change"
                response = await _request(client, method, path, params)
                if response.status_code >= 500:
                    failures.append(f"{method} {path}?{name}={value[:40]!r} -> {response.status_code}")
    return failures


async def test_no_route_answers_5xx_to_hostile_values(
    billing_client: httpx.AsyncClient, oidc_provider: Any, billing_app_url: str
) -> None:
    # Someone else's portal session and Checkout Session: the foreign ids.
    async with httpx.AsyncClient(base_url=billing_app_url, timeout=30) as other:
        await signed_in_user(other, oidc_provider, "someone-else")
        success = await buy(other, "starter_monthly")
        foreign_checkout = str(success.url.params["session_id"])
        opened = await other.post(
            "/portal/sessions", data={"workflow": "payment_update", "_csrf_token": other.cookies.get("billing_csrf")}
        )
        assert opened.status_code == 303 and urlsplit(opened.headers["location"]).netloc
    foreign = await PortalSession.objects().first()
    assert foreign is not None
    values = [*VALUES, str(foreign.id), foreign_checkout]

    hostile = await signed_in_user(billing_client, oidc_provider, "hostile")
    await buy(billing_client, "pro_monthly")
    failures: list[str] = []
    # Each odd time zone on a first return from the portal (before the walk spends the rate limit).
    for zone in TIME_ZONES:
        csrf = billing_client.cookies.get("billing_csrf") or ""
        opened = await billing_client.post("/portal/sessions", data={"workflow": "payment_update", "_csrf_token": csrf})
        assert opened.status_code == 303, opened.text
        own = (
            await PortalSession.objects()
            .where(PortalSession.user == hostile.id)
            .order_by(PortalSession.id, ascending=False)
            .first()
        )
        assert own is not None
        billing_client.cookies.set("tz", zone)
        response = await billing_client.get("/portal/return", params={"ps": str(own.id)})
        if response.status_code >= 500:
            failures.append(f"tz={zone[:20]!r} GET /portal/return (own session) -> {response.status_code}")

    billing_client.cookies.set("tz", "Asia/Tokyo")  # ahead of UTC: 0001-01-01 local is before year 1 in UTC
    failures += await _walk(billing_client, ROUTES, values)

    for zone in TIME_ZONES:
        billing_client.cookies.set("tz", zone)
        for path in ("/account", "/billing/history", "/billing/history.csv", "/portal", "/plans", "/no/such/page"):
            for query in ({}, {"from": "0001-01-01", "to": "9998-12-31"}):
                response = await _request(billing_client, "GET", path, query)
                if response.status_code >= 500:
                    failures.append(f"tz={zone[:20]!r} GET {path} {query} -> {response.status_code}")
        response = await _request(billing_client, "GET", "/portal/return", {"ps": str(foreign.id)})
        if response.status_code >= 500:
            failures.append(f"tz={zone[:20]!r} /portal/return -> {response.status_code}")

    for language in ("xx-YY", "\x7f", "en;q=abc", "de-DE;q=0.9," * 200):
        response = await billing_client.get("/billing/history", headers={"Accept-Language": language})
        if response.status_code >= 500:
            failures.append(f"Accept-Language {language[:20]!r} -> {response.status_code}")

    async with httpx.AsyncClient(base_url=billing_app_url, timeout=30) as anonymous:
        failures += await _walk(anonymous, ANONYMOUS_ROUTES, values)
    async with httpx.AsyncClient(base_url=billing_app_url, timeout=30) as admin:
        oidc_provider.claims_for["hostile-admin"] = {"email": "ops@example.com", "roles": ["admin"]}
        assert (await sign_in(admin, "hostile-admin")).status_code == 303
        await admin.get("/account")  # a page sets the CSRF cookie
        failures += await _walk(admin, ADMIN_WALK, values)
    assert not failures, "\n".join(failures)


async def test_the_named_500s_now_have_precise_answers(billing_client: httpx.AsyncClient, oidc_provider: Any) -> None:
    await signed_in_user(billing_client, oidc_provider, "precise")
    await buy(billing_client, "pro_monthly")
    csrf = billing_client.cookies.get("billing_csrf") or ""
    assert (await billing_client.get("/portal/return", params={"ps": "2147483648"})).status_code == 400
    for session_id in ("", "not-a-session", "cs_" + "a" * 400):
        page = await billing_client.get("/billing/checkout/success", params={"session_id": session_id})
        assert page.status_code == 400 and "does not name a Checkout Session" in page.text
    nul = await billing_client.post("/billing/checkout", data={"price": "pro\x00monthly", "_csrf_token": csrf})
    assert nul.status_code == 400 and "That plan is not available" in nul.text
    billing_client.cookies.set("tz", "Asia/Tokyo")
    page = await billing_client.get("/billing/history", params={"from": "0001-01-01"})
    assert page.status_code == 400 and "between 1970-01-01 and 9998-12-31" in page.text
    csv = await billing_client.get("/billing/history.csv", params={"from": "0001-01-01"})
    assert csv.status_code == 400
    fine = await billing_client.get("/billing/history.csv")
    assert fine.headers["content-type"] == "text/csv; charset=utf-8"
    billing_client.cookies.set("tz", "Not/AZone")
    assert (await billing_client.get("/billing/history")).status_code == 200


async def test_the_404_page_knows_who_is_signed_in(billing_client: httpx.AsyncClient, oidc_provider: Any) -> None:
    await signed_in_user(billing_client, oidc_provider, "lost")
    page = await billing_client.get("/no/such/page")
    assert page.status_code == 404 and "Page not found" in page.text
    assert "Sign out" in page.text and 'href="/auth/login"' not in page.text
