"""Stripe webhook events: record first, then apply, with leases.

`record_event` stores a verified event verbatim under its unique id (a duplicate delivery is a
no-op). Applying is three short steps, none of which holds a connection while Stripe is asked:

1. `claim_next` leases the oldest due event *and every other due event of the same customer* in
   one statement (`FOR UPDATE SKIP LOCKED`, then `status = 'processing'`, `leased_by`, and
   `lease_expires_at`), skipping customers another worker is syncing right now.
2. `process_claim` re-syncs that customer once (`sync_customer`: read from Stripe, then one short
   write transaction) or the catalogue (`sync_catalog`), never trusting the event bodies: they only
   say which part of the customer to re-read (`scope_of`), so a sync costs one or two requests.
3. It marks the events `processed` (or `ignored` for customers that belong to nobody here), or on
   failure `failed` with a backoff of 5 s doubling up to 1 h. Failures are retried for
   `EVENT_RETRY_HOURS` (72 h, Stripe's own horizon) after the event arrived, then the event is
   `dead`: counted by the health check and replayable. A 429 only postpones.

A worker that dies mid-sync leaves its events `processing`; when the lease expires any worker takes
them again (the sync is idempotent). Any number of workers, in web processes or standalone, is safe.

Handlers are registered by event type in `HANDLERS`; each returns what to re-sync, never data to
write: the sync re-reads Stripe's current state. Types not listed are stored and marked ignored.
"""

from __future__ import annotations

import json
import logging
import re
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

from app.billing.sync import EVERYTHING, ReadScope, sync_catalog, sync_customer
from app.billing.tables import StripeEvent
from app.db import retry_if_connection_lost
from app.settings import WorkerSettings
from app.stripe_gateway import StripeGateway, StripeRateLimited, from_unix
from piccolo_conf import DB

logger = logging.getLogger(__name__)

CATALOG = "catalog"
# Where an event waits in line: due (`pending`/`failed` past `next_attempt_at`) or a lapsed lease.
WAITING = ("pending", "failed", "processing")
REPLAYABLE = ("failed", "dead")


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
    target = handler(obj) if handler else None
    if event.get("type") == "payment_method.detached":
        # The detached object no longer names its customer; `previous_attributes` does.
        previous = (event.get("data") or {}).get("previous_attributes") or {}
        customer = _ref(previous.get("customer"))
        target = SyncTarget(customer) if customer else None
    return target


def _stripe_id(value: Any) -> str | None:
    ref = _ref(value)
    return ref if ref and _STRIPE_ID.match(ref) else None


def scope_of(event: dict[str, Any]) -> ReadScope:
    """What a sync must re-read for `event`: only the part of the customer the event is about.

    A subscription event → that subscription (and its next charge); an invoice event → that
    invoice's payments; a PaymentIntent or Charge event → that payment; a customer or payment
    method event → the customer's own fields; an entitlements summary → the active entitlements.
    Checkout (a new subscription or purchase, maybe a new customer) and anything unrecognised →
    everything. The event body only names what to read; the data always comes from Stripe.
    """
    kind = str(event.get("type"))
    obj = (event.get("data") or {}).get("object") or {}
    own_id = _stripe_id(obj.get("id"))
    if kind.startswith("customer.subscription.") and own_id:
        return ReadScope(subscription_ids=frozenset({own_id}))
    if kind.startswith("invoice.") and own_id:
        return ReadScope(invoice_ids=frozenset({own_id}))
    if kind.startswith("payment_intent.") and own_id:
        return ReadScope(payment_intent_ids=frozenset({own_id}))
    if kind.startswith("charge.") and (intent := _stripe_id(obj.get("payment_intent"))):
        return ReadScope(payment_intent_ids=frozenset({intent}))
    if kind in ("customer.created", "customer.updated", "customer.deleted") or kind.startswith("payment_method."):
        return ReadScope(customer=True)
    if kind == "entitlements.active_entitlement_summary.updated":
        return ReadScope(entitlements=True)
    return EVERYTHING


class MalformedEvent(ValueError):
    """A correctly signed body that is not an event this app can store; the message says why."""


_EVENT_ID = re.compile(r"^evt_[A-Za-z0-9_]{1,250}$")
_EVENT_TYPE = re.compile(r"^[a-z0-9_.]{1,120}$")
_STRIPE_ID = re.compile(r"^[A-Za-z0-9_]{1,255}$")
# A JSON `\u0000` escape (preceded by an even number of backslashes): PostgreSQL's jsonb refuses NUL.
_NUL_ESCAPE = re.compile(rb"(?<!\\)(?:\\\\)*\\u0000")
MAX_UNIX_SECONDS = 253402300799  # 9999-12-31T23:59:59Z


def validate_event(event: dict[str, Any], body: bytes) -> None:
    """Check a verified event has the shape of a Stripe Event before it is stored.

    https://docs.stripe.com/api/events/object: `id` (`evt_…`), `type`, `api_version` (string or
    null), `created` (Unix seconds), `livemode` (boolean), `data.object` (an object), and the id of
    the customer it concerns (a Stripe id) when this app handles its type.

    Raises:
        MalformedEvent: naming the first field that is wrong.
    """
    if _NUL_ESCAPE.search(body):
        raise MalformedEvent("the event contains a NUL character")
    if not isinstance(event.get("id"), str) or not _EVENT_ID.match(event["id"]):
        raise MalformedEvent("id must be evt_ followed by up to 250 letters, digits or underscores")
    if not isinstance(event.get("type"), str) or not _EVENT_TYPE.match(event["type"]):
        raise MalformedEvent("type must be up to 120 lower-case letters, digits, dots or underscores")
    version = event.get("api_version")
    if version is not None and (not isinstance(version, str) or not 0 < len(version) <= 64):
        raise MalformedEvent("api_version must be a string of at most 64 characters, or null")
    created = event.get("created")
    if not isinstance(created, int) or isinstance(created, bool) or not 0 <= created <= MAX_UNIX_SECONDS:
        raise MalformedEvent("created must be a Unix timestamp in seconds")
    if not isinstance(event.get("livemode", False), bool):
        raise MalformedEvent("livemode must be true or false")
    data = event.get("data")
    if not isinstance(data, dict) or not isinstance(data.get("object"), dict):
        raise MalformedEvent("data.object must be an object")
    if "previous_attributes" in data and not isinstance(data["previous_attributes"], dict | None):
        raise MalformedEvent("data.previous_attributes must be an object")
    target = target_of(event)
    if target is not None and target.key != CATALOG and not _STRIPE_ID.match(target.key):
        raise MalformedEvent("the customer the event names is not a Stripe id")
    if target is not None and target.payment_intent_id and not _STRIPE_ID.match(target.payment_intent_id):
        raise MalformedEvent("the payment intent the event names is not a Stripe id")


# One statement, no ORM query building: this runs for every delivery Stripe makes.
_INSERT_EVENT = (
    "INSERT INTO stripe_event (stripe_event_id, type, api_version, created, livemode, payload, stripe_customer_id,"
    " status, attempts, next_attempt_at, received_at)"
    " VALUES ($1, $2, $3, $4, $5, $6::jsonb, $7, $8, 0, now(), now())"
    " ON CONFLICT (stripe_event_id) DO NOTHING RETURNING id"
)


async def record_event(event: dict[str, Any], body: bytes | None = None) -> bool:
    """Store a verified event (`validate_event` first); True when new, False for a duplicate delivery.

    `body` is the raw JSON as received: stored as is, not re-encoded. Events of types this app does
    not handle are stored as `ignored`. One `INSERT … ON CONFLICT DO NOTHING` on a pooled connection
    (inside a transaction of the caller's, or without a pool, through Piccolo's engine).
    """
    target = target_of(event)
    values = (
        event["id"],
        str(event.get("type")),
        event.get("api_version"),
        from_unix(event.get("created")) or datetime.now(UTC),
        bool(event.get("livemode")),
        body.decode() if body is not None else json.dumps(event),
        target.key if target else None,
        "pending" if target else "ignored",
    )
    if DB.pool is not None and DB.current_transaction.get() is None:
        async with DB.pool.acquire() as connection:
            return await connection.fetchval(_INSERT_EVENT, *values) is not None
    rows = await StripeEvent.raw(re.sub(r"\$\d+", "{}", _INSERT_EVENT), *values)
    return bool(rows)


def backoff(attempts: int) -> timedelta:
    """Delay before retry number `attempts` (1-based): 5 s, 10 s, 20 s … capped at one hour."""
    return timedelta(seconds=min(5 * 2 ** min(max(attempts - 1, 0), 20), 3600))


# The same schedule as `backoff`, in SQL, for a row's own `attempts`.
_BACKOFF_SQL = "make_interval(secs => LEAST(5 * power(2, LEAST(GREATEST(attempts - 1, 0), 20)), 3600))"


@dataclass(frozen=True)
class Claim:
    """Events leased together: all due events of one customer (or of the catalogue)."""

    key: str
    worker_id: str
    ids: list[int]
    payloads: list[dict[str, Any]]


_NOW = "COALESCE({}::timestamptz, now())"
_DUE = "(status IN ('pending', 'failed') AND next_attempt_at <= {now})"
_LAPSED = "(status = 'processing' AND lease_expires_at <= {now})"


def _claim_query(lapsed: bool, now: datetime | None, worker_id: str, lease_seconds: int) -> tuple[str, list[Any]]:
    """The claim statement and its arguments (Piccolo fills `{}` placeholders in order)."""
    waiting = (_LAPSED if lapsed else _DUE).format(now=_NOW)
    order = "lease_expires_at" if lapsed else "next_attempt_at"
    due, gone = _DUE.format(now=_NOW), _LAPSED.format(now=_NOW)
    # Built from this module's constant fragments only; values travel as query arguments.
    sql = f"""
WITH first AS (
    SELECT stripe_customer_id AS key FROM stripe_event e
    WHERE {waiting}
      AND NOT EXISTS (
          SELECT 1 FROM stripe_event busy
          WHERE busy.stripe_customer_id = e.stripe_customer_id
            AND busy.status = 'processing' AND busy.lease_expires_at > {_NOW}
      )
    ORDER BY {order}, id LIMIT 1
    FOR UPDATE SKIP LOCKED
), batch AS (
    SELECT e.id FROM stripe_event e, first
    WHERE e.stripe_customer_id = first.key AND ({due} OR {gone})
    ORDER BY e.id LIMIT 500
    FOR UPDATE OF e SKIP LOCKED
)
UPDATE stripe_event SET status = 'processing', leased_by = {{}}, attempts = attempts + 1,
    lease_expires_at = {_NOW} + make_interval(secs => {{}})
FROM batch WHERE stripe_event.id = batch.id
RETURNING stripe_event.id, stripe_event.stripe_customer_id, stripe_event.payload::text AS payload
"""  # noqa: S608
    return sql, [now, now, now, now, worker_id, now, float(lease_seconds)]


async def claim_next(worker_id: str, lease_seconds: int, now: datetime | None = None) -> Claim | None:
    """Lease the oldest waiting event and every other waiting event of its customer (one statement).

    Due events come first (served by the partial index `stripe_event_claim`), then events whose
    worker vanished (lapsed leases). Customers with a live lease held by any worker are skipped, so
    one customer is synced by one worker at a time and its new events coalesce meanwhile. Returns
    None when nothing is waiting; `now` (UTC) defaults to the database's clock.
    """
    for lapsed in (False, True):
        sql, args = _claim_query(lapsed, now, worker_id, lease_seconds)
        rows = await StripeEvent.raw(sql, *args)
        if rows:
            rows = sorted(rows, key=lambda r: int(r["id"]))
            return Claim(
                key=str(rows[0]["stripe_customer_id"]),
                worker_id=worker_id,
                ids=[int(r["id"]) for r in rows],
                payloads=[json.loads(r["payload"]) for r in rows],
            )
    return None


async def process_claim(
    gateway: StripeGateway, claim: Claim, settings: WorkerSettings, now: datetime | None = None
) -> int:
    """Sync what `claim` asks for (no transaction held while Stripe answers), then mark its events.

    Returns the number of events handled. Never raises for a Stripe failure or a bug in a sync: the
    events keep the error and are retried with backoff. Marking retries on a fresh connection when
    its connection turns out dead; it raises only when the database stays unreachable, and then the
    lease returns the events to the queue.
    """
    try:
        status = "processed"
        if claim.key == CATALOG:
            await sync_catalog(gateway)
        else:
            scope = ReadScope()
            for payload in claim.payloads:
                scope = scope | scope_of(payload)
            result = await sync_customer(gateway, claim.key, scope=scope, source="webhook")
            status = "processed" if result.linked else "ignored"
    except StripeRateLimited as exc:
        limited = f"{type(exc).__name__}: {exc}"
        await retry_if_connection_lost(lambda: _release(claim, limited, now))
        return len(claim.ids)
    except Exception as exc:  # Stripe down, connection lost, or a bug: keep the error on the event, retry later
        error = f"{type(exc).__name__}: {exc}"
        logger.warning("Applying %d event(s) for %s failed: %s", len(claim.ids), claim.key, error)
        await retry_if_connection_lost(lambda: _fail(claim, error, settings, now))
        return len(claim.ids)
    await retry_if_connection_lost(
        lambda: StripeEvent.raw(
            "UPDATE stripe_event SET status = {}, processed_at = now(), last_error = {}, leased_by = NULL, "
            "lease_expires_at = NULL WHERE id = ANY({}) AND leased_by = {} AND status = 'processing'",
            status,
            None if status == "processed" else "customer belongs to no user here",
            claim.ids,
            claim.worker_id,
        )
    )
    logger.info("Applied %d event(s) for %s: %s", len(claim.ids), claim.key, status)
    return len(claim.ids)


async def _release(claim: Claim, error: str, now: datetime | None) -> None:
    """Stripe is rate limiting: put the events back for two seconds, without counting an attempt."""
    await StripeEvent.raw(
        "UPDATE stripe_event SET status = 'pending', attempts = GREATEST(attempts - 1, 0), last_error = {}, "
        "next_attempt_at = COALESCE({}::timestamptz, now()) + interval '2 seconds', leased_by = NULL, "
        "lease_expires_at = NULL WHERE id = ANY({}) AND leased_by = {} AND status = 'processing'",
        error[:2000],
        now,
        claim.ids,
        claim.worker_id,
    )


async def _fail(claim: Claim, error: str, settings: WorkerSettings, now: datetime | None) -> None:
    """Record a failed attempt: `failed` with a backoff, or `dead` once the retry horizon has passed."""
    await StripeEvent.raw(
        "UPDATE stripe_event SET last_error = {}, leased_by = NULL, lease_expires_at = NULL, "  # noqa: S608
        "status = CASE WHEN received_at < COALESCE({}::timestamptz, now()) - make_interval(secs => {}) "
        "THEN 'dead' ELSE 'failed' END, "
        f"next_attempt_at = COALESCE({{}}::timestamptz, now()) + {_BACKOFF_SQL} "
        "WHERE id = ANY({}) AND leased_by = {} AND status = 'processing'",
        error[:2000],
        now,
        settings.retry_hours * 3600,
        now,
        claim.ids,
        claim.worker_id,
    )


async def process_next(
    gateway: StripeGateway,
    now: datetime | None = None,
    settings: WorkerSettings | None = None,
    worker_id: str = "inline",
) -> int:
    """Claim and apply one batch (one customer's due events); returns how many (0: nothing due)."""
    settings = settings or WorkerSettings()
    claim = await claim_next(worker_id, settings.lease_seconds, now)
    if claim is None:
        return 0
    return await process_claim(gateway, claim, settings, now)


async def drain(gateway: StripeGateway, limit: int = 10_000, settings: WorkerSettings | None = None) -> int:
    """Apply due events until none is left (or `limit` were handled); returns how many."""
    handled = 0
    while handled < limit:
        count = await process_next(gateway, settings=settings)
        if count == 0:
            break
        handled += count
    return handled


async def replay(event_ids: Iterable[str] = (), statuses: Iterable[str] = REPLAYABLE) -> int:
    """Make events due again now: the named ones (`evt_…`), else every event in `statuses`.

    Returns how many were reset. Ignored events are replayed only when named. Apply them with
    `drain` or let the worker pick them up.
    """
    ids = list(event_ids)
    if ids:
        rows = await StripeEvent.raw(
            "UPDATE stripe_event SET status = 'pending', attempts = 0, next_attempt_at = now(), leased_by = NULL, "
            "lease_expires_at = NULL WHERE stripe_event_id = ANY({}) AND stripe_customer_id IS NOT NULL "
            "AND status <> 'processing' RETURNING id",
            ids,
        )
    else:
        rows = await StripeEvent.raw(
            "UPDATE stripe_event SET status = 'pending', attempts = 0, next_attempt_at = now() "
            "WHERE status = ANY({}) AND stripe_customer_id IS NOT NULL RETURNING id",
            [s for s in statuses if s in REPLAYABLE],
        )
    return len(rows)


async def reconcile_undelivered(gateway: StripeGateway, hours: float = 72) -> tuple[int, int]:
    """Store the events Stripe could not deliver (`delivery_success=false`) in the last `hours`.

    Lists them from Stripe first (https://docs.stripe.com/api/events/list), then stores any this app
    is missing, one insert each (duplicates are no-ops). Returns (undelivered at Stripe, newly stored).

    Raises:
        StripeUnavailable / StripeRateLimited: nothing was stored.
    """
    since = int((datetime.now(UTC) - timedelta(hours=hours)).timestamp())
    undelivered = [event async for event in gateway.events(delivery_success=False, created={"gte": since})]
    stored = 0
    for event in undelivered:
        # Listed events carry decimals (`unit_amount_decimal`); JSON keeps them as strings, as Stripe sends them.
        body = json.dumps(event, default=str).encode()
        try:
            validate_event(event, body)
        except MalformedEvent as exc:
            logger.warning("Skipping undelivered event %s: %s", event.get("id"), exc)
            continue
        stored += int(await record_event(event, body))
    return len(undelivered), stored


@dataclass(frozen=True)
class QueueHealth:
    """The event queue at a glance (`/healthz`, `litestar billing worker --check`)."""

    due: int
    oldest_due_seconds: float
    """How long the longest-waiting due event has been due (0 when none): workers not keeping up."""
    processing: int
    failed: int
    dead: int


async def queue_health() -> QueueHealth:
    """Counts of the event queue in one query (served by the partial and status indexes)."""
    rows = await StripeEvent.raw(
        "SELECT "  # noqa: S608 (constant fragments only)
        f"count(*) FILTER (WHERE {_DUE.format(now='now()')} OR {_LAPSED.format(now='now()')}) AS due, "
        "COALESCE(EXTRACT(EPOCH FROM now() - min(CASE WHEN status = 'processing' THEN lease_expires_at "
        f"ELSE next_attempt_at END) FILTER (WHERE {_DUE.format(now='now()')} OR {_LAPSED.format(now='now()')})), 0) "
        "AS oldest_due_seconds, "
        "count(*) FILTER (WHERE status = 'processing') AS processing, "
        "count(*) FILTER (WHERE status = 'failed') AS failed, "
        "count(*) FILTER (WHERE status = 'dead') AS dead "
        "FROM stripe_event WHERE status IN ('pending', 'failed', 'processing', 'dead')"
    )
    row = rows[0]
    return QueueHealth(
        due=int(row["due"]),
        oldest_due_seconds=round(float(row["oldest_due_seconds"] or 0), 1),
        processing=int(row["processing"]),
        failed=int(row["failed"]),
        dead=int(row["dead"]),
    )
