"""One error envelope for every JSON route: `/api/…` and the compatibility routes.

Every 4xx/5xx answered on those paths, whoever raised it (an API handler, a guard, Litestar's own
404/405/validation, the CSRF middleware, the rate limiter, another area's controller under `/api`),
is

    {"success": false, "error": "<sentence for people>", "error_code": "<stable code>",
     "timestamp": "<ISO 8601 UTC>", "request_id": "<the X-Request-ID>"}

plus `errors: [{"field", "message"}]` on 422. The same `request_id` is in the `X-Request-ID` header
and in the log line, so support can find it. Handlers raise Litestar's `HTTPException` subclasses and
may pick the code with `extra={"error_code": "..."}`; otherwise the status's default code is used.

`with_api_envelope(handlers)` wraps the app's page handlers (registered once in `create_app`): on a
JSON path the envelope, elsewhere the page handler as before.
"""

from __future__ import annotations

import logging
import re
import secrets
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from litestar import MediaType, Request, Response
from litestar.exceptions import HTTPException, PermissionDeniedException, ValidationException

from app.db import DATABASE_UNAVAILABLE, STORE_UNAVAILABLE
from app.stripe_gateway import StripeGatewayError
from app.web.guards import LoginRequired

logger = logging.getLogger(__name__)

#: Path prefixes answered with JSON errors (the API and the compatibility routes).
JSON_PATH_PREFIXES = ("/api/", "/stripe/customer-portal", "/v1/billing/")

#: The stable list of `error_code`s (documented in the README): code → (status, default message).
ERROR_CODES: dict[str, tuple[int, str]] = {
    "bad_request": (400, "The request could not be understood."),
    "invalid_cursor": (400, "The cursor is not valid (it was changed or belongs to someone else)."),
    "authentication_required": (401, "Sign in or send an access token (Authorization: Bearer …)."),
    "invalid_token": (401, "The access token is not valid."),
    "invalid_api_key": (401, "A valid host API key is required (Authorization: Bearer bpk_…)."),
    "insufficient_scope": (403, "Host API keys are read-only."),
    "forbidden": (403, "You are not allowed to do that."),
    "csrf_failed": (403, "The CSRF token is missing or wrong (send the x-csrftoken header)."),
    "not_found": (404, "Not found."),
    "customer_not_found": (404, "No person here has that subject or verified email."),
    "feature_not_found": (404, "No such feature."),
    "method_not_allowed": (405, "That method is not allowed on this path."),
    "conflict": (409, "That cannot be done in the current state."),
    "already_subscribed": (409, "You already have a plan of that kind."),
    "no_active_subscription": (409, "You have no active subscription."),
    "no_customer": (409, "You have no billing account yet."),
    "idempotency_key_reused": (409, "This Idempotency-Key was used with another request."),
    "idempotency_key_in_use": (409, "A request with this Idempotency-Key is still being processed."),
    "payload_too_large": (413, "The request body is too large."),
    "unsupported_media_type": (415, "Send the body as application/json."),
    "validation_failed": (422, "Some fields are not valid."),
    "rate_limited": (429, "Too many requests; try again later."),
    "internal_error": (500, "Something went wrong on our side."),
    "stripe_error": (502, "The payment provider did not accept the request."),
    "stripe_unavailable": (502, "The payment provider could not be reached; nothing was changed."),
    "provider_unavailable": (502, "The sign-in provider could not be reached."),
    "service_unavailable": (503, "Temporarily unavailable."),
}

CODE_PATTERN = re.compile(r"[a-z][a-z0-9_]{1,63}")

DEFAULT_CODE_FOR_STATUS = {
    400: "bad_request",
    401: "authentication_required",
    403: "forbidden",
    404: "not_found",
    405: "method_not_allowed",
    409: "conflict",
    413: "payload_too_large",
    415: "unsupported_media_type",
    422: "validation_failed",
    429: "rate_limited",
    500: "internal_error",
    502: "stripe_unavailable",
    503: "service_unavailable",
}


@dataclass
class FieldError:
    """One failing field of a 422: `field` is the JSON key (or query parameter), `message` says why."""

    field: str
    message: str


@dataclass
class ErrorEnvelope:
    """Every JSON error: `success` is always false; `errors` only on 422."""

    error: str
    error_code: str
    timestamp: str
    request_id: str
    success: bool = False
    errors: list[FieldError] | None = field(default=None)


class ApiError(HTTPException):
    """An API error with a code from `ERROR_CODES` (its status and default message come from there)."""

    def __init__(self, error_code: str, detail: str | None = None, **kwargs: Any) -> None:
        status_code, message = ERROR_CODES[error_code]
        extra = kwargs.pop("extra", None) or {}
        super().__init__(detail=detail or message, status_code=status_code, extra={**extra, "error_code": error_code})


def validation_error(fields: Mapping[str, str], detail: str | None = None) -> ApiError:
    """A 422 `validation_failed` naming each failing field (`{"field": "message"}`)."""
    return ApiError(
        "validation_failed",
        detail or " ".join(fields.values()),
        extra={"errors": [{"field": k, "message": v} for k, v in fields.items()]},
    )


def stripe_error(exc: StripeGatewayError) -> ApiError:
    """502 for a Stripe failure; the Stripe request id (`req_…`) is logged and shown as the reference."""
    from app.stripe_gateway import StripeUnavailable

    code = "stripe_unavailable" if isinstance(exc, StripeUnavailable) else "stripe_error"
    logger.warning("Stripe failure in the API (Stripe request %s): %s", exc.request_id, exc)
    return ApiError(code, extra={"stripe_request_id": exc.request_id})


def is_json_path(path: str) -> bool:
    """True for paths whose errors are JSON envelopes."""
    return path.startswith(JSON_PATH_PREFIXES) or path in ("/api", "/stripe/customer-portal")


def request_id_of(request: Request[Any, Any, Any]) -> str:
    """This request's id: the one every log line and the `X-Request-ID` header carry
    (`app.web.security.RequestContextMiddleware`), else one made here and kept on the request's state."""
    from app.web.security import request_id_of as context_request_id

    known = context_request_id(request.scope)
    if known:
        return known
    state = request.scope.setdefault("state", {})
    if "api_request_id" not in state:
        state["api_request_id"] = "req_" + secrets.token_hex(8)
    return str(state["api_request_id"])


def _field_errors(exc: HTTPException) -> list[FieldError] | None:
    extra = exc.extra
    items: list[Any] = []
    if isinstance(extra, dict) and isinstance(extra.get("errors"), list):
        items = extra["errors"]
    elif isinstance(extra, list):  # Litestar's own ValidationException: [{"key", "message", "source"}]
        items = extra
    errors = []
    for item in items:
        if isinstance(item, dict):
            message = str(item.get("message", "is not valid"))
            name = str(item.get("field") or item.get("key") or item.get("source") or "body")
            if item.get("source") == "body" and item.get("key") in (None, "", "data"):
                name = _body_field(message)
            errors.append(FieldError(field=name, message=message))
    return errors or None


_MISSING_FIELD = re.compile(r"missing required field `([^`]+)`")
_AT_PATH = re.compile(r" - at `\$(?:\.data)?\.?([^`]*)`")


def _body_field(message: str) -> str:
    """The JSON key a body validation message is about (msgspec: "… - at `$.price`", "missing required
    field `price`"), or `body` for the body as a whole."""
    path = _AT_PATH.search(message)
    missing = _MISSING_FIELD.search(message)
    parts = [p for p in (path.group(1) if path else "", missing.group(1) if missing else "") if p]
    return ".".join(parts) or "body"


def _code_and_message(exc: HTTPException) -> tuple[int, str, str]:
    status = exc.status_code
    extra = exc.extra if isinstance(exc.extra, dict) else {}
    code = extra.get("error_code")
    if isinstance(exc, ValidationException) and status == 400:
        # Litestar reports malformed parameters and bodies as 400; the API promises 422 with fields.
        status, code = 422, code or "validation_failed"
    if isinstance(exc, PermissionDeniedException) and "CSRF" in str(exc.detail):
        code = "csrf_failed"
    if not isinstance(code, str) or not CODE_PATTERN.fullmatch(code):
        code = DEFAULT_CODE_FOR_STATUS.get(status, "internal_error" if status >= 500 else "bad_request")
    # Codes another area defines (e.g. the host API's) are honoured; their message is the detail.
    default_message = ERROR_CODES[code][1] if code in ERROR_CODES else str(exc.detail or "Request refused.")
    message = default_message
    if 400 <= status < 500 and exc.detail and code not in ("csrf_failed", "not_found", "method_not_allowed"):
        message = str(exc.detail)
    if status == 422 and message.startswith("Validation failed for"):
        message = default_message
    return status, code, message


def envelope_for(
    exc: BaseException, method: str, path: str, request_id: str
) -> tuple[int, ErrorEnvelope, dict[str, str]]:
    """(status, envelope, extra headers) for any exception raised while answering a JSON path.

    `HTTPException`s keep their status and `error_code` (401s get `WWW-Authenticate`, 429s
    `Retry-After`); a lost database or Redis is 503 `service_unavailable` with `Retry-After: 5`
    (logged as a warning); anything else is a 500 `internal_error`, logged with the request id and traceback.
    Shared by the exception handlers and the host API's lean path (`HostApiFastPath`).
    """
    if isinstance(exc, LoginRequired):
        exc = ApiError("authentication_required")
    timestamp = datetime.now(UTC).isoformat(timespec="seconds").replace("+00:00", "Z")
    if isinstance(exc, (*DATABASE_UNAVAILABLE[1:], ConnectionError, *STORE_UNAVAILABLE)):
        kind = type(exc).__name__
        what = "Redis" if isinstance(exc, STORE_UNAVAILABLE) else "Database"
        logger.warning("%s unavailable (request %s) on %s %s: %s: %s", what, request_id, method, path, kind, exc)
        code = "service_unavailable"
        return 503, ErrorEnvelope(ERROR_CODES[code][1], code, timestamp, request_id), {"Retry-After": "5"}
    if not isinstance(exc, HTTPException):
        logger.error("Unhandled error (request %s) on %s %s", request_id, method, path, exc_info=exc)
        code = "internal_error"
        return 500, ErrorEnvelope(ERROR_CODES[code][1], code, timestamp, request_id), {}
    status, code, message = _code_and_message(exc)
    if status >= 500 and exc.status_code >= 500 and not (isinstance(exc.extra, dict) and exc.extra.get("error_code")):
        logger.error("Server error (request %s) on %s %s: %s", request_id, method, path, exc)
    else:
        logger.info("API %s %s -> %s %s (request %s): %s", method, path, status, code, request_id, exc.detail)
    headers: dict[str, str] = dict(exc.headers or {})
    if status == 429:
        headers["Retry-After"] = str(headers.get("RateLimit-Reset", "60"))
    if status == 401 and "WWW-Authenticate" not in headers:
        error = ' error="invalid_token"' if code == "invalid_token" else ""
        headers["WWW-Authenticate"] = f'Bearer realm="api"{error}'
    return status, ErrorEnvelope(message, code, timestamp, request_id, errors=_field_errors(exc)), headers


def api_exception_response(request: Request[Any, Any, Any], exc: Exception) -> Response[ErrorEnvelope]:
    """Any exception on a JSON path → the envelope (see `envelope_for`), with `X-Request-ID`."""
    request_id = request_id_of(request)
    status, body, headers = envelope_for(exc, request.method, request.url.path, request_id)
    response = Response(body, status_code=status, media_type=MediaType.JSON, headers=headers)
    response.headers["X-Request-ID"] = request_id
    response.headers["Cache-Control"] = "no-store"
    return response


Handler = Callable[[Request[Any, Any, Any], Any], Response[Any]]


def with_api_envelope(handlers: Mapping[Any, Handler]) -> dict[Any, Handler]:
    """The page exception handlers, each answering with the envelope on a JSON path instead."""

    def wrap(page_handler: Handler) -> Handler:
        def handler(request: Request[Any, Any, Any], exc: Any) -> Response[Any]:
            if is_json_path(request.url.path):
                return api_exception_response(request, exc)
            return page_handler(request, exc)

        handler.__doc__ = page_handler.__doc__
        return handler

    return {key: wrap(value) for key, value in handlers.items()}
