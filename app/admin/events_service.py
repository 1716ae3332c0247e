"""Stored Stripe webhook events for operators: filter, inspect, replay, ignore, reconcile.

Every query on `stripe_event` the console and the `litestar billing events …` commands make lives
in this module, so a change of the event table's statuses (e.g. leased `processing`, `dead`) is
adjusted here once. Applying events is `app.webhooks.service.drain`, the worker's own path.
Stripe API (reconciliation): https://docs.stripe.com/api/events/list (`delivery_success`).
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, time, timedelta
from typing import Any
from zoneinfo import ZoneInfo

from app.admin.audit import record_action
from app.auth.tables import User
from app.billing.tables import StripeEvent
from app.db import transaction
from app.stripe_gateway import StripeGateway
from app.webhooks.service import drain, reconcile_undelivered
from app.webhooks.service import replay as replay_events

STATUSES = ("pending", "processing", "processed", "failed", "dead", "ignored")
"""Statuses of `stripe_event.status` the console filters on (those of `app.webhooks.service`)."""
PAGE_SIZE = 50


@dataclass(frozen=True)
class EventFilter:
    """Filter of the events list; every field optional. Dates are the operator's local days."""

    status: str | None = None
    type: str | None = None
    customer: str | None = None
    date_from: date | None = None
    date_to: date | None = None
    timezone: str = "UTC"

    def where(self) -> tuple[str, list[Any]]:
        """SQL `WHERE` text with `{}` placeholders and its arguments (Piccolo `raw` style)."""
        clauses: list[str] = ["TRUE"]
        args: list[Any] = []
        tz = ZoneInfo(self.timezone)
        if self.status in STATUSES:
            clauses.append("status = {}")
            args.append(self.status)
        if self.type:
            clauses.append("type LIKE {}")
            args.append(self.type.replace("%", "").replace("_", r"\_") + "%")
        if self.customer:
            clauses.append("stripe_customer_id = {}")
            args.append(self.customer.strip())
        if self.date_from:
            clauses.append("received_at >= {}")
            args.append(datetime.combine(self.date_from, time(), tz).astimezone(UTC))
        if self.date_to:
            clauses.append("received_at < {}")
            args.append(datetime.combine(self.date_to + timedelta(days=1), time(), tz).astimezone(UTC))
        return " AND ".join(clauses), args


@dataclass
class EventsOverview:
    """Counts by status and the age of the oldest due event (None when nothing is due)."""

    counts: dict[str, int] = field(default_factory=dict)
    oldest_due_age: timedelta | None = None


async def overview(now: datetime | None = None) -> EventsOverview:
    """Counts per status (every status in `STATUSES`, zero when absent) and the oldest due event's age.

    "Due" is pending or failed with `next_attempt_at` in the past, or processing with a lapsed lease;
    its age counts from `received_at`. (`/healthz` judges the time past due instead.)
    """
    rows = await StripeEvent.raw("SELECT status, count(*) AS n FROM stripe_event GROUP BY status")
    counts = dict.fromkeys(STATUSES, 0) | {r["status"]: int(r["n"]) for r in rows}
    oldest = await StripeEvent.raw(
        "SELECT min(received_at) AS at FROM stripe_event WHERE "
        "(status IN ('pending', 'failed') AND next_attempt_at <= COALESCE({}::timestamptz, now())) "
        "OR (status = 'processing' AND lease_expires_at <= COALESCE({}::timestamptz, now()))",
        now,
        now,
    )
    at = oldest[0]["at"] if oldest else None
    return EventsOverview(counts=counts, oldest_due_age=((now or datetime.now(UTC)) - at) if at else None)


async def list_events(flt: EventFilter, before_id: int | None = None, limit: int = PAGE_SIZE) -> list[dict[str, Any]]:
    """Events matching `flt`, newest first (keyset by id: pass the last id as `before_id` for more).

    Each row: `id`, `stripe_event_id`, `type`, `status`, `attempts`, `last_error`, `stripe_customer_id`,
    `created`, `received_at`, `next_attempt_at` (UTC datetimes).
    """
    where, args = flt.where()
    if before_id:
        where += " AND id < {}"
        args.append(before_id)
    # `where` holds only this module's fixed fragments with `{}` placeholders; values travel as arguments.
    sql = (
        "SELECT id, stripe_event_id, type, status, attempts, last_error, stripe_customer_id, created, received_at, "  # noqa: S608
        f"next_attempt_at FROM stripe_event WHERE {where} ORDER BY id DESC LIMIT {int(limit)}"
    )
    rows: list[dict[str, Any]] = await StripeEvent.raw(sql, *args)
    return rows


async def get_event(stripe_event_id: str) -> dict[str, Any] | None:
    """One event with its payload pretty-printed (`payload_json`), or None."""
    rows = await StripeEvent.select().where(StripeEvent.stripe_event_id == stripe_event_id).output(load_json=True)
    if not rows:
        return None
    row: dict[str, Any] = rows[0]
    row["payload_json"] = json.dumps(row["payload"], indent=2, sort_keys=True)
    return row


async def replay(
    gateway: StripeGateway,
    stripe_event_ids: list[str] | None = None,
    *,
    failed: bool = False,
    actor: User | None = None,
) -> int:
    """Make the named events (or, with `failed`, every failed and dead one) due now with no attempts
    (`app.webhooks.service.replay`), then apply every due event (`drain`). Returns how many were applied.

    No transaction is open while Stripe is read: the reset is one statement, `drain` leases its own.
    With `actor`, the replay is written to the audit trail.
    """
    if not stripe_event_ids and not failed:
        return 0
    reset = await replay_events(stripe_event_ids or ())
    if actor is not None:
        await record_action(
            actor, "event.replayed", ",".join(stripe_event_ids or ["failed and dead"])[:255], None, {"events": reset}
        )
    return await drain(gateway)


async def mark_ignored(stripe_event_ids: list[str], actor: User | None = None) -> int:
    """Set the named events to `ignored` (the worker skips them); returns how many changed."""
    async with transaction():
        before = await StripeEvent.select(StripeEvent.stripe_event_id, StripeEvent.status).where(
            StripeEvent.stripe_event_id.is_in(list(stripe_event_ids)) & (StripeEvent.status != "ignored")
        )
        if not before:
            return 0
        await StripeEvent.update({StripeEvent.status: "ignored"}).where(
            StripeEvent.stripe_event_id.is_in([r["stripe_event_id"] for r in before])
        )
        await record_action(
            actor,
            "event.ignored",
            ",".join(r["stripe_event_id"] for r in before)[:255],
            {r["stripe_event_id"]: r["status"] for r in before},
            {r["stripe_event_id"]: "ignored" for r in before},
        )
    return len(before)


@dataclass(frozen=True)
class ReconcileResult:
    """What a `delivery_success=false` reconciliation did."""

    found: int
    stored: int
    applied: int


async def reconcile(gateway: StripeGateway, hours: int = 72, actor: User | None = None) -> ReconcileResult:
    """Store the events Stripe could not deliver in the last `hours` (`reconcile_undelivered`, the
    worker's own periodic job), then apply due events.

    Raises:
        StripeUnavailable / StripeRequestRejected: listing failed (nothing half-written: each event is
        stored by its own idempotent insert).
    """
    found, stored = await reconcile_undelivered(gateway, hours=hours)
    applied = await drain(gateway)
    if actor is not None:
        await record_action(
            actor, "events.reconciled", f"last {hours} h", None, {"found": found, "stored": stored, "applied": applied}
        )
    return ReconcileResult(found=found, stored=stored, applied=applied)
