"""Billing logic: the user's Stripe Customer, Checkout Sessions, and what the account page shows."""

from __future__ import annotations

import json
import logging
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from app.auth.tables import User
from app.billing.tables import LIVE_STATUSES, Customer, PaymentTransaction, Plan, Price, Subscription
from app.db import fetch, row_of, transaction
from app.entitlements.service import FeatureInForce
from app.stripe_gateway import StripeGateway
from app.web.i18n import N_

logger = logging.getLogger(__name__)

STATUS_PRIORITY = {s: i for i, s in enumerate(LIVE_STATUSES)}
PAID_STATUSES = ("succeeded", "partially_refunded")


class CheckoutRefused(Exception):
    """Checkout is not the right way for this person now; the message says what to do instead."""


async def get_or_create_customer(gateway: StripeGateway, user: User, locale: str | None = None) -> Customer:
    """The user's Stripe Customer, linking or creating it on first use.

    A new customer gets `preferred_locales=[locale]` (a Stripe locale such as `de`; `auto` and None
    give none), so Stripe's emails, invoices and receipts speak the person's language.

    Read, then write: Stripe is asked first with no database connection held, then one short
    transaction locks the user's row (`SELECT … FOR UPDATE`) and records the customer unless a
    concurrent request already did. Two clicks never make two customers: the create call carries an
    idempotency key bound to the user (Stripe answers a repeat with the same customer), and
    `customer.user_id` is unique. An existing Stripe customer with the same email is linked only when
    the provider marked the email verified and the customer belongs to no other user.

    Raises:
        StripeUnavailable / StripeRequestRejected: nothing is written locally.
    """
    customer = await Customer.objects().get(Customer.user == user.id)
    if customer is not None:
        return customer
    remote = await _linkable_customer(gateway, user) if user.email and user.email_verified else None
    if remote is not None:
        remote = await gateway.update_customer_metadata(remote["id"], {"user_id": str(user.id)})
        logger.info("Linked existing Stripe customer %s to user %s", remote["id"], user.id)
    else:
        remote = await gateway.create_customer(
            # Providers may hand out non-address "emails" (the local one uses the subject); Stripe refuses those.
            email=user.email if user.email and "@" in user.email else None,
            name=user.name,
            metadata={"user_id": str(user.id)},
            idempotency_key=f"billing-portal:customer:user:{user.id}",
            preferred_locales=[locale] if locale and locale != "auto" else None,
        )
    async with transaction():
        await User.raw('SELECT id FROM "user" WHERE id = {} FOR UPDATE', user.id)
        # A concurrent click, or a webhook for this new customer, may have recorded it meanwhile.
        await Customer.insert(
            Customer(user=user.id, stripe_customer_id=remote["id"], email=remote.get("email"))
        ).on_conflict(action="DO NOTHING")
        customer = await Customer.objects().get(Customer.user == user.id)
    assert customer is not None
    return customer


async def _linkable_customer(gateway: StripeGateway, user: User) -> dict[str, Any] | None:
    assert user.email
    for candidate in await gateway.list_customers_by_email(user.email):
        owner = (candidate.get("metadata") or {}).get("user_id")
        if owner and owner != str(user.id):
            continue
        if await Customer.exists().where(Customer.stripe_customer_id == candidate["id"]):
            continue
        return candidate
    return None


async def active_subscription(user_id: int) -> Subscription | None:
    """The user's subscription that currently gives (or is about to give) them a plan, if any."""
    rows = await Subscription.objects().where(
        (Subscription.user == user_id) & Subscription.status.is_in(list(LIVE_STATUSES))
    )
    if not rows:
        return None
    return sorted(rows, key=lambda s: (STATUS_PRIORITY.get(s.status, 99), -s.id))[0]


async def lifetime_payment(user_id: int) -> PaymentTransaction | None:
    """The user's paid, not fully refunded, one-time (lifetime) purchase, if any."""
    lifetime_prices = await Price.select(Price.stripe_price_id).where(Price.type == "one_time")
    ids = [row["stripe_price_id"] for row in lifetime_prices]
    if not ids:
        return None
    return (
        await PaymentTransaction.objects()
        .where(
            (PaymentTransaction.user == user_id)
            & PaymentTransaction.stripe_price_id.is_in(ids)
            & PaymentTransaction.status.is_in(list(PAID_STATUSES))
        )
        .order_by(PaymentTransaction.created_at, ascending=False)
        .first()
    )


async def purchasable_price(user: User, lookup_key: str) -> Price:
    """The active catalogue price with `lookup_key` (its plan loaded), if this person may buy it now.

    Raises:
        LookupError: no active price has that lookup key.
        CheckoutRefused: the person already has a plan of that kind (a live subscription for a
            recurring price, lifetime access for a one-time price).
    """
    price = await Price.objects(Price.plan).get((Price.lookup_key == lookup_key) & (Price.active == True))  # noqa: E712
    if price is None or price.plan is None:
        raise LookupError(lookup_key)
    if price.type == "recurring" and await active_subscription(user.id) is not None:
        raise CheckoutRefused(
            "You already have a subscription. Change or cancel it from Manage Subscription on your account page."
        )
    if price.type == "one_time" and await lifetime_payment(user.id) is not None:
        raise CheckoutRefused(N_("You already have lifetime access."))
    return price


def _purchase_metadata(user: User, price: Price) -> dict[str, str]:
    plan: Plan = price.plan
    return {"user_id": str(user.id), "price_id": price.stripe_price_id, "plan_key": plan.key}


async def start_checkout(
    gateway: StripeGateway,
    user: User,
    lookup_key: str,
    base_url: str,
    success_url: str | None = None,
    cancel_url: str | None = None,
    *,
    locale: str | None = None,
) -> str:
    """Create a Checkout Session for the price with `lookup_key`; returns its URL (see `create_checkout`)."""
    session = await create_checkout(gateway, user, lookup_key, base_url, success_url, cancel_url, locale=locale)
    return str(session["url"])


async def create_checkout(
    gateway: StripeGateway,
    user: User,
    lookup_key: str,
    base_url: str,
    success_url: str | None = None,
    cancel_url: str | None = None,
    *,
    locale: str | None = None,
) -> dict[str, Any]:
    """Create a Checkout Session for the price with `lookup_key`; returns the session (`id`, `url`, …).

    Mode `subscription` for recurring prices, `payment` for one-time (lifetime) ones. `success_url`
    defaults to this app's success page (with `{CHECKOUT_SESSION_ID}`), `cancel_url` to the plans
    page, both under `APP_BASE_URL` (`base_url`); API callers may pass their own (already checked
    against the allowed origins). `locale` is Checkout's language (`de`, `en-GB`, `auto`; see
    `app.web.i18n.stripe_locale`). https://docs.stripe.com/api/checkout/sessions/create

    Raises:
        LookupError: no active price has that lookup key.
        CheckoutRefused: the person already has a plan of that kind.
        StripeUnavailable / StripeRequestRejected: from Stripe.
    """
    price = await purchasable_price(user, lookup_key)
    plan: Plan = price.plan
    customer = await get_or_create_customer(gateway, user, locale)
    metadata = _purchase_metadata(user, price)
    params: dict[str, Any] = {
        "customer": customer.stripe_customer_id,
        "client_reference_id": str(user.id),
        "line_items": [{"price": price.stripe_price_id, "quantity": 1}],
        "success_url": success_url or f"{base_url}/billing/checkout/success?session_id={{CHECKOUT_SESSION_ID}}",
        "cancel_url": cancel_url or f"{base_url}/plans",
        "metadata": metadata,
    }
    if locale:
        params["locale"] = locale
    if price.type == "recurring":
        params["mode"] = "subscription"
        params["subscription_data"] = {"metadata": metadata}
    else:
        params["mode"] = "payment"
        params["payment_intent_data"] = {
            "metadata": {**metadata, "plan_name": plan.name},
            "description": f"{plan.name} — lifetime access",
        }
        params["invoice_creation"] = {"enabled": True}
    return await gateway.create_checkout_session(params)


@dataclass(frozen=True)
class StartedPayment:
    """A PaymentIntent for a catalogue price, to be confirmed by the client with `client_secret`."""

    payment_intent_id: str
    client_secret: str
    amount_cents: int
    currency: str
    price_lookup_key: str


async def start_payment_intent(
    gateway: StripeGateway, user: User, lookup_key: str, idempotency_key: str | None = None
) -> StartedPayment:
    """Create a PaymentIntent for the one-time price with `lookup_key` for the person's own customer.

    The amount and currency always come from the local catalogue, never from the client. The
    intent carries the same metadata and description as a lifetime purchase through Checkout, so
    when Stripe's `payment_intent.succeeded` webhook is applied it lands in the payment history
    and grants lifetime access the same way. https://docs.stripe.com/api/payment_intents/create

    Raises:
        LookupError: no active price has that lookup key.
        ValueError: the price is recurring (subscriptions go through Checkout).
        CheckoutRefused: the person already has lifetime access.
        StripeUnavailable / StripeRequestRejected: from Stripe.
    """
    price = await purchasable_price(user, lookup_key)
    if price.type != "one_time":
        raise ValueError("Only one-time prices can be paid with a PaymentIntent; subscribe through Checkout.")
    plan: Plan = price.plan
    customer = await get_or_create_customer(gateway, user)
    intent = await gateway.create_payment_intent(
        {
            "amount": price.unit_amount_cents,
            "currency": price.currency,
            "customer": customer.stripe_customer_id,
            "description": f"{plan.name} — lifetime access",
            "metadata": {**_purchase_metadata(user, price), "plan_name": plan.name},
        },
        idempotency_key=f"billing-portal:payment-intent:{user.id}:{idempotency_key}" if idempotency_key else None,
    )
    return StartedPayment(
        payment_intent_id=str(intent["id"]),
        client_secret=str(intent["client_secret"]),
        amount_cents=int(intent["amount"]),
        currency=str(intent["currency"]),
        price_lookup_key=lookup_key,
    )


@dataclass
class AccountBilling:
    """What the account page shows about billing."""

    customer: Customer | None
    subscription: Subscription | None
    subscription_plan: Plan | None
    subscription_price: Price | None
    lifetime: PaymentTransaction | None
    lifetime_plan: Plan | None
    ended: Subscription | None

    @property
    def has_plan(self) -> bool:
        return self.subscription is not None or self.lifetime is not None


# The signed-in person and everything the account, plans and portal pages show about their billing, in one
# statement: each table's row comes back as a composite value (asyncpg decodes it into a record with the
# row's own types). Every name is distinct on purpose: PostgreSQL resolves a bare `s` to a column called
# `s` of an outer query before the whole row of a table aliased `s`. Every join is an index lookup on a
# `user_id` column (or a primary key, or a catalogue of a few rows); `tests/test_page_queries.py` checks
# the plan. Only constants are interpolated.
_PERSON_SQL = """
SELECT u AS "user", c AS customer, live.live_row AS subscription, ended.ended_row AS ended, pr AS price, pl AS plan,
       lt.lifetime_row AS lifetime, lpl AS lifetime_plan,
       ARRAY(SELECT ROW(e.feature, coalesce(f.name, e.feature), e.description, e.until, e.source)
             FROM (SELECT DISTINCT ON (ent.feature) ent.* FROM entitlement ent
                   WHERE ent.user_id = u.id AND (ent.until IS NULL OR ent.until > {})  -- now
                   ORDER BY ent.feature, ent.until DESC NULLS FIRST) e
             LEFT JOIN feature f ON f.lookup_key = e.feature) AS features
FROM "user" u
LEFT JOIN customer c ON c.user_id = u.id
LEFT JOIN LATERAL (SELECT ls AS live_row, ls.id AS live_id, ls.price_id AS live_price_id
                   FROM subscription ls  -- the live subscription that gives access first
                   WHERE ls.user_id = u.id AND ls.status = ANY({}::varchar[])  -- LIVE_STATUSES
                   ORDER BY array_position({}::varchar[], ls.status), ls.id DESC LIMIT 1) live ON true
LEFT JOIN LATERAL (SELECT es AS ended_row, es.price_id AS ended_price_id
                   FROM subscription es  -- else the last one that ended
                   WHERE live.live_id IS NULL AND es.user_id = u.id AND es.status = 'canceled'
                   ORDER BY es.ended_at DESC LIMIT 1) ended ON true
LEFT JOIN price pr ON pr.id = coalesce(live.live_price_id, ended.ended_price_id)
LEFT JOIN plan pl ON pl.id = pr.plan_id
LEFT JOIN LATERAL (SELECT lpt AS lifetime_row, lp.plan_id AS lifetime_plan_id
                   FROM payment_transaction lpt
                   JOIN price lp ON lp.stripe_price_id = lpt.stripe_price_id AND lp.type = 'one_time'
                   WHERE lpt.user_id = u.id AND lpt.status = ANY({}::varchar[])  -- PAID_STATUSES
                   ORDER BY lpt.created_at DESC LIMIT 1) lt ON true
LEFT JOIN plan lpl ON lpl.id = lt.lifetime_plan_id
WHERE u.id = {}
"""


@dataclass
class PersonSummary:
    """The signed-in person, what they pay for (`billing`), and the features they may use now."""

    user: User
    billing: AccountBilling
    features: list[FeatureInForce]


async def person_summary(user_id: int, now: datetime | None = None) -> PersonSummary | None:
    """The person with id `user_id`, their billing (as `account_billing`) and their features in force
    at `now` (UTC, default now), from the local copy in one SQL statement; None when no such user.

    The subscription shown is the live one that gives access first (`LIVE_STATUSES` order, then the
    newest), else the last one that ended; the lifetime purchase is the newest paid, not fully
    refunded payment of a one-time price.
    """
    live = list(LIVE_STATUSES)
    rows = await fetch(_PERSON_SQL, now or datetime.now(UTC), live, live, list(PAID_STATUSES), user_id)
    if not rows:
        return None
    row = rows[0]
    user = row_of(User, row["user"])
    assert user is not None
    billing = AccountBilling(
        customer=row_of(Customer, row["customer"]),
        subscription=row_of(Subscription, row["subscription"]),
        subscription_plan=row_of(Plan, row["plan"]),
        subscription_price=row_of(Price, row["price"]),
        lifetime=row_of(PaymentTransaction, row["lifetime"]),
        lifetime_plan=row_of(Plan, row["lifetime_plan"]),
        ended=row_of(Subscription, row["ended"]),
    )
    return PersonSummary(user=user, billing=billing, features=[FeatureInForce(*f) for f in row["features"]])


async def account_billing(user_id: int) -> AccountBilling:
    """Collect the account page's billing facts from the local copy (no Stripe call; see `person_summary`)."""
    summary = await person_summary(user_id)
    if summary is None:
        return AccountBilling(None, None, None, None, None, None, None)
    return summary.billing


_CATALOGUE_SQL = """
SELECT p AS plan,
       ARRAY(SELECT pr FROM price pr WHERE pr.plan_id = p.id AND pr.active ORDER BY pr.id) AS prices,
       ARRAY(SELECT pf.feature_lookup_key FROM plan_feature pf WHERE pf.plan_id = p.id ORDER BY pf.id) AS feature_keys
FROM plan p WHERE p.active ORDER BY p.sort_order, p.id
"""


async def plans_with_prices() -> list[dict[str, Any]]:
    """Active plans in catalogue order, in one SQL statement: `[{plan, prices, feature_keys}]`.

    `plan.features` is the decoded JSON list; `prices` holds the active prices by kind (`monthly`,
    `yearly`, `lifetime`; the newest wins); `feature_keys` the lookup keys of the plan's Features.
    """
    result = []
    for row in await fetch(_CATALOGUE_SQL):
        plan = row_of(Plan, row["plan"])
        assert plan is not None
        plan.features = json.loads(plan.features) if isinstance(plan.features, str) else plan.features
        by_kind: dict[str, Price] = {}
        for record in row["prices"]:
            price = row_of(Price, record)
            assert price is not None
            by_kind[{"month": "monthly", "year": "yearly"}.get(price.interval or "", "lifetime")] = price
        result.append({"plan": plan, "prices": by_kind, "feature_keys": list(row["feature_keys"])})
    return result
