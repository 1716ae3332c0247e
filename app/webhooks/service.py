"""Stripe webhook events: record first, then apply.

`record_event` stores a verified event verbatim under its unique id (a duplicate delivery is a
no-op). `process_next` claims pending events with `SELECT … FOR UPDATE SKIP LOCKED`, coalesces
every pending event of the same customer into one `sync_customer` call (or of the catalogue into
one `sync_catalog`), and marks them processed in the same transaction as the sync's writes: a
crash anywhere leaves the events pending and the local copy untouched, to be retried.

Handlers are registered by event type in `HANDLERS`; each returns what to re-sync, never data to
write: the sync re-reads Stripe's current state. Types not listed are stored and marked ignored.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

from app.billing.sync import sync_catalog, sync_customer
from app.billing.tables import StripeEvent
from app.stripe_gateway import StripeGateway, StripeGatewayError, StripeRateLimited, from_unix
from piccolo_conf import DB

logger = logging.getLogger(__name__)

MAX_ATTEMPTS = 8
CATALOG = "catalog"


@dataclass(frozen=True)
class SyncTarget:
    """What an event asks to re-sync: a customer (with PaymentIntents to include) or the catalogue."""

    key: str
    payment_intent_id: str | None = None


def _ref(value: Any) -> str | None:
    return value.get("id") if isinstance(value, dict) else value if isinstance(value, str) else None


def _customer_of(obj: dict[str, Any]) -> SyncTarget | None:
    customer = _ref(obj.get("customer"))
    return SyncTarget(customer) if customer else None


def _customer_itself(obj: dict[str, Any]) -> SyncTarget | None:
    return SyncTarget(obj["id"]) if obj.get("id") else None


def _payment_intent(obj: dict[str, Any]) -> SyncTarget | None:
    customer = _ref(obj.get("customer"))
    return SyncTarget(customer, payment_intent_id=obj.get("id")) if customer else None


def _charge(obj: dict[str, Any]) -> SyncTarget | None:
    customer = _ref(obj.get("customer"))
    return SyncTarget(customer, payment_intent_id=_ref(obj.get("payment_intent"))) if customer else None


def _catalog(_: dict[str, Any]) -> SyncTarget:
    return SyncTarget(CATALOG)


HANDLERS: dict[str, Callable[[dict[str, Any]], SyncTarget | None]] = {
    "checkout.session.completed": _customer_of,
    "checkout.session.async_payment_succeeded": _customer_of,
    "checkout.session.async_payment_failed": _customer_of,
    "customer.subscription.created": _customer_of,
    "customer.subscription.updated": _customer_of,
    "customer.subscription.deleted": _customer_of,
    "customer.subscription.paused": _customer_of,
    "customer.subscription.resumed": _customer_of,
    "customer.subscription.trial_will_end": _customer_of,
    "invoice.paid": _customer_of,
    "invoice.payment_succeeded": _customer_of,
    "invoice.payment_failed": _customer_of,
    "invoice.finalized": _customer_of,
    "payment_intent.succeeded": _payment_intent,
    "payment_intent.payment_failed": _payment_intent,
    "payment_intent.canceled": _payment_intent,
    "charge.refunded": _charge,
    "charge.refund.updated": _charge,
    "customer.created": _customer_itself,
    "customer.updated": _customer_itself,
    "customer.deleted": _customer_itself,
    "payment_method.attached": _customer_of,
    "payment_method.detached": lambda obj: None,
    "product.created": _catalog,
    "product.updated": _catalog,
    "product.deleted": _catalog,
    "price.created": _catalog,
    "price.updated": _catalog,
    "price.deleted": _catalog,
    "entitlements.active_entitlement_summary.updated": _customer_of,
}


def target_of(event: dict[str, Any]) -> SyncTarget | None:
    """What `event` asks to re-sync, or None when this app has nothing to do for it."""
    handler = HANDLERS.get(str(event.get("type")))
    obj = (event.get("data") or {}).get("object") or {}
    return handler(obj) if handler else None


async def record_event(event: dict[str, Any]) -> bool:
    """Store a verified event; True when new, False for a duplicate delivery (nothing changes).

    Events of types this app does not handle are stored as `ignored`.
    """
    target = target_of(event)
    if event.get("type") == "payment_method.detached":
        # The detached object no longer names its customer; `previous_attributes` does.
        previous = (event.get("data") or {}).get("previous_attributes") or {}
        customer = _ref(previous.get("customer"))
        target = SyncTarget(customer) if customer else None
    rows = (
        await StripeEvent.insert(
            StripeEvent(
                stripe_event_id=event["id"],
                type=str(event.get("type")),
                api_version=event.get("api_version"),
                created=from_unix(event.get("created")) or datetime.now(UTC),
                livemode=bool(event.get("livemode")),
                payload=event,
                stripe_customer_id=target.key if target else None,
                status="pending" if target else "ignored",
            )
        )
        .on_conflict(target=StripeEvent.stripe_event_id, action="DO NOTHING")
        .returning(StripeEvent.id)
    )
    return bool(rows)


def backoff(attempts: int) -> timedelta:
    """Delay before retry number `attempts` (1-based): 5 s, 10 s, 20 s … capped at one hour."""
    return timedelta(seconds=min(5 * 2 ** max(attempts - 1, 0), 3600))


async def process_next(gateway: StripeGateway, now: datetime | None = None) -> int:
    """Claim the oldest due event and every other due event of its customer; sync once; mark them.

    Returns the number of events handled (0 when nothing is due). Stripe failures mark the events
    failed with a backoff (a 429 only postpones them); the sync's writes are rolled back.
    """
    claimed: list[dict[str, Any]] = []
    key: str | None = None
    try:
        async with DB.transaction():
            first = await StripeEvent.raw(
                "SELECT id, stripe_customer_id FROM stripe_event "
                "WHERE status IN ('pending', 'failed') AND attempts < {} "
                "AND next_attempt_at <= COALESCE({}::timestamptz, now()) "
                "ORDER BY next_attempt_at, id LIMIT 1 FOR UPDATE SKIP LOCKED",
                MAX_ATTEMPTS,
                now,
            )
            if not first:
                return 0
            key = first[0]["stripe_customer_id"]
            claimed = await StripeEvent.raw(
                "SELECT id, payload FROM stripe_event WHERE stripe_customer_id = {} "
                "AND status IN ('pending', 'failed') AND attempts < {} "
                "AND next_attempt_at <= COALESCE({}::timestamptz, now()) "
                "ORDER BY id FOR UPDATE SKIP LOCKED",
                key,
                MAX_ATTEMPTS,
                now,
            )
            ids = [row["id"] for row in claimed]
            status = "processed"
            if key == CATALOG:
                await sync_catalog(gateway)
            else:
                intents = frozenset(
                    t.payment_intent_id
                    for row in claimed
                    if (t := target_of(_payload(row))) is not None and t.payment_intent_id
                )
                result = await sync_customer(gateway, str(key), payment_intent_ids=intents, source="webhook")
                status = "processed" if result.linked else "ignored"
            await StripeEvent.update(
                {
                    StripeEvent.status: status,
                    StripeEvent.attempts: StripeEvent.attempts + 1,
                    StripeEvent.processed_at: datetime.now(UTC),
                    StripeEvent.last_error: None if status == "processed" else "customer belongs to no user here",
                }
            ).where(StripeEvent.id.is_in(ids))
            logger.info("Applied %d event(s) for %s: %s", len(ids), key, status)
            return len(ids)
    except StripeRateLimited as exc:
        await _postpone(claimed, exc, rate_limited=True)
    except StripeGatewayError as exc:
        await _postpone(claimed, exc, rate_limited=False)
    except Exception as exc:  # a bug must not stop the worker; the event keeps the error for replay
        logger.exception("Applying events for %s failed", key)
        await _postpone(claimed, exc, rate_limited=False)
    return len(claimed)


def _payload(row: dict[str, Any]) -> dict[str, Any]:
    payload = row["payload"]
    if isinstance(payload, str):
        loaded: dict[str, Any] = json.loads(payload)
        return loaded
    return dict(payload)


async def _postpone(claimed: list[dict[str, Any]], error: Exception, *, rate_limited: bool) -> None:
    """Record a failed attempt on the claimed events (outside the rolled-back transaction)."""
    for row in claimed:
        event = await StripeEvent.objects().get(StripeEvent.id == row["id"])
        if event is None:
            continue
        attempts = event.attempts if rate_limited else event.attempts + 1
        delay = timedelta(seconds=2) if rate_limited else backoff(attempts)
        await StripeEvent.update(
            {
                StripeEvent.status: "pending" if rate_limited else "failed",
                StripeEvent.attempts: attempts,
                StripeEvent.last_error: f"{type(error).__name__}: {error}"[:2000],
                StripeEvent.next_attempt_at: datetime.now(UTC) + delay,
            }
        ).where(StripeEvent.id == event.id)


async def drain(gateway: StripeGateway, limit: int = 10_000) -> int:
    """Apply due events until none is left (or `limit` were handled); returns how many."""
    handled = 0
    while handled < limit:
        count = await process_next(gateway)
        if count == 0:
            break
        handled += count
    return handled
