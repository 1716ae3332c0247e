"""The OpenAPI 3.1 document (`/schema/openapi.json`) and the interactive docs (`/schema/swagger`).

Swagger UI is served from the vendored copy in `static/vendor/` (never a CDN). The docs page follows
`API_DOCS` (on in development, off in production unless `public`); the JSON document is always served
(clients and the contract tests use it).
"""

from __future__ import annotations

from litestar.openapi import OpenAPIConfig
from litestar.openapi.plugins import JsonRenderPlugin, OpenAPIRenderPlugin, SwaggerRenderPlugin
from litestar.openapi.spec import Components, SecurityScheme, Server, Tag

from app.settings import Settings

SWAGGER_UI = "/static/vendor/swagger-ui-5.35.0"

DESCRIPTION = """JSON API of the billing portal.

**Authentication**: `Authorization: Bearer <access token>` (a JWT from the configured issuer with
`aud` = `API_AUDIENCE`), or, for same-site browser code, the session cookie with the CSRF token in
the `x-csrftoken` header on unsafe methods.

**Errors**: every 4xx/5xx is `{success: false, error, error_code, timestamp, request_id}` (422 adds
`errors: [{field, message}]`); `error_code` is one of a stable list (see the README).

**Idempotency**: send `Idempotency-Key` on POSTs to retry them safely (24 h, Stripe's semantics).
"""


def openapi_config(settings: Settings) -> OpenAPIConfig:
    """OpenAPI config: bearer security scheme, tags, and Swagger UI from vendored assets when `API_DOCS` is on."""
    # Without any plugin Litestar would serve every UI it knows from a CDN; list exactly what is served.
    render_plugins: list[OpenAPIRenderPlugin] = []
    if settings.app.api_docs != "off":
        render_plugins.append(
            SwaggerRenderPlugin(
                js_url=f"{SWAGGER_UI}/swagger-ui-bundle.js",
                css_url=f"{SWAGGER_UI}/swagger-ui.css",
                standalone_preset_js_url=f"{SWAGGER_UI}/swagger-ui-standalone-preset.js",
                favicon="",
            )
        )
    render_plugins.append(JsonRenderPlugin())
    return OpenAPIConfig(
        title="Billing portal API",
        version="1.0.0",
        description=DESCRIPTION,
        path="/schema",
        servers=[Server(url=settings.app.base_url)],
        render_plugins=render_plugins,
        components=Components(
            security_schemes={
                "bearerAuth": SecurityScheme(type="http", scheme="bearer", bearer_format="JWT"),
            }
        ),
        security=[{"bearerAuth": []}],
        tags=[
            Tag(name="Account", description="The caller's profile and plan."),
            Tag(name="Billing", description="Checkout, PaymentIntents and payment history."),
            Tag(name="Customer Portal", description="Stripe Customer Portal sessions and their outcome."),
            Tag(
                name="Operator",
                description="Portal configurations and analytics of the operator console: role `support` "
                "reads, `admin` writes (bearer: the `OIDC_ROLES_CLAIM` claim of the access token).",
            ),
            Tag(
                name="Compatibility routes",
                description="Endpoints of the integrations this app replaces, verbatim; thin adapters over /api/v1.",
            ),
        ],
        use_handler_docstrings=True,
    )
