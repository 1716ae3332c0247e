"""What every API controller shares: middleware, guard, JSON-body rule, rate limit, URL checks, and
the OpenAPI description of the error responses."""

from __future__ import annotations

import re
from typing import Any
from urllib.parse import urlsplit

from litestar import Request
from litestar.enums import RequestEncodingType
from litestar.middleware.rate_limit import RateLimitConfig
from litestar.openapi.datastructures import ResponseSpec
from litestar.openapi.spec import Example
from litestar.params import Body, BodyKwarg
from litestar.types import ASGIApp, Receive, Scope, Send

from app.api.auth import ApiAuthMiddleware, requires_api_user, session_rate_limit_key
from app.api.errors import ERROR_CODES, ApiError, ErrorEnvelope
from app.api.idempotency import IdempotencyMiddleware
from app.portal.controller import PORTAL_SESSIONS_PER_MINUTE


class JsonBodyMiddleware:
    """An unsafe request with a body must send it as `application/json` (415 `unsupported_media_type`)."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http" and scope["method"] in ("POST", "PUT", "PATCH"):  # type: ignore[typeddict-item]
            request: Request[Any, Any, Any] = Request(scope, receive)
            if await request.body() and request.content_type[0] != "application/json":
                raise ApiError("unsupported_media_type")
        await self.app(scope, receive, send)


#: On every API controller, outermost first: find the caller, check the body's type, then honour
#: Idempotency-Key (so a replay needs the same credentials and a well-formed request).
API_MIDDLEWARE: list[Any] = [ApiAuthMiddleware, JsonBodyMiddleware, IdempotencyMiddleware]
API_GUARDS: list[Any] = [requires_api_user]

#: Session-creating endpoints (Checkout, PaymentIntent, portal): the pages' per-person limit.
session_rate_limit = RateLimitConfig(
    rate_limit=("minute", PORTAL_SESSIONS_PER_MINUTE), identifier_for_request=session_rate_limit_key, store="rate_limit"
)

STRIPE_LOCALE = re.compile(r"^(auto|[a-z]{2}(-[A-Z]{2}|-[0-9]{3})?)$")


def check_client_url(request: Request[Any, Any, Any], name: str, url: str | None) -> str | None:
    """A return/success/cancel URL given by a client, if it is on an allowed origin (`API_ALLOWED_ORIGINS`).

    Raises:
        ApiError: 422 `validation_failed` naming the field.
    """
    if url is None:
        return None
    from app.api.errors import validation_error

    parts = urlsplit(url)
    origin = f"{parts.scheme}://{parts.netloc}".lower()
    if parts.scheme not in ("http", "https") or origin not in request.app.state.settings.api.allowed_origins:
        raise validation_error({name: "Use a URL on one of this app's allowed origins."})
    return url


def error_example(code: str) -> Example:
    """An OpenAPI example of the envelope for `code`."""
    status, message = ERROR_CODES[code]
    value: dict[str, Any] = {
        "success": False,
        "error": message,
        "error_code": code,
        "timestamp": "2026-12-01T12:00:00Z",
        "request_id": "req_4f3c2a1b0e9d8c7b",
    }
    if status == 422:
        value["errors"] = [{"field": "return_url", "message": "Use a URL on one of this app's allowed origins."}]
    return Example(summary=code, value=value)


def error_responses(*codes: str) -> dict[int, ResponseSpec]:
    """OpenAPI `responses` for the given error codes, plus those any route can give (400, 401, 500);
    the 400 replaces Litestar's own validation shape, which the API never sends."""
    by_status: dict[int, list[str]] = {}
    for code in ("bad_request", "authentication_required", "invalid_token", "internal_error", *codes):
        by_status.setdefault(ERROR_CODES[code][0], []).append(code)
    return {
        status: ResponseSpec(
            data_container=ErrorEnvelope,
            description="Error envelope; `error_code` is one of: " + ", ".join(f"`{c}`" for c in names),
            examples=[error_example(c) for c in names],
        )
        for status, names in by_status.items()
    }


def json_body(*examples: dict[str, Any], description: str | None = None) -> BodyKwarg:
    """A JSON request body marker with OpenAPI examples (`Annotated[Model, json_body({...})]`)."""
    return Body(
        media_type=RequestEncodingType.JSON,
        description=description,
        examples=[Example(summary=", ".join(f"{k}" for k in e) or "empty", value=e) for e in examples],
    )
