"""The operator endpoints of the JSON API and their compatibility routes, over real HTTP against the
Stripe emulator and PostgreSQL: roles (bearer claim and session), the envelope on 401/403/404/422/502,
and configuration changes visible through the GET afterwards."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import httpx
import pytest
from litestar import Litestar, Response, route

from app.admin.tables import AuditEntry
from app.asgi import create_app
from app.portal.tables import PortalConfiguration
from app.settings import Settings
from tests.conftest import settings_env
from tests.support.servers import free_port, serve_in_loop, serve_in_thread
from tests.test_admin import csrf, seed_sessions, signed_in
from tests.test_api_auth import assert_envelope

Client = httpx.AsyncClient

CONFIGURATIONS = "/api/v1/admin/portal-configurations"
ANALYTICS = "/api/v1/admin/portal-analytics"
COMPAT_CONFIGURATION = "/api/payment/portal/configuration"
COMPAT_ANALYTICS = "/api/payment/portal/analytics"

READ_ROUTES = [("GET", CONFIGURATIONS), ("GET", ANALYTICS), ("GET", COMPAT_CONFIGURATION), ("GET", COMPAT_ANALYTICS)]
WRITE_ROUTES = [
    ("POST", CONFIGURATIONS),
    ("POST", f"{CONFIGURATIONS}/bpc_123"),
    ("PATCH", f"{CONFIGURATIONS}/bpc_123"),
    ("POST", COMPAT_CONFIGURATION),
]


def token(client: Client, provider: Any, subject: str, roles: list[str] | None = None) -> dict[str, str]:
    """Bearer headers for `subject`, with `roles` in the access token's `roles` claim."""
    claims = {"roles": roles} if roles is not None else {}
    return {"Authorization": f"Bearer {provider.access_token(subject, f'{client.base_url}/api', **claims)}"}


async def workflow_configuration(workflow: str = "subscription_management") -> str:
    row = await PortalConfiguration.objects().get(PortalConfiguration.workflow == workflow)
    assert row is not None
    return str(row.stripe_configuration_id)


@pytest.mark.parametrize(("method", "path"), READ_ROUTES + WRITE_ROUTES)
async def test_every_operator_route_needs_a_caller_and_a_role(
    client: Client, oidc_provider: Any, method: str, path: str
) -> None:
    body = {"headline": "x"} if method != "GET" else None

    assert_envelope(await client.request(method, path, json=body), 401, "authentication_required")
    customer = await client.request(method, path, json=body, headers=token(client, oidc_provider, "cara", []))
    assert_envelope(customer, 403, "forbidden")
    # A role name the app does not know is no role.
    other = await client.request(method, path, json=body, headers=token(client, oidc_provider, "cara", ["owner"]))
    assert_envelope(other, 403, "forbidden")


@pytest.mark.parametrize(("method", "path"), WRITE_ROUTES)
async def test_support_cannot_write(client: Client, oidc_provider: Any, method: str, path: str) -> None:
    response = await client.request(
        method, path, json={"headline": "x"}, headers=token(client, oidc_provider, "sam", ["support"])
    )
    body = assert_envelope(response, 403, "forbidden")
    assert "admin role" in body["error"]


@pytest.mark.usefixtures("portal_configured")
async def test_support_lists_the_configurations_with_the_workflows_using_them(
    billing_client: Client, oidc_provider: Any
) -> None:
    cfg_id = await workflow_configuration()
    response = await billing_client.get(
        CONFIGURATIONS, headers=token(billing_client, oidc_provider, "sam", ["support"])
    )

    assert response.status_code == 200, response.text
    by_id = {c["id"]: c for c in response.json()}
    cfg = by_id[cfg_id]
    assert cfg["used_by"] == ["subscription_management"]
    assert cfg["active"] is True
    assert "switch plan" in cfg["features_words"]
    assert cfg["features"]["subscription_update"]["enabled"] is True
    assert cfg["fields"]["update"] is True and cfg["fields"]["update_prices"]

    compat = await billing_client.get(
        COMPAT_CONFIGURATION, headers=token(billing_client, oidc_provider, "sam", ["support"])
    )
    assert compat.status_code == 200
    assert compat.json()["success"] is True
    assert {c["id"] for c in compat.json()["configurations"]} == set(by_id)


@pytest.mark.usefixtures("portal_configured")
async def test_admin_creates_and_updates_a_configuration_and_the_get_shows_it(
    billing_client: Client, oidc_provider: Any, gateway: Any
) -> None:
    admin = token(billing_client, oidc_provider, "olga", ["admin"])

    created = await billing_client.post(
        CONFIGURATIONS,
        json={"name": "Invoices only", "headline": "Your Acme invoices", "payment_method_update": True},
        headers=admin,
    )
    assert created.status_code == 201, created.text
    new = created.json()
    assert new["id"].startswith("bpc_") and new["name"] == "Invoices only" and new["used_by"] == []
    assert new["features_words"] == ["invoice history", "update payment method"]
    assert (await gateway.retrieve_portal_configuration(new["id"]))["business_profile"]["headline"] == (
        "Your Acme invoices"
    )

    patched = await billing_client.patch(
        f"{CONFIGURATIONS}/{new['id']}", json={"headline": "Acme billing", "invoice_history": False}, headers=admin
    )
    assert patched.status_code == 200, patched.text
    # Fields not sent keep their values.
    assert patched.json()["fields"]["payment_method_update"] is True
    assert patched.json()["features_words"] == ["update payment method"]

    listed = {c["id"]: c for c in (await billing_client.get(CONFIGURATIONS, headers=admin)).json()}
    assert listed[new["id"]]["business_profile"]["headline"] == "Acme billing"
    assert listed[new["id"]]["features"]["invoice_history"]["enabled"] is False

    # The compatibility route updates with `configuration_id`, and POST on the id works like PATCH.
    cfg_id = await workflow_configuration()
    compat = await billing_client.post(
        COMPAT_CONFIGURATION, json={"configuration_id": cfg_id, "headline": "Manage your Acme plan"}, headers=admin
    )
    assert compat.status_code == 200, compat.text
    assert compat.json()["success"] is True and compat.json()["message"] == "Configuration saved."
    assert compat.json()["configuration"]["used_by"] == ["subscription_management"]
    posted = await billing_client.post(f"{CONFIGURATIONS}/{cfg_id}", json={"schedule_downgrades": True}, headers=admin)
    assert posted.status_code == 200, posted.text
    shown = {
        c["id"]: c for c in (await billing_client.get(COMPAT_CONFIGURATION, headers=admin)).json()["configurations"]
    }
    assert shown[cfg_id]["business_profile"]["headline"] == "Manage your Acme plan"
    assert shown[cfg_id]["features"]["subscription_update"]["schedule_at_period_end"]["conditions"]
    assert shown[cfg_id]["fields"]["update"] is True, "plan switching was left as it was"

    entries = await AuditEntry.select(AuditEntry.action, AuditEntry.target).where(
        AuditEntry.action == "portal_configuration.saved"
    )
    assert [e["target"] for e in entries].count(cfg_id) == 2 and [e["target"] for e in entries].count(new["id"]) == 2


@pytest.mark.usefixtures("portal_configured")
async def test_invalid_configurations_are_422_naming_the_fields_and_nothing_reaches_stripe(
    billing_client: Client, oidc_provider: Any, gateway: Any
) -> None:
    admin = token(billing_client, oidc_provider, "olga", ["admin"])
    cfg_id = await workflow_configuration()
    before = await gateway.retrieve_portal_configuration(cfg_id)

    response = await billing_client.patch(
        f"{CONFIGURATIONS}/{cfg_id}",
        json={"headline": "x" * 61, "privacy_policy_url": "ftp://example.com", "update_prices": ["price_nope"]},
        headers=admin,
    )

    body = assert_envelope(response, 422, "validation_failed")
    errors = {e["field"]: e["message"] for e in body["errors"]}
    assert errors == {
        "headline": "At most 60 characters (61 given).",
        "privacy_policy_url": "Give a full https:// address.",
        "update_prices": "Unknown or inactive prices: price_nope.",
    }
    assert await gateway.retrieve_portal_configuration(cfg_id) == before
    count = len([c async for c in gateway.portal_configurations()])
    wrong_type = await billing_client.post(CONFIGURATIONS, json={"customer_update": "maybe"}, headers=admin)
    assert assert_envelope(wrong_type, 422, "validation_failed")["errors"][0]["field"] == "customer_update"
    compat = await billing_client.post(
        COMPAT_CONFIGURATION, json={"customer_update": True, "customer_update_fields": []}, headers=admin
    )
    assert assert_envelope(compat, 422, "validation_failed")["errors"][0]["field"] == "customer_update_fields"
    assert len([c async for c in gateway.portal_configurations()]) == count, "nothing was created"
    assert not await AuditEntry.exists().where(AuditEntry.action == "portal_configuration.saved")


@pytest.mark.usefixtures("portal_configured")
async def test_an_unknown_configuration_is_404(billing_client: Client, oidc_provider: Any) -> None:
    admin = token(billing_client, oidc_provider, "olga", ["admin"])
    response = await billing_client.patch(f"{CONFIGURATIONS}/bpc_missing", json={"headline": "x"}, headers=admin)
    assert_envelope(response, 404, "not_found")
    compat = await billing_client.post(
        COMPAT_CONFIGURATION, json={"configuration_id": "bpc_missing", "headline": "x"}, headers=admin
    )
    assert_envelope(compat, 404, "not_found")


@pytest.mark.usefixtures("portal_configured")
async def test_a_signed_in_admin_uses_the_session_cookie_with_the_csrf_header(
    billing_client: Client, oidc_provider: Any
) -> None:
    cfg_id = await workflow_configuration()
    await signed_in(billing_client, oidc_provider, "olga", roles=["admin"])

    refused = await billing_client.patch(f"{CONFIGURATIONS}/{cfg_id}", json={"headline": "Via the cookie"})
    assert_envelope(refused, 403, "csrf_failed")
    saved = await billing_client.patch(
        f"{CONFIGURATIONS}/{cfg_id}",
        json={"headline": "Via the cookie"},
        headers={"x-csrftoken": csrf(billing_client)},
    )
    assert saved.status_code == 200, saved.text
    listed = {c["id"]: c for c in (await billing_client.get(CONFIGURATIONS)).json()}
    assert listed[cfg_id]["business_profile"]["headline"] == "Via the cookie"

    # The roles are those stored at the last sign-in: signing in again without the role removes it.
    await signed_in(billing_client, oidc_provider, "olga", roles=["support"])
    assert (await billing_client.get(CONFIGURATIONS)).status_code == 200
    demoted = await billing_client.patch(
        f"{CONFIGURATIONS}/{cfg_id}", json={"headline": "Again"}, headers={"x-csrftoken": csrf(billing_client)}
    )
    assert_envelope(demoted, 403, "forbidden")


async def test_stripe_failures_are_502(oidc_provider: Any, tmp_path: Path, db: None) -> None:
    @route("/v1/{path:path}", http_method=["GET", "POST"])
    async def broken(path: str) -> Response[dict[str, Any]]:
        return Response({"error": {"type": "api_error", "message": "Internal error"}}, status_code=500)

    with serve_in_thread(Litestar([broken])) as dead_stripe:
        port = free_port()
        env = settings_env(
            oidc_provider, tmp_path, APP_BASE_URL=f"http://127.0.0.1:{port}", STRIPE_API_BASE=dead_stripe
        )
        async with serve_in_loop(create_app(Settings.from_env(env)), port) as base_url:
            async with httpx.AsyncClient(base_url=base_url, timeout=60) as client:
                admin = token(client, oidc_provider, "olga", ["admin"])
                listed = await client.get(CONFIGURATIONS, headers=admin)
                compat = await client.get(COMPAT_CONFIGURATION, headers=admin)
                created = await client.post(CONFIGURATIONS, json={"name": "x"}, headers=admin)
                updated = await client.patch(f"{CONFIGURATIONS}/bpc_1", json={"name": "x"}, headers=admin)
    for response in (listed, compat, created, updated):
        body = assert_envelope(response, 502, "stripe_unavailable")
        assert "Internal error" not in response.text and "nothing was changed" in body["error"]
    assert not await AuditEntry.exists().where(AuditEntry.action == "portal_configuration.saved")


async def test_analytics_for_a_period_in_the_operators_time_zone(client: Client, oidc_provider: Any) -> None:
    # The console's hand-computed data set: local days 2026-11-10 .. 12 in New York.
    await seed_sessions(datetime(2026, 11, 10, 5, tzinfo=UTC))
    support = token(client, oidc_provider, "sam", ["support"])
    period = {"start_date": "2026-11-10", "end_date": "2026-11-12", "timezone": "America/New_York"}

    response = await client.get(ANALYTICS, params=period, headers=support)

    assert response.status_code == 200, response.text
    figures = response.json()
    assert figures["period"] == {
        "start_date": "2026-11-10",
        "end_date": "2026-11-12",
        "timezone": "America/New_York",
        "start": "2026-11-10T05:00:00Z",
        "end": "2026-11-13T05:00:00Z",
        "days": 3,
    }
    assert figures["total_sessions"] == 6 and figures["unique_customers"] == 3
    assert figures["returned_sessions"] == 5 and figures["return_rate"] == pytest.approx(5 / 6)
    assert figures["changed_sessions"] == 3 and figures["changed_share"] == pytest.approx(0.5)
    assert figures["median_session_seconds"] == pytest.approx(90)
    assert figures["p90_session_seconds"] == pytest.approx(228)
    assert [(w["workflow"], w["sessions"]) for w in figures["by_workflow"]] == [
        ("payment_update", 3),
        ("billing_review", 2),
        ("cancellation_process", 1),
    ]
    assert [(d["day"], d["sessions"]) for d in figures["by_day"]] == [
        ("2026-11-10", 2),
        ("2026-11-11", 2),
        ("2026-11-12", 2),
    ]
    assert figures["cancellations_by_reason"] == [
        {"reason": "too_expensive", "cancellations": 2},
        {"reason": "payment_failed", "cancellations": 1},
    ]
    assert figures["cancellations_by_plan"] == [
        {"plan": "Pro", "cancellations": 2},
        {"plan": "price_gone", "cancellations": 1},
    ]

    # The same local days in another zone are other instants.
    utc = (await client.get(ANALYTICS, params=period | {"timezone": "UTC"}, headers=support)).json()
    assert utc["period"]["start"] == "2026-11-10T00:00:00Z"

    compat = await client.get(
        COMPAT_ANALYTICS, params={"start_date": "2026-11-10", "end_date": "2026-11-12"}, headers=support
    )
    assert compat.status_code == 200, compat.text
    assert compat.json() == {
        "success": True,
        "analytics": {
            "start_date": "2026-11-10",
            "end_date": "2026-11-12",
            "timezone": "UTC",
            "total_sessions": 6,
            "unique_customers": 3,
            "most_used_features": [
                {"feature": "payment_update", "sessions": 3},
                {"feature": "billing_review", "sessions": 2},
                {"feature": "cancellation_process", "sessions": 1},
            ],
            "session_duration": {"median_seconds": 90.0, "p90_seconds": 228.0},
            "return_rate": pytest.approx(5 / 6),
        },
    }


@pytest.mark.parametrize("path", [ANALYTICS, COMPAT_ANALYTICS])
@pytest.mark.parametrize(
    ("params", "field"),
    [
        ({"start_date": "2026-11-12", "end_date": "2026-11-10"}, "end_date"),
        ({"start_date": "2025-01-01", "end_date": "2026-11-10"}, "end_date"),
        ({"start_date": "2026-13-01"}, "start_date"),
        ({"end_date": "0001-01-01"}, "end_date"),
        ({"timezone": "Mars/Olympus"}, "timezone"),
        ({"timezone": "../../etc/passwd"}, "timezone"),
    ],
)
async def test_a_bad_period_is_422_naming_the_field(
    client: Client, oidc_provider: Any, path: str, params: dict[str, str], field: str
) -> None:
    response = await client.get(path, params=params, headers=token(client, oidc_provider, "sam", ["support"]))
    body = assert_envelope(response, 422, "validation_failed")
    assert [e["field"] for e in body["errors"]] == [field]


async def test_bearer_roles_come_from_the_configured_claim(oidc_provider: Any, tmp_path: Path, db: None) -> None:
    port = free_port()
    claim = "https://billing.example.com/roles"
    env = settings_env(oidc_provider, tmp_path, APP_BASE_URL=f"http://127.0.0.1:{port}", OIDC_ROLES_CLAIM=claim)
    async with serve_in_loop(create_app(Settings.from_env(env)), port) as base_url:
        async with httpx.AsyncClient(base_url=base_url) as client:
            audience = f"{base_url}/api"
            namespaced = oidc_provider.access_token("ana", audience, **{claim: "support"})
            plain = oidc_provider.access_token("ana", audience, roles=["admin"])
            allowed = await client.get(ANALYTICS, headers={"Authorization": f"Bearer {namespaced}"})
            refused = await client.get(ANALYTICS, headers={"Authorization": f"Bearer {plain}"})
    assert allowed.status_code == 200, allowed.text
    assert_envelope(refused, 403, "forbidden")
