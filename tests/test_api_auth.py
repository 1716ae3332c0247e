"""Who may call the JSON API, and the error envelope every JSON path answers with.

Real app over HTTP, the scriptable OpenID provider (discovery, JWKS) over HTTP, real PostgreSQL.
"""

from __future__ import annotations

import base64
import json
import time
from typing import Any

import httpx
import pytest
from joserfc.jwk import RSAKey

from app.auth.tables import User
from tests.conftest import sign_in
from tests.support.oidc_provider import ScriptedProvider


def audience(app_url: str) -> str:
    return f"{app_url}/api"


def bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


def assert_envelope(response: httpx.Response, status: int, code: str) -> dict[str, Any]:
    assert response.status_code == status, response.text
    assert response.headers["content-type"].startswith("application/json"), response.headers
    body = response.json()
    assert body["success"] is False
    assert body["error_code"] == code
    assert isinstance(body["error"], str) and body["error"]
    assert body["request_id"] and response.headers["x-request-id"] == body["request_id"]
    assert body["timestamp"].endswith("Z")
    return dict(body)


async def test_a_valid_access_token_identifies_the_person_by_subject(
    client: httpx.AsyncClient, app_url: str, oidc_provider: ScriptedProvider
) -> None:
    await User.insert(User(subject="ana", email="ana@example.com", email_verified=True, name="Ana"))
    token = oidc_provider.access_token("ana", audience(app_url))

    response = await client.get("/api/v1/me", headers=bearer(token))

    assert response.status_code == 200, response.text
    me = response.json()
    assert me["profile"] == {"subject": "ana", "email": "ana@example.com", "email_verified": True, "name": "Ana"}
    assert me["plan"] is None and me["is_premium"] is False and me["is_lifetime"] is False


async def test_a_first_call_with_a_token_creates_the_person(
    client: httpx.AsyncClient, app_url: str, oidc_provider: ScriptedProvider
) -> None:
    response = await client.get("/api/v1/me", headers=bearer(oidc_provider.access_token("newbie", audience(app_url))))

    assert response.status_code == 200
    assert response.json()["profile"]["subject"] == "newbie"
    assert await User.exists().where(User.subject == "newbie")


@pytest.mark.parametrize(
    ("case", "claims"),
    [
        ("wrong audience", {"aud": "https://other-api.example.com"}),
        ("the ID token audience", {"aud": "test-client"}),
        ("wrong issuer", {"iss": "https://evil.example.com/"}),
        ("issuer with another spelling", {"iss": "ISSUER/"}),
        ("expired", {"exp": int(time.time()) - 3600, "iat": int(time.time()) - 7200}),
        ("not yet valid", {"nbf": int(time.time()) + 3600}),
        ("no expiry", {"exp": None}),
        ("no subject", {"sub": None}),
    ],
)
async def test_tokens_failing_a_claim_check_are_401_invalid_token(
    client: httpx.AsyncClient, app_url: str, oidc_provider: ScriptedProvider, case: str, claims: dict[str, Any]
) -> None:
    if claims.get("iss") == "ISSUER/":
        claims = {"iss": oidc_provider.issuer + "/"}
    token = oidc_provider.access_token("ana", audience(app_url), **claims)

    response = await client.get("/api/v1/me", headers=bearer(token))

    assert_envelope(response, 401, "invalid_token")
    assert response.headers["www-authenticate"].startswith("Bearer")
    assert 'error="invalid_token"' in response.headers["www-authenticate"]
    assert not await User.exists().where(User.subject == "ana"), case


def _b64(data: dict[str, Any]) -> str:
    return base64.urlsafe_b64encode(json.dumps(data).encode()).rstrip(b"=").decode()


async def test_an_unsigned_alg_none_token_is_refused(
    client: httpx.AsyncClient, app_url: str, oidc_provider: ScriptedProvider
) -> None:
    now = int(time.time())
    claims = {"iss": oidc_provider.issuer, "sub": "ana", "aud": audience(app_url), "iat": now, "exp": now + 300}
    token = f"{_b64({'alg': 'none', 'typ': 'JWT'})}.{_b64(claims)}."

    assert_envelope(await client.get("/api/v1/me", headers=bearer(token)), 401, "invalid_token")


async def test_a_token_signed_with_the_client_secret_hs256_is_refused(
    client: httpx.AsyncClient, app_url: str, oidc_provider: ScriptedProvider
) -> None:
    from joserfc import jwt
    from joserfc.jwk import OctKey

    now = int(time.time())
    claims = {"iss": oidc_provider.issuer, "sub": "ana", "aud": audience(app_url), "iat": now, "exp": now + 300}
    token = jwt.encode({"alg": "HS256"}, claims, OctKey.import_key(oidc_provider.client_secret.encode() * 4))

    assert_envelope(await client.get("/api/v1/me", headers=bearer(token)), 401, "invalid_token")


async def test_an_unknown_kid_refetches_the_jwks_once_then_refuses(
    client: httpx.AsyncClient, app_url: str, oidc_provider: ScriptedProvider
) -> None:
    good = oidc_provider.access_token("ana", audience(app_url))
    assert (await client.get("/api/v1/me", headers=bearer(good))).status_code == 200
    fetched = oidc_provider.jwks_requests

    oidc_provider.sign_with = RSAKey.generate_key(2048, parameters={"kid": "unknown"})
    forged = oidc_provider.access_token("ana", audience(app_url))
    assert_envelope(await client.get("/api/v1/me", headers=bearer(forged)), 401, "invalid_token")
    assert oidc_provider.jwks_requests == fetched + 1, "exactly one refetch for an unknown kid"

    assert_envelope(await client.get("/api/v1/me", headers=bearer(forged)), 401, "invalid_token")
    assert oidc_provider.jwks_requests == fetched + 1, "no second refetch right after the first"


async def test_a_rotated_signing_key_is_accepted_after_one_refetch(
    client: httpx.AsyncClient, app_url: str, oidc_provider: ScriptedProvider
) -> None:
    assert (
        await client.get("/api/v1/me", headers=bearer(oidc_provider.access_token("ana", audience(app_url))))
    ).is_success
    old_key = oidc_provider.key
    oidc_provider.key = RSAKey.generate_key(2048, parameters={"kid": "k2"})
    try:
        response = await client.get("/api/v1/me", headers=bearer(oidc_provider.access_token("ana", audience(app_url))))
    finally:
        oidc_provider.key = old_key
    assert response.status_code == 200, response.text


async def test_a_malformed_authorization_header_is_401_not_a_fallback_to_the_cookie(
    client: httpx.AsyncClient, oidc_provider: ScriptedProvider
) -> None:
    assert (await sign_in(client, "ana")).status_code == 303
    assert (await client.get("/api/v1/me")).status_code == 200

    assert_envelope(await client.get("/api/v1/me", headers={"Authorization": "Basic YTpi"}), 401, "invalid_token")
    assert_envelope(await client.get("/api/v1/me", headers={"Authorization": "Bearer not.a.jwt"}), 401, "invalid_token")


async def test_without_credentials_the_api_answers_401_json_never_a_redirect(client: httpx.AsyncClient) -> None:
    response = await client.get("/api/v1/me", headers={"Accept": "text/html"})

    body = assert_envelope(response, 401, "authentication_required")
    assert "Bearer" in response.headers["www-authenticate"]
    assert "sign in" in body["error"].lower()


async def test_the_session_cookie_works_and_unsafe_methods_need_the_csrf_header(
    client: httpx.AsyncClient, oidc_provider: ScriptedProvider
) -> None:
    assert (await sign_in(client, "ana")).status_code == 303
    me = await client.get("/api/v1/me")
    assert me.status_code == 200 and me.json()["profile"]["subject"] == "ana"
    csrf = client.cookies.get("billing_csrf")
    assert csrf

    refused = await client.post("/api/v1/portal/sessions", json={"workflow_type": "payment_update"})
    assert_envelope(refused, 403, "csrf_failed")

    allowed = await client.post(
        "/api/v1/portal/sessions", json={"workflow_type": "payment_update"}, headers={"x-csrftoken": csrf}
    )
    # Past CSRF: Ana has no Stripe customer yet, which is the service's answer, not a CSRF refusal.
    assert_envelope(allowed, 409, "no_customer")


async def test_a_bearer_call_needs_no_csrf_token(
    client: httpx.AsyncClient, app_url: str, oidc_provider: ScriptedProvider
) -> None:
    token = oidc_provider.access_token("ana", audience(app_url))

    response = await client.post(
        "/api/v1/portal/sessions", json={"workflow_type": "payment_update"}, headers=bearer(token)
    )

    assert_envelope(response, 409, "no_customer")


async def test_every_json_path_answers_errors_with_the_envelope(
    client: httpx.AsyncClient, app_url: str, oidc_provider: ScriptedProvider
) -> None:
    auth = bearer(oidc_provider.access_token("ana", audience(app_url)))

    assert_envelope(await client.get("/api/v1/nothing-here", headers={"Accept": "text/html"}), 404, "not_found")
    assert_envelope(await client.get("/api/v1/customers/x/state"), 401, "invalid_api_key")  # the host API
    assert_envelope(await client.get("/v1/billing/nothing"), 404, "not_found")
    assert_envelope(await client.delete("/api/v1/me", headers=auth), 405, "method_not_allowed")
    unsupported = await client.post(
        "/api/v1/portal/sessions",
        content="workflow_type=payment_update",
        headers={**auth, "Content-Type": "text/plain"},
    )
    assert_envelope(unsupported, 415, "unsupported_media_type")

    huge = await client.post(
        "/api/v1/portal/sessions",
        content=b'{"workflow_type": "' + b"x" * 11_000_000 + b'"}',
        headers={**auth, "Content-Type": "application/json"},
    )
    assert_envelope(huge, 413, "payload_too_large")

    invalid = await client.post("/api/v1/portal/sessions", json={"workflow_type": "teleport"}, headers=auth)
    body = assert_envelope(invalid, 422, "validation_failed")
    assert any("workflow_type" in e["field"] for e in body["errors"]), body

    bad_query = await client.get("/api/v1/billing/history", params={"limit": "0"}, headers=auth)
    body = assert_envelope(bad_query, 422, "validation_failed")
    assert any(e["field"] == "limit" for e in body["errors"]), body

    # Pages keep their HTML error pages.
    page = await client.get("/no-such-page")
    assert page.status_code == 404 and page.headers["content-type"].startswith("text/html")


async def test_a_return_url_off_the_allowed_origins_is_422(
    client: httpx.AsyncClient, app_url: str, oidc_provider: ScriptedProvider
) -> None:
    auth = bearer(oidc_provider.access_token("ana", audience(app_url)))

    response = await client.post(
        "/api/v1/portal/sessions",
        json={"workflow_type": "payment_update", "return_url": "https://evil.example.com/back"},
        headers=auth,
    )

    body = assert_envelope(response, 422, "validation_failed")
    assert body["errors"] == [{"field": "return_url", "message": "Use a URL on one of this app's allowed origins."}]
