"""`make run`'s local OpenID provider issues access tokens the API accepts (`POST /dev/access-token`)."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from werkzeug.serving import make_server

from app.asgi import create_app
from app.settings import Settings
from e2e.local_oidc import build_app
from tests.support.servers import free_port, serve_in_loop


@pytest.fixture(scope="module")
def local_provider() -> Iterator[str]:
    port = free_port()
    server = make_server("127.0.0.1", port, build_app([{"sub": "demo", "email": "demo@example.com"}]), threaded=True)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{port}"
    server.shutdown()
    thread.join(timeout=5)


async def test_a_token_from_the_local_provider_calls_the_api(local_provider: str, tmp_path: Path, db: None) -> None:
    port = free_port()
    env: dict[str, Any] = {
        "SESSION_SECRET": "s" * 40,
        "DATA_DIR": str(tmp_path),
        "OIDC_ISSUER": local_provider,
        "AUTH0_CLIENT_ID": "billing-portal-local",
        "AUTH0_CLIENT_SECRET": "local",
        "STRIPE_SECRET_KEY": "sk_test_unused",
        "STRIPE_WEBHOOK_SECRET": "whsec_unused",
        "EVENT_WORKER": "off",
        "APP_BASE_URL": f"http://127.0.0.1:{port}",
    }
    async with httpx.AsyncClient(base_url=local_provider) as provider:
        issued = await provider.post("/dev/access-token", data={"sub": "demo", "aud": f"http://127.0.0.1:{port}/api"})
        refused = await provider.post("/dev/access-token", data={"sub": "demo"})
        operator = await provider.post(
            "/dev/access-token", data={"sub": "ops", "aud": f"http://127.0.0.1:{port}/api", "roles": "admin"}
        )
    assert issued.status_code == 200, issued.text
    assert issued.json()["token_type"] == "Bearer"
    assert refused.status_code == 400

    async with serve_in_loop(create_app(Settings.from_env(env)), port) as base_url:
        async with httpx.AsyncClient(base_url=base_url) as client:
            me = await client.get("/api/v1/me", headers={"Authorization": f"Bearer {issued.json()['access_token']}"})
            other_audience = await provider_token(local_provider, "https://elsewhere.example.com")
            refused_me = await client.get("/api/v1/me", headers={"Authorization": f"Bearer {other_audience}"})
            analytics = "/api/v1/admin/portal-analytics"
            as_operator = await client.get(
                analytics, headers={"Authorization": f"Bearer {operator.json()['access_token']}"}
            )
            as_customer = await client.get(
                analytics, headers={"Authorization": f"Bearer {issued.json()['access_token']}"}
            )
    assert me.status_code == 200, me.text
    assert me.json()["profile"]["subject"] == "demo"
    assert refused_me.status_code == 401 and refused_me.json()["error_code"] == "invalid_token"
    # `roles=admin` puts the role in the token's `roles` claim: the operator endpoints let it in.
    assert as_operator.status_code == 200, as_operator.text
    assert as_operator.json()["total_sessions"] == 0
    assert as_customer.status_code == 403 and as_customer.json()["error_code"] == "forbidden"


async def provider_token(provider_url: str, audience: str) -> str:
    async with httpx.AsyncClient(base_url=provider_url) as provider:
        response = await provider.post("/dev/access-token", data={"sub": "demo", "aud": audience})
    return str(response.json()["access_token"])
