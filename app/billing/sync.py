"""The one sync path: Stripe's current state → the local copy.

Webhook processing (`app.webhooks.worker`), the return handlers (Checkout success, Customer Portal
return) and the `litestar billing sync` backfill all call these functions. They re-read objects
from Stripe instead of trusting an event body, because Stripe does not deliver events in order.

Read, then write. `read_customer` fetches from Stripe with no database connection held (its
independent calls run concurrently); `apply_customer` then writes it in one short transaction under
the customer's advisory lock.

What is read depends on what changed (`ReadScope`): an event about a subscription re-reads that
subscription (one request: its invoice preview with the subscription expanded), an invoice or
PaymentIntent event re-reads that payment (one request: the invoice payments with the invoice,
PaymentIntent and Charge expanded), a customer event the customer, an entitlements event Stripe's
active entitlements list. A full read (`EVERYTHING`: the backfill, the return pages, a
customer not known here yet) reads all of it.

Two syncs of one customer may read at the same time, so each part carries its own high-water mark:
`customer.stripe_read_at` (the customer's own fields), `customer.entitlements_read_at`,
`subscription.stripe_updated_at` and `payment_transaction.stripe_read_at` (per object). A part
read that *started* before the stored mark is stale and is not written; a partial read never
touches the parts it did not read. Every Stripe change is followed by an event, and the sync of
the last event starts after the last change, so the newest state always wins. Writes are upserts
on the Stripe id (unique), so concurrent first syncs cannot make duplicate rows. A subscription that
is `canceled` or `incomplete_expired` is terminal at Stripe and is never moved back by a late read.
"""

from __future__ import annotations

import asyncio
import json
import logging
from collections.abc import AsyncIterator, Awaitable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from app.auth.tables import User
from app.billing.changes import describe_changes, record_changes, snapshot
from app.billing.tables import LIVE_STATUSES, Customer, PaymentTransaction, Plan, Price, Subscription
from app.billing.upcoming import next_charge_columns, read_next_charge, renews
from app.db import transaction
from app.entitlements.service import (
    apply_entitlements,
    apply_plan_features,
    read_active_entitlements,
    read_plan_features,
)
from app.entitlements.tables import CustomerState
from app.stripe_gateway import StripeGateway, StripeNotFound, StripeRequestRejected, from_unix

logger = logging.getLogger(__name__)

TERMINAL_STATUSES = frozenset({"canceled", "incomplete_expired"})


@dataclass
class CustomerSync:
    """What one `sync_customer` call saw (ids are Stripe ids).

    `stale` is True when a newer read of the same customer had already been written, so this one
    wrote nothing.
    """

    stripe_customer_id: str
    user_id: int | None
    linked: bool
    deleted: bool = False
    stale: bool = False
    subscriptions: list[str] = field(default_factory=list)
    payment_intents: list[str] = field(default_factory=list)


@dataclass(frozen=True)
class ReadScope:
    """Which parts of a customer a sync reads from Stripe (ids are Stripe ids).

    `everything` reads the customer, all subscriptions (with the previews whose terms changed), the
    newest invoices and PaymentIntents and the active entitlements; otherwise only the named parts.
    Scopes of several events combine with `|`.
    """

    everything: bool = False
    customer: bool = False
    subscription_ids: frozenset[str] = frozenset()
    invoice_ids: frozenset[str] = frozenset()
    payment_intent_ids: frozenset[str] = frozenset()
    entitlements: bool = False

    def __or__(self, other: ReadScope) -> ReadScope:
        return ReadScope(
            everything=self.everything or other.everything,
            customer=self.customer or other.customer,
            subscription_ids=self.subscription_ids | other.subscription_ids,
            invoice_ids=self.invoice_ids | other.invoice_ids,
            payment_intent_ids=self.payment_intent_ids | other.payment_intent_ids,
            entitlements=self.entitlements or other.entitlements,
        )


EVERYTHING = ReadScope(everything=True)


@dataclass
class CustomerRead:
    """What was read from Stripe about one customer, and when the read began (UTC).

    A part that was not read is None (`customer`, `active_entitlements`); `subscriptions` and
    `payment_intents` hold the objects that were read (all of them only in a full read).
    """

    stripe_customer_id: str
    read_at: datetime
    customer: dict[str, Any] | None
    subscriptions: list[dict[str, Any]]
    invoices: list[dict[str, Any]]
    payment_intents: list[dict[str, Any]]
    active_entitlements: list[dict[str, Any]] | None = field(default_factory=list)
    """Stripe's active entitlements of the customer, all pages (`read_active_entitlements`)."""
    next_charges: dict[str, dict[str, Any] | None] = field(default_factory=dict)
    """Stripe's invoice preview by subscription id, for the subscriptions whose next charge was re-read."""
    invoice_of_payment: dict[str, dict[str, Any]] = field(default_factory=dict)
    """The Invoice each PaymentIntent paid, by PaymentIntent id (from invoice payments)."""

    @property
    def deleted(self) -> bool:
        return bool(self.customer and self.customer.get("deleted"))


def _id(value: Any) -> str | None:
    """A Stripe reference that may be an id or an expanded object → its id."""
    if isinstance(value, dict):
        return value.get("id")
    return value if isinstance(value, str) else None


async def _advisory_lock(key: str) -> None:
    await Customer.raw("SELECT pg_advisory_xact_lock(hashtextextended({}, 0))", key)


async def link_customer(stripe_customer: dict[str, Any]) -> Customer | None:
    """Find or create the local `Customer` row for a Stripe customer (call inside a transaction).

    A customer is linked to the user named by its `metadata.user_id` (set when this app created
    it, or when an existing customer was linked at checkout), and only when that user has no
    other customer. Returns None for customers that belong to nobody here.
    """
    existing = await Customer.objects().get(Customer.stripe_customer_id == stripe_customer["id"])
    if existing is not None:
        return existing
    raw_user_id = (stripe_customer.get("metadata") or {}).get("user_id")
    if not raw_user_id or not str(raw_user_id).isdigit() or len(str(raw_user_id)) > 18:
        return None
    # The same lock `get_or_create_customer` holds while it records a customer for this user.
    locked = await User.raw('SELECT id FROM "user" WHERE id = {} FOR UPDATE', int(raw_user_id))
    if not locked:
        return None
    existing = await Customer.objects().get(Customer.stripe_customer_id == stripe_customer["id"])
    if existing is not None:
        return existing
    if await Customer.exists().where(Customer.user == int(raw_user_id)):
        return None
    await Customer.insert(
        Customer(user=int(raw_user_id), stripe_customer_id=stripe_customer["id"], email=stripe_customer.get("email"))
    ).on_conflict(action="DO NOTHING")
    return await Customer.objects().get(Customer.stripe_customer_id == stripe_customer["id"])


def _card_of(payment_method: Any) -> dict[str, Any]:
    card = payment_method.get("card") if isinstance(payment_method, dict) else None
    if not card:
        return {"card_brand": None, "card_last4": None, "card_exp_month": None, "card_exp_year": None}
    return {
        "card_brand": card.get("brand"),
        "card_last4": card.get("last4"),
        "card_exp_month": card.get("exp_month"),
        "card_exp_year": card.get("exp_year"),
    }


async def concurrently(*calls: Awaitable[Any]) -> list[Any]:
    """Await independent calls at the same time; the first failure cancels the rest and is raised as
    itself (not as an ExceptionGroup), so callers catch `StripeUnavailable` and friends as usual."""
    try:
        async with asyncio.TaskGroup() as group:
            tasks: list[asyncio.Task[Any]] = [group.create_task(_awaited(call)) for call in calls]
    except BaseExceptionGroup as failed:
        raise failed.exceptions[0] from None
    return [task.result() for task in tasks]


async def _awaited(call: Awaitable[Any]) -> Any:
    return await call


async def _collect(items: AsyncIterator[dict[str, Any]]) -> list[dict[str, Any]]:
    return [item async for item in items]


async def _collect_or_empty(items: AsyncIterator[dict[str, Any]]) -> list[dict[str, Any]]:
    """A list of a deleted customer's objects; Stripe may refuse to list for a deleted customer."""
    try:
        return await _collect(items)
    except StripeRequestRejected:
        return []


async def read_customer(
    gateway: StripeGateway,
    stripe_customer_id: str,
    *,
    payment_intent_ids: frozenset[str] = frozenset(),
    full: bool = False,
    scope: ReadScope = EVERYTHING,
) -> CustomerRead:
    """Read one customer's billing state from Stripe (only the parts `scope` names).

    The full read: the customer (default PaymentMethod and tax ids expanded), every subscription,
    the newest invoices (with `payments`) and PaymentIntents (with `latest_charge`), 100 of each, or
    every one with `full=True`, plus any PaymentIntent named in `payment_intent_ids`, and the
    active entitlements, concurrently; then the invoice previews of subscriptions whose terms
    changed. A customer deleted at Stripe is read as `{"id", "deleted": True}` and its (canceled)
    subscriptions are still read. A scoped read is `read_scoped`. Touches no database except one
    query for the previews to refresh.

    Raises:
        StripeUnavailable / StripeRateLimited / StripeRequestRejected: from Stripe; nothing is written.
    """
    if not scope.everything:
        return await read_scoped(gateway, stripe_customer_id, scope | ReadScope(payment_intent_ids=payment_intent_ids))
    read_at = datetime.now(UTC)
    pages = 100 if full else 1
    payment_intent_ids = payment_intent_ids | scope.payment_intent_ids

    remote, subscriptions, invoices, found, entitlements = await concurrently(
        _customer_or_deleted(gateway, stripe_customer_id),
        _collect_or_empty(gateway.subscriptions_of(stripe_customer_id)),
        _collect_or_empty(gateway.invoices_of(stripe_customer_id, max_pages=pages)),
        _collect_or_empty(gateway.payment_intents_of(stripe_customer_id, max_pages=pages)),
        read_active_entitlements(gateway, stripe_customer_id),
    )
    seen = {intent["id"] for intent in found}
    for pi_id in sorted(payment_intent_ids - seen):
        try:
            intent = await gateway.retrieve_payment_intent(pi_id)
        except StripeNotFound:
            continue
        if _id(intent.get("customer")) == stripe_customer_id:
            found.append(intent)
    stale = await _next_charge_to_refresh(subscriptions)
    previews = await concurrently(*(read_next_charge(gateway, sub) for sub in stale))
    paid_by: dict[str, dict[str, Any]] = {}
    for invoice in invoices:
        for payment in (invoice.get("payments") or {}).get("data", []):
            paid_with = _id((payment.get("payment") or {}).get("payment_intent"))
            if paid_with:
                paid_by[paid_with] = invoice
    return CustomerRead(
        stripe_customer_id=stripe_customer_id,
        read_at=read_at,
        customer=remote,
        subscriptions=subscriptions,
        invoices=invoices,
        payment_intents=found,
        active_entitlements=entitlements,
        next_charges={sub["id"]: preview for sub, preview in zip(stale, previews, strict=True)},
        invoice_of_payment=paid_by,
    )


async def _customer_or_deleted(gateway: StripeGateway, stripe_customer_id: str) -> dict[str, Any]:
    try:
        return await gateway.retrieve_customer(stripe_customer_id)
    except StripeNotFound:
        return {"id": stripe_customer_id, "object": "customer", "deleted": True}


async def read_scoped(gateway: StripeGateway, stripe_customer_id: str, scope: ReadScope) -> CustomerRead:
    """Read only the parts of a customer that `scope` names, one request per part, all at once.

    - a subscription: its next invoice's preview with the subscription expanded (one request for
      both); when Stripe refuses the preview (nothing will be invoiced again) the subscription alone;
    - an invoice: its invoice payments, each with the invoice, PaymentIntent and latest Charge;
    - a PaymentIntent: the same list by PaymentIntent; a PaymentIntent no invoice paid (a one-time
      purchase) is then retrieved with its latest Charge;
    - the customer; the active entitlements (all pages).

    Raises:
        StripeUnavailable / StripeRateLimited / StripeRequestRejected: from Stripe; nothing is written.
    """
    read_at = datetime.now(UTC)
    calls: list[Awaitable[Any]] = []
    if scope.customer:
        calls.append(_customer_or_deleted(gateway, stripe_customer_id))
    if scope.entitlements:
        calls.append(read_active_entitlements(gateway, stripe_customer_id))
    subscription_ids = sorted(scope.subscription_ids)
    invoice_ids = sorted(scope.invoice_ids)
    # The payment an invoice event names usually is the one a PaymentIntent event of the same batch
    # names (a renewal sends both): ask by PaymentIntent only for those the invoices did not cover.
    asked_first = [] if invoice_ids else sorted(scope.payment_intent_ids)
    calls += [_subscription_with_next_charge(gateway, stripe_customer_id, sub_id) for sub_id in subscription_ids]
    calls += [_collect_or_empty(gateway.invoice_payments(invoice_id=in_id)) for in_id in invoice_ids]
    calls += [_payment_intent_and_invoice(gateway, pi_id) for pi_id in asked_first]
    results = iter(await concurrently(*calls))
    remote = next(results) if scope.customer else None
    entitlements = next(results) if scope.entitlements else None
    read = CustomerRead(
        stripe_customer_id=stripe_customer_id,
        read_at=read_at,
        customer=remote,
        subscriptions=[],
        invoices=[],
        payment_intents=[],
        active_entitlements=entitlements,
    )
    for _ in subscription_ids:
        found = next(results)
        if found is not None:
            subscription, preview = found
            read.subscriptions.append(subscription)
            read.next_charges[subscription["id"]] = preview
    payments: list[dict[str, Any]] = [payment for _ in [*invoice_ids, *asked_first] for payment in next(results)]
    if invoice_ids:
        covered = {_id((p.get("payment") or {}).get("payment_intent")) for p in payments}
        missing = sorted(scope.payment_intent_ids - covered)
        for more in await concurrently(*(_payment_intent_and_invoice(gateway, pi_id) for pi_id in missing)):
            payments += more
    seen: set[str] = set()
    for payment in payments:
        intent = (payment.get("payment") or {}).get("payment_intent")
        invoice = payment.get("invoice")
        if not isinstance(intent, dict) or intent["id"] in seen:
            continue
        if _id(intent.get("customer")) != stripe_customer_id:
            continue  # not this customer's (a forged or mistaken reference): nothing to write
        seen.add(intent["id"])
        read.payment_intents.append(intent)
        if isinstance(invoice, dict):
            read.invoices.append(invoice)
            read.invoice_of_payment[intent["id"]] = invoice
    return read


async def _subscription_with_next_charge(
    gateway: StripeGateway, stripe_customer_id: str, subscription_id: str
) -> tuple[dict[str, Any], dict[str, Any] | None] | None:
    """A Subscription and the preview of its next invoice (None when it does not renew); None when
    Stripe does not know the subscription or it belongs to another customer."""
    try:
        preview = await gateway.preview_with_subscription(stripe_customer_id, subscription_id)
        subscription = ((preview.get("parent") or {}).get("subscription_details") or {}).get("subscription")
        if isinstance(subscription, dict):
            return subscription, preview if renews(subscription) else None
    except StripeNotFound:
        pass
    except StripeRequestRejected as exc:
        logger.info("No invoice preview for %s: %s", subscription_id, exc)
    try:
        subscription = await gateway.retrieve_subscription(subscription_id)
    except StripeNotFound:
        return None
    if _id(subscription.get("customer")) != stripe_customer_id:
        return None
    return subscription, None


async def _payment_intent_and_invoice(gateway: StripeGateway, payment_intent_id: str) -> list[dict[str, Any]]:
    """Invoice payments of a PaymentIntent (invoice, PaymentIntent and Charge expanded); for a
    PaymentIntent no invoice paid, one entry without invoice. Empty when Stripe does not know it."""
    payments = await _collect_or_empty(gateway.invoice_payments(payment_intent_id=payment_intent_id))
    if payments:
        return payments
    try:
        intent = await gateway.retrieve_payment_intent(payment_intent_id)
    except StripeNotFound:
        return []
    return [{"payment": {"type": "payment_intent", "payment_intent": intent}, "invoice": None}]


TERMS_COLUMNS = ("status", "stripe_price_id", "quantity", "current_period_end", "cancel_at_period_end", "cancel_at")


def _billing_terms(sub: dict[str, Any]) -> tuple[Any, ...]:
    """What the next invoice of a subscription depends on (a change means a new preview)."""
    items = (sub.get("items") or {}).get("data") or [{}]
    return (
        sub.get("status"),
        _id(items[0].get("price")),
        items[0].get("quantity") or 1,
        from_unix(items[0].get("current_period_end")),
        bool(sub.get("cancel_at_period_end")),
        from_unix(sub.get("cancel_at")),
    )


async def _next_charge_to_refresh(subscriptions: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """The subscriptions whose next charge must be read again: new ones, and those whose terms changed
    since the stored row (one quick query, no transaction); a preview costs a Stripe call each."""
    if not subscriptions:
        return []
    rows = await Subscription.select(
        Subscription.stripe_subscription_id,
        Subscription.status,
        Subscription.stripe_price_id,
        Subscription.quantity,
        Subscription.current_period_end,
        Subscription.cancel_at_period_end,
        Subscription.cancel_at,
        Subscription.next_charge_at,
    ).where(Subscription.stripe_subscription_id.is_in([s["id"] for s in subscriptions]))
    stored = {r["stripe_subscription_id"]: r for r in rows}
    refresh = []
    for sub in subscriptions:
        row = stored.get(sub["id"])
        if row is None:
            refresh.append(sub)
            continue
        known = tuple(
            row[k]
            for k in (
                "status",
                "stripe_price_id",
                "quantity",
                "current_period_end",
                "cancel_at_period_end",
                "cancel_at",
            )
        )
        if known != _billing_terms(sub) or (row["next_charge_at"] is None and renews(sub)):
            refresh.append(sub)
    return refresh


async def sync_customer(
    gateway: StripeGateway,
    stripe_customer_id: str,
    *,
    payment_intent_ids: frozenset[str] = frozenset(),
    full: bool = False,
    source: str = "sync",
    portal_session_id: int | None = None,
    scope: ReadScope = EVERYTHING,
) -> CustomerSync:
    """Re-read one customer from Stripe (the parts `scope` names) and bring its local rows up to date.

    `read_customer` (network, no connection held), then `apply_customer` (one short transaction).
    A customer not known here yet is always read in full (it may have to be linked to its user).
    What changed for the person is appended to the `billing_change` audit trail with `source`
    (webhook, sync, portal_return, checkout_return).

    Raises:
        StripeUnavailable / StripeRateLimited / StripeRequestRejected: Stripe failed; nothing was written.
    """
    if not scope.everything and not await Customer.exists().where(Customer.stripe_customer_id == stripe_customer_id):
        scope = EVERYTHING
    read = await read_customer(
        gateway, stripe_customer_id, payment_intent_ids=payment_intent_ids, full=full, scope=scope
    )
    return await apply_customer(read, source=source, portal_session_id=portal_session_id)


def _newer(read_at: datetime, mark: datetime | None) -> bool:
    """True when a read that began at `read_at` may replace what a read that began at `mark` wrote."""
    return mark is None or read_at >= mark


async def apply_customer(
    read: CustomerRead, *, source: str = "sync", portal_session_id: int | None = None
) -> CustomerSync:
    """Write a `CustomerRead` in one transaction under the customer's advisory lock.

    Each part is written only when its read began after the one stored (its high-water mark); a
    part that was not read is left alone. `stale=True` when no part was newer, so nothing was
    written. A customer deleted at Stripe is marked deleted and keeps no live plan: its
    subscriptions are written as Stripe reports them, and any still live locally are ended as
    canceled at the read time.
    """
    stripe_customer_id = read.stripe_customer_id
    async with transaction():
        await _advisory_lock(stripe_customer_id)
        known = await Customer.objects().get(Customer.stripe_customer_id == stripe_customer_id)
        before = await snapshot(known.user) if known is not None else None
        result = await _apply_locked(read, known)
        if result.stale:
            logger.info("Skipping a stale read of %s (began %s)", stripe_customer_id, read.read_at)
        elif result.user_id is not None:
            after = await snapshot(result.user_id)
            changes = describe_changes(before or {}, after)
            await record_changes(result.user_id, changes, source, portal_session_id=portal_session_id)
    return result


async def _apply_locked(read: CustomerRead, known: Customer | None) -> CustomerSync:
    stripe_customer_id = read.stripe_customer_id
    remote = read.customer
    customer = known
    if customer is None and remote is not None and not read.deleted:
        customer = await link_customer(remote)
    if customer is None:
        return CustomerSync(stripe_customer_id, user_id=None, linked=False, deleted=read.deleted)
    now = datetime.now(UTC)
    result = CustomerSync(stripe_customer_id, user_id=customer.user, linked=True, deleted=read.deleted)
    written = False
    if remote is not None and _newer(read.read_at, customer.stripe_read_at):
        written = True
        await _write_customer_fields(read, customer, now)
        if read.deleted:
            await _end_live_subscriptions(customer, read.read_at)

    subscription_ids: dict[str, int] = {}
    for sub in read.subscriptions:
        local_id, wrote = await upsert_subscription(sub, customer, read_at=read.read_at)
        subscription_ids[sub["id"]] = local_id
        written = written or wrote
        if wrote and sub["id"] in read.next_charges:
            next_charge = next_charge_columns(read.next_charges[sub["id"]])
            await Subscription.update({getattr(Subscription, k): v for k, v in next_charge.items()}).where(
                Subscription.id == local_id
            )
        result.subscriptions.append(sub["id"])

    for intent in read.payment_intents:
        invoice = read.invoice_of_payment.get(intent["id"])
        written = await upsert_payment(intent, customer, invoice, subscription_ids, read_at=read.read_at) or written
        result.payment_intents.append(intent["id"])

    active = read.active_entitlements
    if active is not None and _newer(read.read_at, customer.entitlements_read_at):
        written = True
        await Customer.update({Customer.entitlements_read_at: read.read_at}).where(Customer.id == customer.id)
    else:
        active = await _stored_entitlements(customer)
    result.stale = not written
    if written:
        await apply_entitlements(customer, active, now)
    return result


async def _stored_entitlements(customer: Customer) -> list[dict[str, Any]]:
    """Stripe's active entitlements as the last sync that read them stored them."""
    rows = await CustomerState.select(CustomerState.stripe_entitlements).where(CustomerState.user == customer.user)
    stored = rows[0]["stripe_entitlements"] if rows else []
    if isinstance(stored, str):
        stored = json.loads(stored)
    return list(stored or [])


async def _write_customer_fields(read: CustomerRead, customer: Customer, now: datetime) -> None:
    remote = read.customer or {}
    if read.deleted:
        await Customer.update(
            {Customer.deleted: True, Customer.synced_at: now, Customer.stripe_read_at: read.read_at}
        ).where(Customer.id == customer.id)
        return
    default_pm = (remote.get("invoice_settings") or {}).get("default_payment_method")
    await Customer.update(
        {
            Customer.email: remote.get("email"),
            Customer.name: remote.get("name"),
            Customer.phone: remote.get("phone"),
            Customer.default_payment_method_id: _id(default_pm),
            Customer.address: remote.get("address"),
            Customer.tax_ids: [
                {"type": t.get("type"), "value": t.get("value")} for t in (remote.get("tax_ids") or {}).get("data", [])
            ],
            Customer.deleted: False,
            Customer.synced_at: now,
            Customer.stripe_read_at: read.read_at,
            **{getattr(Customer, k): v for k, v in _card_of(default_pm).items()},
        }
    ).where(Customer.id == customer.id)


async def _end_live_subscriptions(customer: Customer, read_at: datetime) -> None:
    """Deleting a customer cancels its subscriptions at Stripe: none may stay live here."""
    ended = (
        await Subscription.update(
            {
                Subscription.status: "canceled",
                Subscription.canceled_at: read_at,
                Subscription.ended_at: read_at,
                Subscription.cancel_at_period_end: False,
                Subscription.stripe_updated_at: read_at,
            }
        )
        .where((Subscription.customer == customer.id) & Subscription.status.is_in(list(LIVE_STATUSES)))
        .returning(Subscription.stripe_subscription_id)
    )
    if ended:
        logger.info(
            "Customer %s was deleted at Stripe: ended %d subscription(s)", customer.stripe_customer_id, len(ended)
        )


async def upsert_subscription(sub: dict[str, Any], customer: Customer, read_at: datetime) -> tuple[int, bool]:
    """Write one Stripe Subscription (as read at `read_at`, UTC); returns the local row id and
    whether it was written.

    The period comes from the subscription's items (`items.data[].current_period_*`, the
    current API's place for it). A read that began before the one stored (`stripe_updated_at`, the
    row's high-water mark) writes nothing. A terminal local status is never overwritten by a
    non-terminal one: Stripe never revives a canceled subscription, so such a read is a lagging
    list, not news.
    """
    items = (sub.get("items") or {}).get("data") or [{}]
    item = items[0]
    price_id = _id(item.get("price"))
    price = await Price.select(Price.id).where(Price.stripe_price_id == price_id).first() if price_id else None
    values: dict[str, Any] = {
        "status": sub.get("status", "incomplete"),
        "price": price["id"] if price else None,
        "stripe_price_id": price_id,
        "quantity": item.get("quantity") or 1,
        "current_period_start": from_unix(item.get("current_period_start")),
        "current_period_end": from_unix(item.get("current_period_end")),
        "cancel_at_period_end": bool(sub.get("cancel_at_period_end")),
        "cancel_at": from_unix(sub.get("cancel_at")),
        "canceled_at": from_unix(sub.get("canceled_at")),
        "ended_at": from_unix(sub.get("ended_at")),
        "cancellation_reason": (sub.get("cancellation_details") or {}).get("reason"),
        "cancellation_feedback": (sub.get("cancellation_details") or {}).get("feedback"),
        "trial_start": from_unix(sub.get("trial_start")),
        "trial_end": from_unix(sub.get("trial_end")),
        "default_payment_method_id": _id(sub.get("default_payment_method")),
        "latest_invoice_id": _id(sub.get("latest_invoice")),
        "stripe_created": from_unix(sub.get("created")),
        "stripe_updated_at": read_at,
    }
    existing = await _stored_subscription(sub["id"])
    if existing is None:
        rows = (
            await Subscription.insert(
                Subscription(stripe_subscription_id=sub["id"], customer=customer.id, user=customer.user, **values)
            )
            .on_conflict(target=Subscription.stripe_subscription_id, action="DO NOTHING")
            .returning(Subscription.id)
        )
        if rows:
            return int(rows[0]["id"]), True
        existing = await _stored_subscription(sub["id"])
        assert existing is not None
    if not _newer(read_at, existing["stripe_updated_at"]):
        return int(existing["id"]), False
    if existing["status"] in TERMINAL_STATUSES and values["status"] not in TERMINAL_STATUSES:
        logger.warning("Ignoring %s for terminal subscription %s", values["status"], sub["id"])
        return int(existing["id"]), False
    await Subscription.update({getattr(Subscription, k): v for k, v in values.items()}).where(
        Subscription.id == existing["id"]
    )
    return int(existing["id"]), True


async def _stored_subscription(stripe_subscription_id: str) -> dict[str, Any] | None:
    return await (
        Subscription.select(Subscription.id, Subscription.status, Subscription.stripe_updated_at)
        .where(Subscription.stripe_subscription_id == stripe_subscription_id)
        .first()
    )


def payment_status(intent: dict[str, Any], charge: dict[str, Any]) -> str:
    """Our status for a PaymentIntent and its latest Charge.

    succeeded | partially_refunded | refunded | failed | pending | canceled.
    """
    status = intent.get("status")
    if status == "succeeded":
        refunded = int(charge.get("amount_refunded") or 0)
        if refunded and refunded >= int(charge.get("amount") or intent.get("amount") or 0):
            return "refunded"
        return "partially_refunded" if refunded else "succeeded"
    if status == "canceled":
        return "canceled"
    if intent.get("last_payment_error") or charge.get("status") == "failed":
        return "failed"
    return "pending"


def _description(intent: dict[str, Any], invoice: dict[str, Any] | None) -> str:
    """What the payment was for: a subscription invoice's first line ("1 × Pro (at $19.00 / month)"),
    else the PaymentIntent's own description ("Pro — lifetime access"), else the invoice's."""
    lines = ((invoice or {}).get("lines") or {}).get("data") or []
    from_subscription = bool(((invoice or {}).get("parent") or {}).get("subscription_details"))
    if from_subscription and lines and lines[0].get("description"):
        return str(lines[0]["description"])
    if intent.get("description"):
        return str(intent["description"])
    metadata = intent.get("metadata") or {}
    if metadata.get("plan_name"):
        return f"{metadata['plan_name']} — lifetime access"
    if lines and lines[0].get("description"):
        return str(lines[0]["description"])
    if invoice and invoice.get("description"):
        return str(invoice["description"])
    return "Payment"


async def upsert_payment(
    intent: dict[str, Any],
    customer: Customer,
    invoice: dict[str, Any] | None,
    subscription_ids: dict[str, int],
    read_at: datetime | None = None,
) -> bool:
    """Write one PaymentIntent (with its latest Charge and paying Invoice) as a `payment_transaction`;
    returns whether it was written. A read that began (`read_at`, UTC) before the one stored in the
    row (`stripe_read_at`) writes nothing."""
    charge = intent.get("latest_charge") if isinstance(intent.get("latest_charge"), dict) else {}
    charge = charge or {}
    card = (charge.get("payment_method_details") or {}).get("card") or {}
    status = payment_status(intent, charge)
    error = intent.get("last_payment_error") or {}
    refunds = (charge.get("refunds") or {}).get("data") or []
    subscription_stripe_id = None
    if invoice:
        details = (invoice.get("parent") or {}).get("subscription_details") or {}
        subscription_stripe_id = _id(details.get("subscription"))
    metadata = dict(intent.get("metadata") or {})
    values: dict[str, Any] = {
        "user": customer.user,
        "subscription": subscription_ids.get(subscription_stripe_id or ""),
        "stripe_charge_id": charge.get("id"),
        "stripe_invoice_id": invoice.get("id") if invoice else None,
        "stripe_customer_id": customer.stripe_customer_id,
        "stripe_price_id": metadata.get("price_id"),
        "amount_cents": int(intent.get("amount") or 0),
        "amount_refunded_cents": int(charge.get("amount_refunded") or 0),
        "currency": str(intent.get("currency") or "usd"),
        "status": status,
        "payment_method": card.get("brand"),
        "payment_method_last4": card.get("last4"),
        "description": _description(intent, invoice),
        "failure_reason": (error.get("message") or charge.get("failure_message")) if status == "failed" else None,
        "metadata": metadata,
        "hosted_invoice_url": invoice.get("hosted_invoice_url") if invoice else None,
        "invoice_pdf_url": invoice.get("invoice_pdf") if invoice else None,
        "receipt_url": charge.get("receipt_url"),
        "paid_at": from_unix(charge.get("created"))
        if status in {"succeeded", "refunded", "partially_refunded"}
        else None,
        "refunded_at": from_unix(max((r.get("created") or 0) for r in refunds)) if refunds else None,
        "created_at": from_unix(intent.get("created")) or datetime.now(UTC),
        "updated_at": datetime.now(UTC),
        "stripe_read_at": read_at,
    }
    if subscription_stripe_id and values["subscription"] is None:
        # A payment read on its own (an invoice event): its subscription is already stored, or not yet.
        found = (
            await Subscription.select(Subscription.id)
            .where(Subscription.stripe_subscription_id == subscription_stripe_id)
            .first()
        )
        values["subscription"] = found["id"] if found else None
    newer: Any = PaymentTransaction.stripe_read_at.is_null()
    if read_at is not None:
        newer = newer | (PaymentTransaction.stripe_read_at <= read_at)
    # The update is guarded by the row's high-water mark: an older read of this payment writes nothing.
    rows = (
        await PaymentTransaction.insert(PaymentTransaction(stripe_payment_intent_id=intent["id"], **values))
        .on_conflict(
            target=PaymentTransaction.stripe_payment_intent_id,
            action="DO UPDATE",
            values=[getattr(PaymentTransaction, k) for k in values if k != "created_at"],
            where=newer,
        )
        .returning(PaymentTransaction.id)
    )
    return bool(rows)


async def sync_catalog(gateway: StripeGateway) -> tuple[int, int]:
    """Re-read every plan Product (`metadata.plan_key`) and its Prices into `plan`/`price`.

    Reads every Product and Price first (no connection held), then writes in one transaction.
    Returns (plans, prices) written. Products without `plan_key` are not plans and are skipped.

    Raises:
        StripeUnavailable / StripeRateLimited: nothing was written.
    """
    remote_products, remote_prices = await concurrently(_collect(gateway.products()), _collect(gateway.prices()))
    plan_features = await read_plan_features(
        gateway, [p["id"] for p in remote_products if (p.get("metadata") or {}).get("plan_key")]
    )
    plans = prices = 0
    async with transaction():
        await _advisory_lock("catalog")
        product_plan: dict[str, int] = {}
        for product in remote_products:
            metadata = product.get("metadata") or {}
            key = metadata.get("plan_key")
            if not key:
                continue
            features = [f.get("name") for f in product.get("marketing_features") or [] if f.get("name")]
            values = {
                Plan.stripe_product_id: product["id"],
                Plan.name: product.get("name") or key,
                Plan.description: product.get("description") or "",
                Plan.features: features,
                Plan.sort_order: int(metadata.get("sort", "0") or 0),
                Plan.active: bool(product.get("active", True)),
                Plan.synced_at: datetime.now(UTC),
            }
            await Plan.insert(Plan(key=key, **{c._meta.name: v for c, v in values.items()})).on_conflict(
                target=Plan.key, action="DO UPDATE", values=list(values)
            )
            plan = await Plan.objects().get(Plan.key == key)
            assert plan is not None
            product_plan[product["id"]] = plan.id
            plans += 1
        await apply_plan_features(plan_features)
        # Lookup keys move between prices (`transfer_lookup_key`): clear them first, then set.
        await Price.update({Price.lookup_key: None}, force=True)
        for price in remote_prices:
            plan_id = product_plan.get(_id(price.get("product")) or "")
            if plan_id is None:
                continue
            recurring = price.get("recurring") or {}
            values = {
                Price.plan: plan_id,
                Price.lookup_key: price.get("lookup_key"),
                Price.currency: price.get("currency") or "usd",
                Price.unit_amount_cents: int(price.get("unit_amount") or 0),
                Price.type: price.get("type") or ("recurring" if recurring else "one_time"),
                Price.interval: recurring.get("interval"),
                Price.interval_count: int(recurring.get("interval_count") or 1),
                Price.active: bool(price.get("active", True)),
                Price.synced_at: datetime.now(UTC),
            }
            await Price.insert(
                Price(stripe_price_id=price["id"], **{c._meta.name: v for c, v in values.items()})
            ).on_conflict(target=Price.stripe_price_id, action="DO UPDATE", values=list(values))
            prices += 1
    return plans, prices
