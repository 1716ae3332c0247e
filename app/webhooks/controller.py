"""`POST /webhooks/stripe`: verify, store, acknowledge. Processing happens in the worker."""

from __future__ import annotations

import functools
import ipaddress
import json
import logging
import time
from pathlib import Path
from typing import Any

from litestar import MediaType, Request, Response, post
from litestar.datastructures import State
from litestar.status_codes import (
    HTTP_200_OK,
    HTTP_400_BAD_REQUEST,
    HTTP_403_FORBIDDEN,
    HTTP_413_REQUEST_ENTITY_TOO_LARGE,
)
from litestar.types import ASGIApp, Receive, Scope, Send

from app.db import DATABASE_UNAVAILABLE, retry_if_connection_lost
from app.metrics import WEBHOOK_REQUEST_SECONDS
from app.stripe_gateway import StripeGateway, WebhookPayloadError, WebhookSignatureError
from app.web.errors import MESSAGES as ERROR_MESSAGES
from app.web.security import request_id_of
from app.webhooks.service import MalformedEvent, record_event, validate_event
from app.webhooks.worker import EventWorker

logger = logging.getLogger(__name__)
# What Litestar's handlers answer 503 for (app/web/errors.py): the database, or the connection to it, is gone.
DATABASE_UNAVAILABLE_ERRORS: tuple[type[BaseException], ...] = (*DATABASE_UNAVAILABLE[1:], ConnectionError)

MAX_BODY_BYTES = 1024 * 1024
STRIPE_WEBHOOK_IPS_FILE = Path(__file__).with_name("stripe_webhook_ips.txt")


@functools.cache
def stripe_webhook_addresses() -> frozenset[ipaddress.IPv4Address | ipaddress.IPv6Address]:
    """Stripe's published webhook source addresses (`stripe_webhook_ips.txt`, with its source and date)."""
    lines = (line.split("#", 1)[0].strip() for line in STRIPE_WEBHOOK_IPS_FILE.read_text().splitlines())
    return frozenset(ipaddress.ip_address(line) for line in lines if line)


def from_stripe(client_host: str | None) -> bool:
    """True when `client_host` (already resolved through `TRUSTED_PROXIES`) is one of Stripe's addresses."""
    try:
        return client_host is not None and ipaddress.ip_address(client_host) in stripe_webhook_addresses()
    except ValueError:
        return False


async def ingest(
    state: State, body: bytes, signature: str | None, client_host: str | None
) -> tuple[int, dict[str, Any]]:
    """What `POST /webhooks/stripe` does, as `(status code, JSON answer)` (see `stripe_webhook`).

    Raises:
        one of `DATABASE_UNAVAILABLE` when the event could not be stored (answered 503; Stripe retries).
    """
    stripe_gateway: StripeGateway = state.stripe_gateway
    worker: EventWorker = state.worker
    if state.settings.app.webhook_source_allowlist and not from_stripe(client_host):
        logger.warning("Refused a webhook from %s: not one of Stripe's webhook addresses", client_host)
        return HTTP_403_FORBIDDEN, {"error": "source address not allowed"}
    try:
        event = stripe_gateway.verify_webhook(body, signature)
        validate_event(event, body)
    except WebhookSignatureError as exc:
        logger.warning("Refused a webhook: %s", exc)
        return HTTP_400_BAD_REQUEST, {"error": f"invalid signature: {exc}"}
    except (MalformedEvent, WebhookPayloadError) as exc:
        logger.warning("Refused a signed but malformed webhook: %s", exc)
        return HTTP_400_BAD_REQUEST, {"error": f"malformed event: {exc}"}
    if bool(event.get("livemode")) != stripe_gateway.settings.livemode:
        logger.warning("Refused webhook: livemode=%r does not match the key", event.get("livemode"))
        return HTTP_400_BAD_REQUEST, {"error": "livemode does not match this endpoint's key"}
    # Idempotent (the event id is unique), so a dead pooled connection is simply retried on a fresh one;
    # if the database stays away the answer is 503 and Stripe delivers again later.
    created = await retry_if_connection_lost(lambda: record_event(event, body))
    if created:
        worker.wake()
    return HTTP_200_OK, {"received": True, "duplicate": not created}


@post(
    "/webhooks/stripe",
    name="webhooks:stripe",
    media_type=MediaType.JSON,
    status_code=HTTP_200_OK,
    request_max_body_size=MAX_BODY_BYTES,
    opt={"skip_session": True},
)
async def stripe_webhook(request: Request[Any, Any, Any]) -> Response[dict[str, Any]]:
    """Verify `Stripe-Signature` on the raw body, store the event, answer 200 at once.

    With `WEBHOOK_SOURCE_ALLOWLIST=on`, a request from any address but Stripe's published ones
    (the client address as resolved through `TRUSTED_PROXIES`) gets 403 before anything else.
    Bodies over 1 MiB get 413 before any hashing. A bad or missing signature, a stale timestamp, or
    an event whose `livemode` differs from the configured key's mode gets 400 and nothing is stored;
    so does a signed body that is not shaped like a Stripe event (`validate_event` names the field).
    A duplicate event id gets 200 with `"duplicate": true` and no second row. The raw body is stored
    as received (no re-encoding).

    In the running app `WebhookFastPath` answers these requests before Litestar's middleware (this
    route documents the endpoint in the OpenAPI schema and serves an app built without `wrap_app`).
    """
    status, answer = await ingest(
        request.app.state,
        await request.body(),
        request.headers.get("stripe-signature"),
        request.client.host if request.client else None,
    )
    return Response(answer, status_code=status)


class WebhookFastPath:
    """ASGI layer that answers `POST /webhooks/stripe` itself, before Litestar's middleware.

    Stripe's deliveries are machine traffic that needs no session, CSRF check, compression, template
    or dependency injection: the layer reads the body (413 over `MAX_BODY_BYTES`, checked against
    `Content-Length` and the stream), runs `ingest`, and answers JSON. A lost database is a 503 with
    `Retry-After` (Stripe retries), anything unexpected a logged 500 with the request id. It sits
    inside `RequestContextMiddleware`, so request ids, security headers and the access log apply.
    Every other request goes to `app`.
    """

    def __init__(self, app: ASGIApp, state: State) -> None:
        self.app = app
        self.state = state

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or scope["path"] != "/webhooks/stripe" or scope.get("method") != "POST":
            await self.app(scope, receive, send)
            return
        started = time.perf_counter()
        signature = None
        declared = 0
        for name, value in scope["headers"]:
            if name == b"stripe-signature":
                signature = value.decode("latin-1")
            elif name == b"content-length" and value.isdigit():
                declared = int(value)
        status, answer, extra = HTTP_413_REQUEST_ENTITY_TOO_LARGE, {"error": "That request is too large"}, []
        body = await self._body(receive) if declared <= MAX_BODY_BYTES else None
        if body is not None:
            client = scope.get("client")
            try:
                status, answer = await ingest(self.state, body, signature, client[0] if client else None)
            except DATABASE_UNAVAILABLE_ERRORS as exc:
                logger.warning("Database unavailable on POST /webhooks/stripe: %s: %s", type(exc).__name__, exc)
                status, answer, extra = 503, {"error": ERROR_MESSAGES[503]}, [(b"retry-after", b"5")]
            except Exception:
                reference = request_id_of(scope) or "-"
                logger.exception("Unhandled error (reference %s) on POST /webhooks/stripe", reference)
                status, answer = 500, {"error": ERROR_MESSAGES[500]}
        content = json.dumps(answer, separators=(",", ":")).encode()
        headers = [(b"content-type", b"application/json"), (b"content-length", str(len(content)).encode()), *extra]
        start: Any = {"type": "http.response.start", "status": status, "headers": headers}
        await send(start)
        await send({"type": "http.response.body", "body": content, "more_body": False})
        WEBHOOK_REQUEST_SECONDS.labels(str(status)).observe(time.perf_counter() - started)

    @staticmethod
    async def _body(receive: Receive) -> bytes | None:
        """The request body, or None once it grows past `MAX_BODY_BYTES`."""
        chunks: list[bytes] = []
        size = 0
        while True:
            message = await receive()
            if message["type"] == "http.disconnect":
                return b"".join(chunks)
            chunk: bytes = message.get("body", b"")  # type: ignore[assignment]
            size += len(chunk)
            if size > MAX_BODY_BYTES:
                return None
            chunks.append(chunk)
            if not message.get("more_body", False):
                return b"".join(chunks)
