"""Entitlements: what each person may use, why, and telling the host product when it changes.

Stripe's Entitlements API lists a customer's *active entitlements* (Features attached to the
Products they subscribe to). It is read on every customer sync (all pages: the summary event
carries at most 10) and combined here with what Stripe does not cover:

- a **lifetime purchase** (a paid, not fully refunded one-time Price) grants its plan's features for good;
- a **`past_due`** subscription keeps its features for `ENTITLEMENT_GRACE_DAYS` after its current period
  started (the failed renewal), then loses them, whatever Stripe still lists;
- **`paused`, `unpaid`, `canceled`, `incomplete(_expired)`** subscriptions grant nothing;
- a live subscription grants its plan's features *as the local catalogue knows them now*, so a feature
  added to a Product reaches existing subscribers at their next sync, not at their next renewal;
- **operator grants and revocations** (`entitlement_override`), each with an optional end date; a
  revocation wins over every other source.

The result is written as `entitlement` rows (one per feature, with its source in words and ids) and
as the person's published state (`customer_state`). When plan, status or entitlements change, the
state's version goes up and one `customer.state_changed` webhook per host endpoint is put in the
outbox (`host_webhook`), in the same transaction, so a change is never lost and never sent twice.

Sync integration (read, then write): `read_active_entitlements` (network only) runs before the sync's
transaction; `apply_entitlements` (database only) runs inside it, under the customer's advisory lock.
"""

from __future__ import annotations

import hashlib
import json
import logging
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

from app.auth.tables import User
from app.billing.tables import Customer, PaymentTransaction, Plan, Price, Subscription
from app.db import transaction
from app.entitlements.tables import (
    CustomerState,
    Entitlement,
    EntitlementOverride,
    Feature,
    HostWebhook,
    HostWebhookEndpoint,
    PlanFeature,
)
from app.settings import EntitlementSettings
from app.stripe_gateway import StripeGateway, StripeNotFound

logger = logging.getLogger(__name__)

STATE_CHANGED = "customer.state_changed"
GRANTING_STATUSES = ("active", "trialing")
PAID_PAYMENT_STATUSES = ("succeeded", "partially_refunded")
# The subscription shown as "the plan" when a person has several: the one that gives access first.
PLAN_PRIORITY = ("active", "trialing", "past_due", "unpaid", "paused", "incomplete")
SOURCE_ORDER = ("subscription", "lifetime", "grant", "stripe")

_settings = EntitlementSettings()


def configure(settings: EntitlementSettings) -> None:
    """Use these settings (grace days, host endpoints); called by `create_app` and the CLI."""
    global _settings
    _settings = settings


def settings() -> EntitlementSettings:
    """The entitlement settings in use."""
    return _settings


# --------------------------------------------------------------------------- reading Stripe


async def read_active_entitlements(gateway: StripeGateway, stripe_customer_id: str) -> list[dict[str, Any]]:
    """Every active entitlement of a Stripe customer, all pages; no database access.

    Returns `[{"id": "ent_…", "lookup_key": "custom_domain", "feature": "feat_…"}, …]`; an empty
    list for a customer Stripe no longer knows.
    https://docs.stripe.com/api/entitlements/active-entitlement/list

    Raises:
        StripeUnavailable / StripeRateLimited / StripeRequestRejected: from the gateway.
    """
    found: list[dict[str, Any]] = []
    try:
        async for item in gateway.active_entitlements(stripe_customer_id):
            feature = item.get("feature")
            found.append(
                {
                    "id": item.get("id"),
                    "lookup_key": item.get("lookup_key"),
                    "feature": feature.get("id") if isinstance(feature, dict) else feature,
                }
            )
    except StripeNotFound:
        return []
    return found


# --------------------------------------------------------------------------- computing


@dataclass
class Grant:
    """One reason a person may use a feature; `until` None means no end is known."""

    feature: str
    source: str
    source_id: str | None
    description: str
    price_id: str | None = None
    until: datetime | None = None

    def rank(self) -> tuple[int, float, int]:
        """Sort key: the grant that lasts longest first, then the clearest source."""
        forever = 1 if self.until is None else 0
        end = 0.0 if self.until is None else self.until.timestamp()
        return (-forever, -end, SOURCE_ORDER.index(self.source))


@dataclass
class Computed:
    """The published state of one person and the rows behind it."""

    state: dict[str, Any]
    grants: list[Grant] = field(default_factory=list)
    next_change_at: datetime | None = None


def _iso(value: datetime | None) -> str | None:
    return value.astimezone(UTC).isoformat().replace("+00:00", "Z") if value else None


def _ensure_utc(value: datetime | None) -> datetime | None:
    if value is None:
        return None
    return value if value.tzinfo else value.replace(tzinfo=UTC)


async def _plan_features(plan_ids: set[int]) -> dict[int, list[str]]:
    if not plan_ids:
        return {}
    rows = await PlanFeature.select(PlanFeature.plan.as_alias("plan"), PlanFeature.feature_lookup_key).where(
        PlanFeature.plan.is_in(list(plan_ids))
    )
    by_plan: dict[int, list[str]] = {}
    for row in rows:
        by_plan.setdefault(row["plan"], []).append(row["feature_lookup_key"])
    return by_plan


async def compute_state(user: User, customer: Customer | None, active: list[dict[str, Any]], now: datetime) -> Computed:
    """Work out a person's plan, status and entitlements from the local copy plus Stripe's `active` list.

    Database reads only. `now` is UTC. See the module docstring for the rules.
    """
    grace = timedelta(days=_settings.grace_days)
    subs: list[Subscription] = []
    if customer is not None:
        subs = await Subscription.objects().where(Subscription.customer == customer.id).order_by(Subscription.id)
    paid = (
        await PaymentTransaction.objects()
        .where((PaymentTransaction.user == user.id) & PaymentTransaction.status.is_in(list(PAID_PAYMENT_STATUSES)))
        .order_by(PaymentTransaction.created_at)
    )
    prices = {
        p.id: p
        for p in await Price.objects().where(
            Price.id.is_in([s.price for s in subs if s.price] or [-1])
            | Price.stripe_price_id.is_in([pt.stripe_price_id for pt in paid if pt.stripe_price_id] or ["-"])
        )
    }
    one_time = {p.stripe_price_id for p in prices.values() if p.type == "one_time"}
    lifetime_payments = [pt for pt in paid if pt.stripe_price_id in one_time]
    price_by_stripe_id = {p.stripe_price_id: p for p in prices.values()}
    plan_ids = {p.plan for p in prices.values() if p.plan}
    plans = {p.id: p for p in await Plan.objects().where(Plan.id.is_in(list(plan_ids) or [-1]))}
    plan_features = await _plan_features(plan_ids)

    grants: list[Grant] = []
    change_points: list[datetime] = []
    for sub in subs:
        price = prices.get(sub.price) if sub.price else None
        keys = plan_features.get(price.plan, []) if price and price.plan else []
        source = f"from subscription {sub.stripe_subscription_id}" + (
            f" on {sub.stripe_price_id}" if sub.stripe_price_id else ""
        )
        if sub.status in GRANTING_STATUSES:
            until = _ensure_utc(sub.cancel_at) or (
                _ensure_utc(sub.current_period_end) if sub.cancel_at_period_end else None
            )
            for key in keys:
                grants.append(
                    Grant(
                        key,
                        "subscription",
                        sub.stripe_subscription_id,
                        source,
                        sub.stripe_price_id,
                        until,
                    )
                )
        elif sub.status == "past_due":
            started = _ensure_utc(sub.current_period_start) or now
            ends = started + grace
            if now < ends:
                change_points.append(ends)
                for key in keys:
                    grants.append(
                        Grant(
                            key,
                            "subscription",
                            sub.stripe_subscription_id,
                            f"{source}, past due: grace period until {_iso(ends)}",
                            sub.stripe_price_id,
                            ends,
                        )
                    )
        # paused, unpaid, canceled, incomplete(_expired), or past due beyond the grace: nothing.

    for payment in lifetime_payments:
        price = price_by_stripe_id.get(payment.stripe_price_id or "")
        for key in plan_features.get(price.plan, []) if price and price.plan else []:
            grants.append(
                Grant(
                    key,
                    "lifetime",
                    payment.stripe_payment_intent_id,
                    f"from the lifetime purchase {payment.stripe_payment_intent_id}",
                    payment.stripe_price_id,
                )
            )

    granted_keys = {g.feature for g in grants}
    # Features of the catalogue are decided by the rules above from the local plan features (Stripe
    # applies a product's new feature list only at each subscriber's renewal, and keeps a lapsed
    # subscription's features); Stripe's list speaks for every other feature.
    catalogue = {r["feature_lookup_key"] for r in await PlanFeature.select(PlanFeature.feature_lookup_key)}
    for item in active:
        key = str(item.get("lookup_key") or "")
        if not key or key in granted_keys or key in catalogue:
            continue
        grants.append(Grant(key, "stripe", item.get("id"), f"listed by Stripe as active entitlement {item.get('id')}"))

    overrides = await EntitlementOverride.objects().where(EntitlementOverride.user == user.id)
    revoked: dict[str, datetime | None] = {}
    for override in overrides:
        override_end = _ensure_utc(override.ends_at)
        if override_end is not None and override_end <= now:
            continue
        if override_end is not None:
            change_points.append(override_end)
        if override.kind == "grant":
            words = f"granted by an operator until {_iso(override_end)}" if override_end else "granted by an operator"
            grants.append(Grant(override.feature, "grant", f"grant_{override.id}", words, None, override_end))
        else:
            revoked[override.feature] = override_end
    grants = [g for g in grants if g.feature not in revoked]

    best: dict[str, Grant] = {}
    for grant in sorted(grants, key=Grant.rank):
        best.setdefault(grant.feature, grant)
    chosen = [best[k] for k in sorted(best)]
    for grant in chosen:
        if grant.until is not None and grant.until > now:
            change_points.append(grant.until)

    names = {
        r["lookup_key"]: r["name"]
        for r in await Feature.select(Feature.lookup_key, Feature.name).where(
            Feature.lookup_key.is_in(list(best) or ["-"])
        )
    }
    state = _state(user, customer, subs, prices, plans, lifetime_payments, price_by_stripe_id, chosen, names, now)
    future = [t for t in change_points if t > now]
    return Computed(state=state, grants=chosen, next_change_at=min(future) if future else None)


def _state(
    user: User,
    customer: Customer | None,
    subs: list[Subscription],
    prices: dict[int, Price],
    plans: dict[int, Plan],
    lifetime_payments: list[PaymentTransaction],
    price_by_stripe_id: dict[str, Price],
    grants: list[Grant],
    names: dict[str, str],
    now: datetime,
) -> dict[str, Any]:
    """The JSON the host sees (`GET …/state` and the webhook's `data`)."""
    grace = timedelta(days=_settings.grace_days)
    live = sorted((s for s in subs if s.status in PLAN_PRIORITY), key=lambda s: (PLAN_PRIORITY.index(s.status), -s.id))
    current = live[0] if live else None
    plan_obj: dict[str, Any] | None = None
    status = "none"
    renews_at = cancels_at = None
    premium = False
    if current is not None:
        price = prices.get(current.price) if current.price else None
        plan = plans.get(price.plan) if price and price.plan else None
        plan_obj = {
            "key": plan.key if plan else None,
            "name": plan.name if plan else None,
            "price": current.stripe_price_id,
            "interval": price.interval if price else None,
            "subscription": current.stripe_subscription_id,
        }
        status = current.status
        in_grace = current.status == "past_due" and now < (_ensure_utc(current.current_period_start) or now) + grace
        premium = current.status in GRANTING_STATUSES or in_grace
        ending = _ensure_utc(current.cancel_at) or (
            _ensure_utc(current.current_period_end) if current.cancel_at_period_end else None
        )
        if ending is not None:
            cancels_at = ending
        elif current.status in GRANTING_STATUSES:
            renews_at = _ensure_utc(current.current_period_end)
    elif lifetime_payments:
        payment = lifetime_payments[-1]
        price = price_by_stripe_id.get(payment.stripe_price_id or "")
        plan = plans.get(price.plan) if price and price.plan else None
        plan_obj = {
            "key": plan.key if plan else None,
            "name": plan.name if plan else None,
            "price": payment.stripe_price_id,
            "interval": "lifetime",
            "payment_intent": payment.stripe_payment_intent_id,
        }
        status = "active"
        premium = True
    elif any(s.status == "canceled" for s in subs):
        status = "canceled"
    return {
        "object": "customer_state",
        "external_id": user.subject,
        "email": user.email if user.email_verified else None,
        "stripe_customer_id": customer.stripe_customer_id if customer else None,
        "plan": plan_obj,
        "status": status,
        "premium": premium,
        "renews_at": _iso(renews_at),
        "cancels_at": _iso(cancels_at),
        "entitlements": [
            {
                "feature": g.feature,
                "name": names.get(g.feature, g.feature),
                "source": g.source,
                "source_id": g.source_id,
                "price": g.price_id,
                "description": g.description,
                "until": _iso(g.until),
            }
            for g in grants
        ],
    }


def fingerprint(state: dict[str, Any]) -> str:
    """sha256 over what the host is told about: plan, status, premium and entitlements."""
    significant = {k: state.get(k) for k in ("plan", "status", "premium", "entitlements")}
    return hashlib.sha256(json.dumps(significant, sort_keys=True).encode()).hexdigest()


# --------------------------------------------------------------------------- writing


async def apply_entitlements(customer: Customer, active: list[dict[str, Any]], now: datetime) -> bool:
    """Write a customer's entitlements and published state from Stripe's `active` list and the local copy.

    Runs inside the sync's transaction (after the customer's subscriptions and payments were written),
    database only. Enqueues one `customer.state_changed` per host endpoint when plan, status or
    entitlements changed. Returns whether they changed. `now` is UTC.
    """
    user = await User.objects().get(User.id == customer.user)
    if user is None:
        return False
    return await _apply(user, customer, active, now)


async def _apply(user: User, customer: Customer | None, active: list[dict[str, Any]], now: datetime) -> bool:
    computed = await compute_state(user, customer, active, now)
    await Entitlement.delete().where(Entitlement.user == user.id)
    if computed.grants:
        await Entitlement.insert(
            *[
                Entitlement(
                    customer=customer.id if customer else None,
                    user=user.id,
                    feature=g.feature,
                    source=g.source,
                    source_id=g.source_id,
                    price_id=g.price_id,
                    description=g.description,
                    until=g.until,
                )
                for g in computed.grants
            ]
        )
    new_fingerprint = fingerprint(computed.state)
    existing = await CustomerState.objects().get(CustomerState.user == user.id)
    changed = existing is None or existing.fingerprint != new_fingerprint
    version = (existing.version if existing else 0) + (1 if changed else 0)
    # `updated_at` is when the version last changed (renewal dates move without a new version).
    previous = json.loads(existing.state) if existing and isinstance(existing.state, str) else {}
    updated_at = _iso(now) if changed else previous.get("updated_at", _iso(now))
    state = {**computed.state, "version": version, "updated_at": updated_at}
    values: dict[Any, Any] = {
        CustomerState.customer: customer.id if customer else None,
        CustomerState.state: json.dumps(state),
        CustomerState.fingerprint: new_fingerprint,
        CustomerState.stripe_entitlements: json.dumps(active),
        CustomerState.next_change_at: computed.next_change_at,
        CustomerState.entitlements_until: min((g.until for g in computed.grants if g.until), default=None),
        CustomerState.version: version,
        CustomerState.updated_at: now,
    }
    if existing is None:
        await CustomerState.insert(
            CustomerState(user=user.id, **{c._meta.name: v for c, v in values.items()})
        ).on_conflict(target=CustomerState.user, action="DO UPDATE", values=list(values))
    else:
        await CustomerState.update(values).where(CustomerState.id == existing.id)
    if changed and (existing is not None or computed.grants or computed.state["status"] != "none"):
        await enqueue_state_changed(user.id, state, now)
    return changed


async def enqueue_state_changed(user_id: int, state: dict[str, Any], now: datetime) -> int:
    """Put one `customer.state_changed` per host endpoint in the outbox; returns how many.

    The message id (`webhook-id`) is `msg_<user>_<version>`: the same on every retry and redelivery,
    so the host can drop duplicates.
    """
    endpoints = [e.url for e in _settings.webhook_endpoints]
    endpoints += [
        r["url"]
        for r in await HostWebhookEndpoint.select(HostWebhookEndpoint.url).where(
            HostWebhookEndpoint.disabled_at.is_null()
        )
        if r["url"] not in endpoints
    ]
    if not endpoints:
        return 0
    message_id = f"msg_{user_id}_{state['version']}"
    payload = {"type": STATE_CHANGED, "timestamp": _iso(now), "data": state}
    await HostWebhook.insert(
        *[
            HostWebhook(
                message_id=message_id,
                endpoint_url=url,
                user=user_id,
                type=STATE_CHANGED,
                payload=json.dumps(payload),
            )
            for url in endpoints
        ]
    )
    return len(endpoints)


async def lock_person(user_id: int, customer: Customer | None) -> None:
    """The lock a customer sync holds (its Stripe id), or one per person without a customer."""
    key = customer.stripe_customer_id if customer else f"user:{user_id}"
    await Customer.raw("SELECT pg_advisory_xact_lock(hashtextextended({}, 0))", key)


async def refresh_person(user_id: int, now: datetime | None = None) -> bool:
    """Recompute one person's entitlements from the local copy and Stripe's last list (no Stripe call).

    For changes that come with time or from an operator: a grace period or grant that ended, a new
    grant or revocation. One short transaction under the person's lock. Returns whether it changed.
    """
    now = now or datetime.now(UTC)
    async with transaction():
        user = await User.objects().get(User.id == user_id)
        if user is None:
            return False
        customer = await Customer.objects().get(Customer.user == user_id)
        await lock_person(user_id, customer)
        customer = await Customer.objects().get(Customer.user == user_id)
        stored = await CustomerState.select(CustomerState.stripe_entitlements).where(CustomerState.user == user_id)
        active = stored[0]["stripe_entitlements"] if stored else []
        if isinstance(active, str):
            active = json.loads(active)
        return await _apply(user, customer, list(active or []), now)
    return False  # pragma: no cover - the transaction re-raises; this satisfies the type checker


async def refresh_due(now: datetime | None = None, limit: int = 100) -> int:
    """Recompute every person whose grace period or grant ended by `now`; returns how many changed."""
    now = now or datetime.now(UTC)
    rows = (
        await CustomerState.select(CustomerState.user.as_alias("user"))
        .where(CustomerState.next_change_at <= now)
        .limit(limit)
    )
    changed = 0
    for row in rows:
        changed += int(await refresh_person(row["user"], now))
    return changed


# --------------------------------------------------------------------------- operators


async def find_person(external_id: str) -> User | None:
    """The person whose OpenID subject, or else verified email (exactly one), is `external_id`."""
    if "\x00" in external_id or not 0 < len(external_id) <= 320:
        return None
    user = await User.objects().get(User.subject == external_id)
    if user is None and "@" in external_id:
        rows = await User.raw(
            'SELECT id FROM "user" WHERE lower(email) = lower({}) AND email_verified LIMIT 2', external_id
        )
        user = await User.objects().get(User.id == rows[0]["id"]) if len(rows) == 1 else None
    return user


async def add_override(
    user_id: int, feature: str, kind: str, ends_at: datetime | None, note: str = "", created_by: str = "cli"
) -> EntitlementOverride:
    """Grant (`kind="grant"`) or revoke (`"revoke"`) a feature for a person until `ends_at` (UTC; None: until
    removed), then recompute them (which tells the host when it changes anything).

    Raises:
        ValueError: `kind` is neither grant nor revoke, or `ends_at` is in the past.
    """
    if kind not in ("grant", "revoke"):
        raise ValueError("kind must be grant or revoke")
    if ends_at is not None and ends_at <= datetime.now(UTC):
        raise ValueError("the end date must be in the future")
    override = EntitlementOverride(
        user=user_id, feature=feature, kind=kind, ends_at=ends_at, note=note, created_by=created_by
    )
    # One transaction (joining the caller's, e.g. the console's with its audit entry): the override and
    # the recomputed state, with its outbox row, are written together or not at all.
    async with transaction():
        await override.save()
        await refresh_person(user_id)
    return override


async def end_override(user_id: int, override_id: int) -> EntitlementOverride | None:
    """End one operator grant or revocation of a person now, then recompute them (telling the host).

    Returns the override as it was before (None when the person has no such override still in force).
    """
    now = datetime.now(UTC)
    async with transaction():
        override = await EntitlementOverride.objects().get(
            (EntitlementOverride.id == override_id)
            & (EntitlementOverride.user == user_id)
            & (EntitlementOverride.ends_at.is_null() | (EntitlementOverride.ends_at > now))
        )
        if override is None:
            return None
        await EntitlementOverride.update({EntitlementOverride.ends_at: now}).where(
            EntitlementOverride.id == override.id
        )
        await refresh_person(user_id, now)
    return override


async def end_overrides(user_id: int, feature: str) -> int:
    """End every grant and revocation of `feature` for a person now; returns how many ended."""
    now = datetime.now(UTC)
    async with transaction():
        rows = (
            await EntitlementOverride.update({EntitlementOverride.ends_at: now})
            .where(
                (EntitlementOverride.user == user_id)
                & (EntitlementOverride.feature == feature)
                & (EntitlementOverride.ends_at.is_null() | (EntitlementOverride.ends_at > now))
            )
            .returning(EntitlementOverride.id)
        )
        await refresh_person(user_id, now)
    return len(rows)


# --------------------------------------------------------------------------- reading for pages and the API


async def entitled_features(user_id: int, now: datetime | None = None) -> dict[str, Entitlement]:
    """The features a person may use now, by lookup key (their `entitlement` rows still in force)."""
    now = now or datetime.now(UTC)
    rows = await Entitlement.objects().where(
        (Entitlement.user == user_id) & (Entitlement.until.is_null() | (Entitlement.until > now))
    )
    return {r.feature: r for r in rows}


async def is_entitled(user_id: int, feature: str, now: datetime | None = None) -> bool:
    """True when the person may use `feature` (lookup key) now."""
    now = now or datetime.now(UTC)
    return await Entitlement.exists().where(
        (Entitlement.user == user_id)
        & (Entitlement.feature == feature)
        & (Entitlement.until.is_null() | (Entitlement.until > now))
    )


@dataclass(frozen=True)
class FeatureInForce:
    """A feature a person may use now (one of their `entitlement` rows still in force), with its name."""

    feature: str
    name: str
    description: str
    until: datetime | None
    source: str


def what_you_have(features: list[FeatureInForce]) -> list[dict[str, Any]]:
    """The account page's list: `[{feature, name, description, until, source}]` by name (case-insensitive)."""
    listed = [
        {"feature": f.feature, "name": f.name, "description": f.description, "until": f.until, "source": f.source}
        for f in features
    ]
    return sorted(listed, key=lambda e: str(e["name"]).lower())


def features_lost(
    features: list[FeatureInForce], plan_features: dict[int, list[str]]
) -> tuple[list[str], dict[int, list[str]]]:
    """What a person would lose: `(on cancelling, {plan id: on switching to that plan})`, as feature names.

    `features` are the person's features in force; `plan_features` the lookup keys of each plan a switch
    to is considered. Only features that come from their subscription can be lost; lifetime and
    operator grants stay.
    """
    names = {f.feature: f.name for f in features if f.source in ("subscription", "stripe")}
    if not names:
        return [], {}

    def named(keys: set[str]) -> list[str]:
        return sorted((names[k] for k in keys), key=str.lower)

    switching = {plan_id: named(set(names) - set(keys)) for plan_id, keys in plan_features.items()}
    return named(set(names)), switching


# --------------------------------------------------------------------------- catalogue


async def read_plan_features(gateway: StripeGateway, product_ids: list[str]) -> dict[str, list[dict[str, Any]]]:
    """Each Product's attached Features (network only): `{prod_…: [{id, lookup_key, name, feature}]}`.

    https://docs.stripe.com/api/product-feature/list
    """
    out: dict[str, list[dict[str, Any]]] = {}
    for product_id in product_ids:
        items = []
        async for pf in gateway.product_features(product_id):
            feature = pf.get("entitlement_feature") or {}
            items.append(
                {
                    "id": pf.get("id"),
                    "feature": feature.get("id"),
                    "lookup_key": feature.get("lookup_key"),
                    "name": feature.get("name"),
                    "active": feature.get("active", True),
                }
            )
        # Stripe lists newest first; the catalogue order is the order they were attached.
        out[product_id] = list(reversed(items))
    return out


async def apply_plan_features(features_by_product: dict[str, list[dict[str, Any]]]) -> None:
    """Write `feature` and `plan_feature` from `read_plan_features` (database only; inside the
    catalogue sync's transaction)."""
    for product_id, items in features_by_product.items():
        plan = await Plan.objects().get(Plan.stripe_product_id == product_id)
        if plan is None:
            continue
        await PlanFeature.delete().where(PlanFeature.plan == plan.id)
        for item in items:
            if not item.get("lookup_key"):
                continue
            await Feature.insert(
                Feature(
                    lookup_key=item["lookup_key"],
                    name=item.get("name") or item["lookup_key"],
                    stripe_feature_id=item.get("feature"),
                    active=bool(item.get("active", True)),
                )
            ).on_conflict(
                target=Feature.lookup_key,
                action="DO UPDATE",
                values=[Feature.name, Feature.stripe_feature_id, Feature.active],
            )
            if item.get("active", True):
                await PlanFeature.insert(
                    PlanFeature(
                        plan=plan.id, feature_lookup_key=item["lookup_key"], stripe_product_feature_id=item.get("id")
                    )
                )
