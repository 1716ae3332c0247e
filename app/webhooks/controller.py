"""`POST /webhooks/stripe`: verify, store, acknowledge. Processing happens in the worker."""

from __future__ import annotations

import functools
import ipaddress
import logging
from pathlib import Path
from typing import Any

from litestar import MediaType, Request, Response, post
from litestar.status_codes import HTTP_200_OK, HTTP_400_BAD_REQUEST, HTTP_403_FORBIDDEN

from app.db import retry_if_connection_lost
from app.stripe_gateway import StripeGateway, WebhookPayloadError, WebhookSignatureError
from app.webhooks.service import MalformedEvent, record_event, validate_event
from app.webhooks.worker import EventWorker

logger = logging.getLogger(__name__)

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
    Bodies over 1 MiB get 413 before any hashing (Litestar checks `Content-Length` and the stream).
    A bad or missing signature, a stale timestamp, or an event whose `livemode` differs from the
    configured key's mode gets 400 and nothing is stored; so does a signed body that is not shaped
    like a Stripe event (`validate_event` names the field). A duplicate event id gets 200 with
    `"duplicate": true` and no second row. The raw body is stored as received (no re-encoding).
    The gateway and worker come from the app's state, not dependency injection: this endpoint takes
    every delivery Stripe makes and does no more work per request than it must.
    """
    stripe_gateway: StripeGateway = request.app.state.stripe_gateway
    worker: EventWorker = request.app.state.worker
    if request.app.state.settings.app.webhook_source_allowlist:
        client_host = request.client.host if request.client else None
        if not from_stripe(client_host):
            logger.warning("Refused a webhook from %s: not one of Stripe's webhook addresses", client_host)
            return Response({"error": "source address not allowed"}, status_code=HTTP_403_FORBIDDEN)
    body = await request.body()
    try:
        event = stripe_gateway.verify_webhook(body, request.headers.get("stripe-signature"))
        validate_event(event, body)
    except WebhookSignatureError as exc:
        logger.warning("Refused a webhook: %s", exc)
        return Response({"error": f"invalid signature: {exc}"}, status_code=HTTP_400_BAD_REQUEST)
    except (MalformedEvent, WebhookPayloadError) as exc:
        logger.warning("Refused a signed but malformed webhook: %s", exc)
        return Response({"error": f"malformed event: {exc}"}, status_code=HTTP_400_BAD_REQUEST)
    if bool(event.get("livemode")) != stripe_gateway.settings.livemode:
        logger.warning("Refused webhook: livemode=%r does not match the key", event.get("livemode"))
        return Response({"error": "livemode does not match this endpoint's key"}, status_code=HTTP_400_BAD_REQUEST)
    # Idempotent (the event id is unique), so a dead pooled connection is simply retried on a fresh one;
    # if the database stays away the error handler answers 503 and Stripe delivers again later.
    created = await retry_if_connection_lost(lambda: record_event(event, body))
    if created:
        worker.wake()
    return Response({"received": True, "duplicate": not created})
