"""`POST /webhooks/stripe`: verify, store, acknowledge. Processing happens in the worker."""

from __future__ import annotations

import logging
from typing import Any

from litestar import MediaType, Request, Response, post
from litestar.di import NamedDependency
from litestar.status_codes import HTTP_200_OK, HTTP_400_BAD_REQUEST

from app.stripe_gateway import StripeGateway, WebhookPayloadError, WebhookSignatureError
from app.webhooks.service import MalformedEvent, record_event, validate_event
from app.webhooks.worker import EventWorker

logger = logging.getLogger(__name__)

MAX_BODY_BYTES = 1024 * 1024


@post(
    "/webhooks/stripe",
    name="webhooks:stripe",
    media_type=MediaType.JSON,
    status_code=HTTP_200_OK,
    request_max_body_size=MAX_BODY_BYTES,
    opt={"skip_session": True},
)
async def stripe_webhook(
    request: Request[Any, Any, Any],
    stripe_gateway: NamedDependency[StripeGateway],
    worker: NamedDependency[EventWorker],
) -> Response[dict[str, Any]]:
    """Verify `Stripe-Signature` on the raw body, store the event, answer 200 at once.

    Bodies over 1 MiB get 413 before any hashing (Litestar checks `Content-Length` and the stream).
    A bad or missing signature, a stale timestamp, or an event whose `livemode` differs from the
    configured key's mode gets 400 and nothing is stored; so does a signed body that is not shaped
    like a Stripe event (`validate_event` names the field). A duplicate event id gets 200 with
    `"duplicate": true` and no second row. The raw body is stored as received (no re-encoding).
    """
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
    created = await record_event(event, body)
    if created:
        worker.wake()
    return Response({"received": True, "duplicate": not created})
