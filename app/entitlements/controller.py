"""The host product's read-only API: a person's billing state and single entitlement checks.

`GET /api/v1/customers/{external_id}/state` and `GET /api/v1/customers/{external_id}/entitlements/{feature}`,
authenticated by a host API key (`Authorization: Bearer bpk_…`) and rate limited per key. The
external id is the person's OpenID subject or their verified email. Errors are Litestar
`HTTPException`s carrying `extra={"error_code": …}`; the API's exception handler renders the envelope.
"""

from __future__ import annotations

import hashlib
import time
from typing import Any

from litestar import Controller, MediaType, Request, Response, get
from litestar.connection import ASGIConnection
from litestar.exceptions import (
    NotAuthorizedException,
    NotFoundException,
    PermissionDeniedException,
    TooManyRequestsException,
)
from litestar.handlers.base import BaseRouteHandler
from litestar.middleware.rate_limit import DURATION_VALUES, RateLimitConfig, RateLimitMiddleware
from litestar.openapi import ResponseSpec
from litestar.params import FromPath
from litestar.stores.base import Store
from litestar.stores.redis import RedisStore
from litestar.types import ASGIApp, Message, Receive, Scope, Send

from app.api.common import error_responses
from app.entitlements.api_keys import find_key
from app.entitlements.queries import customer_state, customer_state_json, feature_exists


def _bearer(connection: ASGIConnection[Any, Any, Any, Any]) -> str:
    """The bearer token of the request ("" without one), read from the raw ASGI headers."""
    for name, value in connection.scope["headers"]:
        if name == b"authorization":
            scheme, _, token = value.decode("latin-1").partition(" ")
            return token.strip() if scheme.lower() == "bearer" else ""
    return ""


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


class FixedWindowRateLimitMiddleware(RateLimitMiddleware):
    """Litestar's rate limiter with a fixed one-unit window counted by one atomic increment.

    Litestar's own middleware keeps every request's timestamp in a JSON list that it reads, decodes,
    re-encodes and writes back on each request (cost growing with the limit) and, with Redis, its
    read-then-write is not atomic across processes. Here each bucket is one counter per window:
    `INCR` + `EXPIRE` in one round trip with Redis (shared by every process), a dict in this process
    otherwise. Same answers: the `RateLimit-*` headers, and 429 (`rate_limited`, with `Retry-After`
    from the API's envelope) once the limit is spent. At a window's edge a client may get up to twice
    the limit across two adjacent windows; for an abuse guard that is fine.
    """

    def __init__(self, app: ASGIApp, config: RateLimitConfig) -> None:
        super().__init__(app, config)
        self._window = DURATION_VALUES[self.unit]
        self._counts: dict[str, int] = {}
        self._counts_window = 0

    async def _count(self, key: str, window: int, store: Store) -> int:
        """This request's number in its window (1 for the first)."""
        if isinstance(store, RedisStore):
            redis_key = store._make_key(f"{key}:{window}")  # under the store's namespace
            async with store._redis.pipeline(transaction=False) as pipe:
                pipe.incr(redis_key)
                pipe.expire(redis_key, self._window + 1)
                count, _ = await pipe.execute()
            return int(count)
        if window != self._counts_window:
            self._counts, self._counts_window = {}, window
        count = self._counts.get(key, 0) + 1
        self._counts[key] = count
        return count

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        app = scope["litestar_app"]
        request: Request[Any, Any, Any] = app.request_class(scope)
        now = int(time.time())
        window = now - now % self._window
        count = await self._count(self.cache_key_from_request(request), window, self.config.get_store_from_app(app))
        headers = {
            self.config.rate_limit_policy_header_key: f"{self.max_requests}; w={self._window}",
            self.config.rate_limit_limit_header_key: str(self.max_requests),
            self.config.rate_limit_remaining_header_key: str(max(self.max_requests - count, 0)),
            self.config.rate_limit_reset_header_key: str(window + self._window - now),
        }
        if count > self.max_requests:
            raise TooManyRequestsException(headers=headers)
        encoded = [(k.lower().encode(), v.encode()) for k, v in headers.items()]

        async def send_with_headers(message: Message) -> None:
            if message["type"] == "http.response.start":
                message["headers"] = [*message.get("headers", []), *encoded]
            await send(message)

        await self.app(scope, receive, send_with_headers)


def host_rate_limit(per_minute: int) -> RateLimitConfig:
    """`HOST_API_RATE_LIMIT` requests per minute per key (429 with `RateLimit-*` headers beyond)."""
    return RateLimitConfig(
        rate_limit=("minute", per_minute),
        identifier_for_request=_rate_key,
        store="rate_limit",
        middleware_class=FixedWindowRateLimitMiddleware,
    )


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
        responses={
            **error_responses("invalid_api_key", "customer_not_found", "rate_limited"),
            # The handler hands over PostgreSQL's JSON text; the document still says it is an object.
            200: ResponseSpec(
                data_container=dict[str, Any],
                description="The customer's state (see the README)",
                generate_examples=False,
            ),
        },
    )
    async def state(self, external_id: FromPath[str]) -> Response[bytes]:
        """Plan, status, premium, renews/cancels at, and entitlements with their sources (see README).

        The body is the stored state as PostgreSQL returns it (no decoding and re-encoding here)."""
        found = await customer_state_json(external_id)
        if found is None:
            raise NotFoundException(detail="No such customer.", extra={"error_code": "customer_not_found"})
        return Response(found, media_type=MediaType.JSON)

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
