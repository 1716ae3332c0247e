"""The host product's read-only API: a person's billing state and single entitlement checks.

`GET /api/v1/customers/{external_id}/state` and `GET /api/v1/customers/{external_id}/entitlements/{feature}`,
authenticated by a host API key (`Authorization: Bearer bpk_…`) and rate limited per key. The
external id is the person's OpenID subject or their verified email. Errors are Litestar
`HTTPException`s carrying `extra={"error_code": …}`; the API's exception handler renders the envelope.
"""

from __future__ import annotations

import hashlib
from typing import Any

from litestar import Controller, Request, get
from litestar.connection import ASGIConnection
from litestar.exceptions import NotAuthorizedException, NotFoundException, PermissionDeniedException
from litestar.handlers.base import BaseRouteHandler
from litestar.middleware.rate_limit import RateLimitConfig
from litestar.params import FromPath

from app.api.common import error_responses
from app.entitlements.api_keys import find_key
from app.entitlements.queries import customer_state, feature_exists


def _bearer(connection: ASGIConnection[Any, Any, Any, Any]) -> str:
    scheme, _, token = (connection.headers.get("authorization") or "").partition(" ")
    return token.strip() if scheme.lower() == "bearer" else ""


async def requires_host_api_key(connection: ASGIConnection[Any, Any, Any, Any], _: BaseRouteHandler) -> None:
    """Let through requests with an active host API key; every key is read-only.

    Raises:
        NotAuthorizedException: 401 `invalid_api_key` (missing, unknown or revoked).
        PermissionDeniedException: 403 `insufficient_scope` for anything but GET/HEAD.
    """
    key = await find_key(_bearer(connection))
    if key is None:
        raise NotAuthorizedException(
            detail="A valid host API key is required (Authorization: Bearer bpk_…).",
            headers={"WWW-Authenticate": 'Bearer realm="billing-host-api"'},
            extra={"error_code": "invalid_api_key"},
        )
    if connection.scope.get("method") not in ("GET", "HEAD"):
        raise PermissionDeniedException(
            detail="Host API keys are read-only.", extra={"error_code": "insufficient_scope"}
        )


def _rate_key(request: Request[Any, Any, Any]) -> str:
    """Rate-limit bucket: the key (hashed, never logged in clear), else the client address."""
    token = _bearer(request)
    if token:
        return "host-api:" + hashlib.sha256(token.encode()).hexdigest()[:24]
    return f"host-api:ip:{request.client.host if request.client else 'unknown'}"


def host_rate_limit(per_minute: int) -> RateLimitConfig:
    """`HOST_API_RATE_LIMIT` requests per minute per key (429 with `RateLimit-*` headers beyond)."""
    return RateLimitConfig(rate_limit=("minute", per_minute), identifier_for_request=_rate_key, store="rate_limit")


class HostApiController(Controller):
    """Read-only endpoints for the host product."""

    path = "/api/v1/customers"
    guards = [requires_host_api_key]  # noqa: RUF012
    # Machine-to-machine and read-only: no session (its file/Redis round trips) and no CSRF cookie.
    opt = {"skip_session": True, "exclude_from_csrf": True}  # noqa: RUF012

    @get(
        "/{external_id:str}/state",
        name="host:state",
        cache=False,
        responses=error_responses("invalid_api_key", "customer_not_found", "rate_limited"),
    )
    async def state(self, external_id: FromPath[str]) -> dict[str, Any]:
        """Plan, status, premium, renews/cancels at, and entitlements with their sources (see README)."""
        found = await customer_state(external_id)
        if found is None:
            raise NotFoundException(detail="No such customer.", extra={"error_code": "customer_not_found"})
        return found

    @get(
        "/{external_id:str}/entitlements/{feature:str}",
        name="host:entitlement",
        cache=False,
        responses=error_responses("invalid_api_key", "customer_not_found", "feature_not_found", "rate_limited"),
    )
    async def entitlement(self, external_id: FromPath[str], feature: FromPath[str]) -> dict[str, Any]:
        """`{feature, entitled, source, source_id, description, until}` for one feature lookup key."""
        found = await customer_state(external_id)
        if found is None:
            raise NotFoundException(detail="No such customer.", extra={"error_code": "customer_not_found"})
        match = next((e for e in found["entitlements"] if e["feature"] == feature), None)
        if match is None and not await feature_exists(feature):
            raise NotFoundException(detail="No such feature.", extra={"error_code": "feature_not_found"})
        return {
            "object": "entitlement_check",
            "external_id": found["external_id"],
            "feature": feature,
            "entitled": match is not None,
            "source": match["source"] if match else None,
            "source_id": match["source_id"] if match else None,
            "description": match["description"] if match else None,
            "until": match["until"] if match else None,
        }
