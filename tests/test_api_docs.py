"""The OpenAPI document and the interactive docs, served from vendored assets."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import httpx
import pytest

from app.asgi import create_app
from app.settings import Settings, SettingsError
from tests.conftest import settings_env
from tests.support.servers import free_port, serve_in_loop

QUOTED_ROUTES = {
    ("post", "/api/create-portal-session"),
    ("post", "/stripe/customer-portal"),
    ("post", "/api/subscriptions/user/billing-portal"),
    ("post", "/api/payment/portal/session"),
    ("get", "/api/payment/portal/return"),
    ("get", "/v1/billing/config"),
    ("post", "/v1/billing/checkout-session"),
    ("post", "/v1/billing/payment-intent"),
    ("get", "/v1/billing/history"),
    ("get", "/api/payment/portal/configuration"),
    ("post", "/api/payment/portal/configuration"),
    ("get", "/api/payment/portal/analytics"),
}
V1_ROUTES = {
    ("get", "/api/v1/me"),
    ("get", "/api/v1/billing/config"),
    ("post", "/api/v1/billing/checkout-sessions"),
    ("post", "/api/v1/billing/payment-intents"),
    ("get", "/api/v1/billing/history"),
    ("post", "/api/v1/portal/sessions"),
    ("get", "/api/v1/portal/return"),
    ("get", "/api/v1/admin/portal-configurations"),
    ("post", "/api/v1/admin/portal-configurations"),
    ("post", "/api/v1/admin/portal-configurations/{configuration_id}"),
    ("patch", "/api/v1/admin/portal-configurations/{configuration_id}"),
    ("get", "/api/v1/admin/portal-analytics"),
}


async def test_the_openapi_document_describes_every_route_with_schemas_and_examples(client: httpx.AsyncClient) -> None:
    document = (await client.get("/schema/openapi.json")).json()

    assert document["openapi"].startswith("3.1")
    operations = {(method, path) for path, item in document["paths"].items() for method in item}
    assert QUOTED_ROUTES | V1_ROUTES <= operations
    for method, path in QUOTED_ROUTES:
        operation = document["paths"][path][method]
        assert "Compatibility routes" in operation["tags"], path
    for method, path in V1_ROUTES:
        assert "Compatibility routes" not in document["paths"][path][method]["tags"], path
    analytics = document["paths"]["/api/v1/admin/portal-analytics"]["get"]
    assert {p["name"] for p in analytics["parameters"]} == {"start_date", "end_date", "timezone"}
    assert {"403", "422"} <= set(analytics["responses"])
    assert "403" in document["paths"]["/api/payment/portal/configuration"]["post"]["responses"]
    assert document["components"]["securitySchemes"]["bearerAuth"] == {
        "type": "http",
        "scheme": "bearer",
        "bearerFormat": "JWT",
    }
    assert "ErrorEnvelope" in document["components"]["schemas"]
    for path, item in document["paths"].items():
        if not path.startswith(("/api/", "/v1/", "/stripe/")):
            continue
        for method, operation in item.items():
            for status, response in operation["responses"].items():
                if int(status) >= 400:
                    assert "ErrorEnvelope" in str(response), f"{method} {path} {status} documents another error shape"
    me = document["paths"]["/api/v1/me"]["get"]
    assert me["responses"]["200"]["content"]["application/json"]["schema"] == {"$ref": "#/components/schemas/Me"}
    unauthorized = me["responses"]["401"]["content"]["application/json"]
    assert unauthorized["examples"], "error responses carry examples"
    example = next(iter(unauthorized["examples"].values()))["value"]
    assert example["success"] is False and example["error_code"] in ("authentication_required", "invalid_token")


async def test_the_interactive_docs_load_only_vendored_assets(client: httpx.AsyncClient) -> None:
    page = await client.get("/schema/swagger")

    assert page.status_code == 200
    sources = re.findall(r'(?:src|href)="([^"]+)"', page.text) + re.findall(r"(?:src|href)='([^']+)'", page.text)
    assert sources, page.text
    assert all(s.startswith("/static/vendor/swagger-ui-") for s in sources), sources
    for source in sources:
        asset = await client.get(source)
        assert asset.status_code == 200 and len(asset.content) > 1000, source
    assert "cdn." not in page.text and "googleapis" not in page.text


async def test_api_docs_off_hides_the_interactive_docs_but_not_the_document(
    oidc_provider: Any, tmp_path: Path, db: None
) -> None:
    port = free_port()
    env = settings_env(oidc_provider, tmp_path, APP_BASE_URL=f"http://127.0.0.1:{port}", API_DOCS="off")
    async with serve_in_loop(create_app(Settings.from_env(env)), port) as base_url:
        async with httpx.AsyncClient(base_url=base_url) as client:
            assert (await client.get("/schema/swagger")).status_code == 404
            assert (await client.get("/schema/openapi.json")).status_code == 200


@pytest.mark.parametrize(
    ("name", "value", "message"),
    [
        ("API_ALLOWED_ORIGINS", "app.example.com", "API_ALLOWED_ORIGINS"),
        ("API_ALLOWED_ORIGINS", "https://app.example.com/path", "API_ALLOWED_ORIGINS"),
        ("API_DOCS", "maybe", "API_DOCS"),
    ],
)
def test_malformed_api_settings_stop_the_app_with_their_name(
    oidc_provider: Any, tmp_path: Path, name: str, value: str, message: str
) -> None:
    with pytest.raises(SettingsError, match=message):
        Settings.from_env(settings_env(oidc_provider, tmp_path, **{name: value}))


def test_api_settings_default_to_the_app_origin(oidc_provider: Any, tmp_path: Path) -> None:
    settings = Settings.from_env(settings_env(oidc_provider, tmp_path, APP_BASE_URL="https://billing.example.com"))
    assert settings.api.audience == "https://billing.example.com/api"
    assert settings.api.allowed_origins == ("https://billing.example.com",)
    assert settings.app.api_docs == "on", "docs are on in development"
    custom = Settings.from_env(
        settings_env(
            oidc_provider,
            tmp_path,
            API_AUDIENCE="https://api.example.com",
            API_ALLOWED_ORIGINS="https://App.example.com, http://localhost:3000",
        )
    )
    assert custom.api.audience == "https://api.example.com"
    assert custom.api.allowed_origins == ("https://app.example.com", "http://localhost:3000")
