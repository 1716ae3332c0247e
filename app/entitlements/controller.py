"""The host product's read-only API: a person's billing state and single entitlement checks.

`GET /api/v1/customers/{external_id}/state` and `GET /api/v1/customers/{external_id}/entitlements/{feature}`,
authenticated by a host API key (`Authorization: Bearer bpk_…`) and rate limited per key. The
external id is the person's OpenID subject or their verified email. Errors are Litestar
`HTTPException`s carrying `extra={"error_code": …}`; the API's exception handler renders the envelope.

Host products poll these endpoints, so in the running app `HostApiFastPath` answers them before
Litestar's middleware (as `WebhookFastPath` does for Stripe's deliveries): the same rate limit, key
check, reads and envelope, through the same functions as the routes below, without the session,
CSRF, compression, routing and dependency-injection layers they do not use.
"""

from __future__ import annotations

import hashlib
import time
from typing import Any

from litestar import Controller, Litestar, MediaType, Request, Response, get
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
from litestar.serialization import encode_json
from litestar.stores.base import Store
from litestar.stores.redis import RedisStore
from litestar.types import ASGIApp, Message, Receive, Scope, Send

from app.api.common import error_responses
from app.api.errors import envelope_for
from app.entitlements.api_keys import find_key
from app.entitlements.queries import customer_state, customer_state_json, feature_exists
from app.metrics import HOST_API_REQUEST_SECONDS
from app.web.security import request_id_of


def _bearer(connection: ASGIConnection[Any, Any, Any, Any]) -> str:
    """The bearer token of the request ("" without one), read from the raw ASGI headers."""
    return bearer_of(connection.scope)


def bearer_of(scope: Scope) -> str:
    """The bearer token in the ASGI `scope`'s `Authorization` header ("" without one)."""
    for name, value in scope["headers"]:
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
    await check_host_api_key(_bearer(connection))
    if connection.scope.get("method") not in ("GET", "HEAD"):
        raise PermissionDeniedException(
            detail="Host API keys are read-only.", extra={"error_code": "insufficient_scope"}
        )


async def check_host_api_key(token: str) -> None:
    """Return when `token` is an active host API key (cached per process, `app.entitlements.api_keys`).

    Raises:
        NotAuthorizedException: 401 `invalid_api_key` (missing, unknown or revoked).
    """
    if await find_key(token) is None:
        raise NotAuthorizedException(
            detail="A valid host API key is required (Authorization: Bearer bpk_…).",
            headers={"WWW-Authenticate": 'Bearer realm="billing-host-api"'},
            extra={"error_code": "invalid_api_key"},
        )


def _rate_key(request: Request[Any, Any, Any]) -> str:
    """Rate-limit bucket of a Litestar request (see `rate_bucket`)."""
    return rate_bucket(request.scope)


def rate_bucket(scope: Scope) -> str:
    """Rate-limit bucket: the key (hashed, never logged in clear), else the client address."""
    token = bearer_of(scope)
    if token:
        return "host-api:" + hashlib.sha256(token.encode()).hexdigest()[:24]
    client = scope.get("client")
    return f"host-api:ip:{client[0] if client else 'unknown'}"


_local_counts: dict[str, int] = {}
_local_window = [0]


async def count_in_window(bucket: str, window: int, window_seconds: int, store: Store) -> int:
    """This request's number (1 for the first) in `bucket`'s fixed window starting at `window` (Unix s).

    With Redis: `INCR` + `EXPIRE` in one round trip (shared by every process). Otherwise a dict in
    this process, shared by the rate-limit middleware and `HostApiFastPath`, emptied at each new window.
    """
    if isinstance(store, RedisStore):
        redis_key = store._make_key(f"{bucket}:{window}")  # under the store's namespace
        async with store._redis.pipeline(transaction=False) as pipe:
            pipe.incr(redis_key)
            pipe.expire(redis_key, window_seconds + 1)
            count, _ = await pipe.execute()
        return int(count)
    if window != _local_window[0]:
        _local_counts.clear()
        _local_window[0] = window
    count = _local_counts.get(bucket, 0) + 1
    _local_counts[bucket] = count
    return count


async def spend_rate_limit(
    bucket: str, limit: int, window_seconds: int, store: Store, config: RateLimitConfig
) -> list[tuple[bytes, bytes]]:
    """Count one request of `bucket`; the `RateLimit-*` headers (raw ASGI pairs) to answer with.

    Raises:
        TooManyRequestsException: 429 (`rate_limited`; the envelope adds `Retry-After`) once more
            than `limit` requests were counted in the current `window_seconds` window.
    """
    now = int(time.time())
    window = now - now % window_seconds
    count = await count_in_window(bucket, window, window_seconds, store)
    headers = {
        config.rate_limit_policy_header_key: f"{limit}; w={window_seconds}",
        config.rate_limit_limit_header_key: str(limit),
        config.rate_limit_remaining_header_key: str(max(limit - count, 0)),
        config.rate_limit_reset_header_key: str(window + window_seconds - now),
    }
    if count > limit:
        raise TooManyRequestsException(headers=headers)
    return [(k.lower().encode(), v.encode()) for k, v in headers.items()]


class FixedWindowRateLimitMiddleware(RateLimitMiddleware):
    """Litestar's rate limiter with a fixed one-unit window counted by one atomic increment.

    Litestar's own middleware keeps every request's timestamp in a JSON list that it reads, decodes,
    re-encodes and writes back on each request (cost growing with the limit) and, with Redis, its
    read-then-write is not atomic across processes. Here each bucket is one counter per window
    (`count_in_window`). Same answers: the `RateLimit-*` headers, and 429 (`rate_limited`, with
    `Retry-After` from the API's envelope) once the limit is spent. At a window's edge a client may
    get up to twice the limit across two adjacent windows; for an abuse guard that is fine.
    """

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        app = scope["litestar_app"]
        request: Request[Any, Any, Any] = app.request_class(scope)
        encoded = await spend_rate_limit(
            self.cache_key_from_request(request),
            self.max_requests,
            DURATION_VALUES[self.unit],
            self.config.get_store_from_app(app),
            self.config,
        )

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
        return Response(await state_body(external_id), media_type=MediaType.JSON)

    @get(
        "/{external_id:str}/entitlements/{feature:str}",
        name="host:entitlement",
        cache=False,
        responses=error_responses("invalid_api_key", "customer_not_found", "feature_not_found", "rate_limited"),
    )
    async def entitlement(self, external_id: FromPath[str], feature: FromPath[str]) -> dict[str, Any]:
        """`{feature, entitled, source, source_id, description, until}` for one feature lookup key."""
        return await entitlement_check(external_id, feature)


async def state_body(external_id: str) -> bytes:
    """The state document (JSON, UTF-8) of the person whose subject or verified email is `external_id`.

    Raises:
        NotFoundException: 404 `customer_not_found`.
    """
    found = await customer_state_json(external_id)
    if found is None:
        raise NotFoundException(detail="No such customer.", extra={"error_code": "customer_not_found"})
    return found


async def entitlement_check(external_id: str, feature: str) -> dict[str, Any]:
    """`{object, external_id, feature, entitled, source, source_id, description, until}` for one feature.

    Raises:
        NotFoundException: 404 `customer_not_found`, or `feature_not_found` when neither the
            catalogue nor an operator override knows `feature`.
    """
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


_PREFIX = "/api/v1/customers/"


class HostApiFastPath:
    """ASGI layer that answers the host API's GET/HEAD reads itself, before Litestar's middleware.

    `GET /api/v1/customers/{external_id}/state` and `…/entitlements/{feature}` are machine traffic
    polled at high rates that needs no session, CSRF check, compression, routing or dependency
    injection. In the order the Litestar route applies them: the rate limit (`spend_rate_limit`,
    the app's `rate_limit` store, `HOST_API_RATE_LIMIT` per minute), the key (`check_host_api_key`),
    the read (`state_body` / `entitlement_check`); errors become the API's envelope through
    `app.api.errors.envelope_for` (so a lost database is a 503 with `Retry-After`). Latency is
    exported as `billing_host_api_request_seconds{endpoint,status_code}` (these requests do not pass
    the Prometheus middleware). It sits inside `RequestContextMiddleware`, so request ids, security
    headers and the access log apply. Every other request (other methods, other paths) goes to `app`.
    """

    def __init__(self, app: ASGIApp, litestar_app: Litestar, per_minute: int) -> None:
        self.app = app
        self.litestar_app = litestar_app
        self.limit = per_minute
        self.config = host_rate_limit(per_minute)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        path: str = scope.get("path", "")
        method = scope.get("method")
        if scope["type"] != "http" or method not in ("GET", "HEAD") or not path.startswith(_PREFIX):
            await self.app(scope, receive, send)
            return
        parts = path[len(_PREFIX) :].split("/")
        if len(parts) == 2 and parts[0] and parts[1] == "state":
            endpoint = "state"
        elif len(parts) == 3 and parts[0] and parts[1] == "entitlements" and parts[2]:
            endpoint = "entitlement"
        else:
            await self.app(scope, receive, send)
            return
        started = time.perf_counter()
        headers: list[tuple[bytes, bytes]] = [(b"content-type", b"application/json")]
        try:
            store = self.config.get_store_from_app(self.litestar_app)
            headers += await spend_rate_limit(rate_bucket(scope), self.limit, 60, store, self.config)
            await check_host_api_key(bearer_of(scope))
            if endpoint == "state":
                body = await state_body(parts[0])
            else:
                body = encode_json(await entitlement_check(parts[0], parts[2]))
            status = 200
        except Exception as exc:
            request_id = request_id_of(scope) or "-"
            status, envelope, extra = envelope_for(exc, method, path, request_id)
            body = encode_json(envelope)
            headers += [(k.lower().encode(), v.encode()) for k, v in extra.items()]
            headers.append((b"cache-control", b"no-store"))
        headers.append((b"content-length", str(len(body)).encode()))
        start: Any = {"type": "http.response.start", "status": status, "headers": headers}
        await send(start)
        await send({"type": "http.response.body", "body": b"" if method == "HEAD" else body, "more_body": False})
        HOST_API_REQUEST_SECONDS.labels(endpoint, str(status)).observe(time.perf_counter() - started)
