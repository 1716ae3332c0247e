"""The local copy of Stripe's billing state, plus the webhook event log.

Stripe is the source of truth; these rows are what pages read so that no page waits on Stripe.
They are written only by the sync functions in `app.billing.sync` (webhooks, return handlers and
the `litestar billing sync` backfill all go through them). Money is in the currency's minor unit
(`*_cents`) with an ISO 4217 code; times are UTC `timestamptz`.
"""

from __future__ import annotations

from piccolo.columns import (
    JSONB,
    Boolean,
    ForeignKey,
    Integer,
    Serial,
    SmallInt,
    Text,
    Timestamptz,
    Varchar,
)
from piccolo.columns.base import OnDelete
from piccolo.columns.defaults.timestamptz import TimestamptzNow
from piccolo.table import Table

from app.auth.tables import User

SUBSCRIPTION_STATUSES = (
    "incomplete",
    "incomplete_expired",
    "trialing",
    "active",
    "past_due",
    "canceled",
    "unpaid",
    "paused",
)


# Statuses in which a subscription gives (or is about to give) a plan; a second Checkout would double-bill.
LIVE_STATUSES = ("active", "trialing", "past_due", "unpaid", "paused", "incomplete")


class Customer(Table):
    """A user's Stripe Customer, with a summary of its default card."""

    id = Serial(primary_key=True)
    user = ForeignKey(references=User, unique=True, null=False, index=True, db_column_name="user_id")
    stripe_customer_id = Varchar(length=255, unique=True, index=True)
    email = Varchar(length=320, null=True, default=None)
    name = Text(null=True, default=None)
    phone = Varchar(length=40, null=True, default=None)
    default_payment_method_id = Varchar(length=255, null=True, default=None)
    card_brand = Varchar(length=32, null=True, default=None)
    card_last4 = Varchar(length=4, null=True, default=None)
    card_exp_month = SmallInt(null=True, default=None)
    card_exp_year = SmallInt(null=True, default=None)
    address = JSONB(null=True, default=None)
    tax_ids = JSONB(null=True, default=None)
    deleted = Boolean(default=False)
    created_at = Timestamptz(default=TimestamptzNow())
    synced_at = Timestamptz(null=True, default=None)
    stripe_read_at = Timestamptz(
        null=True,
        default=None,
        help_text="High-water mark of the customer's own fields (email, card, address, deleted): when the read "
        "last written began (UTC)",
    )
    entitlements_read_at = Timestamptz(
        null=True,
        default=None,
        help_text="High-water mark of Stripe's active entitlements list: when the list last written began to be read",
    )


class Plan(Table):
    """A Stripe Product that is one of the plans people can choose (`metadata.plan_key`)."""

    id = Serial(primary_key=True)
    key = Varchar(length=64, unique=True)
    stripe_product_id = Varchar(length=255, unique=True, index=True)
    name = Varchar(length=255)
    description = Text(default="")
    features = JSONB(default="[]")
    sort_order = Integer(default=0)
    active = Boolean(default=True)
    synced_at = Timestamptz(default=TimestamptzNow())


class Price(Table):
    """A Stripe Price of a plan: recurring (month/year) or one-time (lifetime)."""

    id = Serial(primary_key=True)
    stripe_price_id = Varchar(length=255, unique=True, index=True)
    plan = ForeignKey(references=Plan, null=True, index=True, db_column_name="plan_id", on_delete=OnDelete.set_null)
    lookup_key = Varchar(length=200, null=True, default=None, unique=True)
    currency = Varchar(length=3, default="usd")
    unit_amount_cents = Integer()
    type = Varchar(length=16, choices=None, help_text="recurring | one_time")
    interval = Varchar(length=8, null=True, default=None, help_text="day | week | month | year")
    interval_count = SmallInt(default=1)
    active = Boolean(default=True)
    synced_at = Timestamptz(default=TimestamptzNow())


class Subscription(Table):
    """A Stripe Subscription as last read from Stripe."""

    id = Serial(primary_key=True)
    stripe_subscription_id = Varchar(length=255, unique=True, index=True)
    customer = ForeignKey(references=Customer, null=False, index=True, db_column_name="customer_id")
    user = ForeignKey(references=User, null=False, index=True, db_column_name="user_id")
    status = Varchar(length=24)
    price = ForeignKey(references=Price, null=True, db_column_name="price_id", on_delete=OnDelete.set_null)
    stripe_price_id = Varchar(length=255, null=True, default=None)
    quantity = Integer(default=1)
    current_period_start = Timestamptz(null=True, default=None)
    current_period_end = Timestamptz(null=True, default=None)
    cancel_at_period_end = Boolean(default=False)
    cancel_at = Timestamptz(null=True, default=None)
    canceled_at = Timestamptz(null=True, default=None, index=True)
    ended_at = Timestamptz(null=True, default=None)
    cancellation_reason = Varchar(
        length=40,
        null=True,
        default=None,
        help_text="Stripe's cancellation_details.reason, e.g. cancellation_requested",
    )
    trial_start = Timestamptz(null=True, default=None)
    trial_end = Timestamptz(null=True, default=None)
    default_payment_method_id = Varchar(length=255, null=True, default=None)
    latest_invoice_id = Varchar(length=255, null=True, default=None)
    stripe_created = Timestamptz(null=True, default=None)
    stripe_updated_at = Timestamptz(help_text="When the Stripe state this row reflects was read (UTC)")
    created_at = Timestamptz(default=TimestamptzNow())
    cancellation_feedback = Varchar(
        length=32, null=True, default=None, help_text="`cancellation_details.feedback` Stripe collected, if any"
    )
    next_charge_amount_cents = Integer(
        null=True, default=None, help_text="`amount_due` of Stripe's invoice preview (minor units); null: none due"
    )
    next_charge_currency = Varchar(length=3, null=True, default=None)
    next_charge_at = Timestamptz(null=True, default=None, help_text="When Stripe will attempt that charge (UTC)")


class PaymentTransaction(Table):
    """One payment (a Stripe PaymentIntent), with its charge, invoice and refund state."""

    id = Serial(primary_key=True)
    user = ForeignKey(references=User, null=False, index=True, db_column_name="user_id")
    subscription = ForeignKey(
        references=Subscription, null=True, db_column_name="subscription_id", on_delete=OnDelete.set_null
    )
    stripe_payment_intent_id = Varchar(length=255, unique=True)
    stripe_charge_id = Varchar(length=255, null=True, default=None)
    stripe_invoice_id = Varchar(length=255, null=True, default=None)
    stripe_customer_id = Varchar(length=255, index=True)
    stripe_price_id = Varchar(length=255, null=True, default=None)
    amount_cents = Integer()
    amount_refunded_cents = Integer(default=0)
    currency = Varchar(length=3, default="usd")
    status = Varchar(
        length=24, index=True, help_text="succeeded | pending | failed | refunded | partially_refunded | canceled"
    )
    payment_method = Varchar(length=32, null=True, default=None, help_text="card brand, e.g. visa")
    payment_method_last4 = Varchar(length=4, null=True, default=None)
    description = Text(default="")
    failure_reason = Text(null=True, default=None)
    metadata = JSONB(default="{}")
    hosted_invoice_url = Text(null=True, default=None)
    invoice_pdf_url = Text(null=True, default=None)
    receipt_url = Text(null=True, default=None)
    paid_at = Timestamptz(null=True, default=None)
    refunded_at = Timestamptz(null=True, default=None)
    created_at = Timestamptz(default=TimestamptzNow(), help_text="When Stripe created the payment")
    updated_at = Timestamptz(default=TimestamptzNow())
    stripe_read_at = Timestamptz(
        null=True, default=None, help_text="High-water mark: when the Stripe state this row reflects began to be read"
    )


class StripeEvent(Table):
    """A webhook event as received, stored before any processing so nothing is ever lost."""

    id = Serial(primary_key=True)
    stripe_event_id = Varchar(length=255, unique=True)
    type = Varchar(length=120, index=True)
    api_version = Varchar(length=64, null=True, default=None)
    created = Timestamptz(help_text="The event's `created`, UTC")
    livemode = Boolean(default=False)
    payload = JSONB()
    stripe_customer_id = Varchar(length=255, null=True, default=None, index=True)
    status = Varchar(
        length=16,
        default="pending",
        index=True,
        help_text="pending | processing | processed | failed | dead | ignored",
    )
    attempts = Integer(default=0)
    last_error = Text(null=True, default=None)
    next_attempt_at = Timestamptz(default=TimestamptzNow())
    received_at = Timestamptz(default=TimestamptzNow())
    processed_at = Timestamptz(null=True, default=None)
    leased_by = Varchar(length=128, null=True, default=None, help_text="The worker processing the event now")
    lease_expires_at = Timestamptz(
        null=True, default=None, help_text="When a `processing` event returns to the queue if its worker vanished"
    )


class EventWorkerHeartbeat(Table, tablename="event_worker"):
    """One running event worker (in a web process or standalone) and when its loop last turned."""

    id = Serial(primary_key=True)
    worker_id = Varchar(length=128, unique=True)
    hostname = Varchar(length=255, index=True)
    pid = Integer()
    mode = Varchar(length=16, help_text="in-process | standalone")
    started_at = Timestamptz(default=TimestamptzNow())
    heartbeat_at = Timestamptz(default=TimestamptzNow())
    iterations = Integer(default=0)
    last_error = Text(null=True, default=None)


class ScheduledTask(Table):
    """A periodic job that one worker at a time runs (e.g. the undelivered-events reconciliation)."""

    id = Serial(primary_key=True)
    name = Varchar(length=64, unique=True)
    next_run_at = Timestamptz(default=TimestamptzNow())
    leased_by = Varchar(length=128, null=True, default=None)
    lease_expires_at = Timestamptz(null=True, default=None)
    last_run_at = Timestamptz(null=True, default=None)
    last_result = Text(null=True, default=None)


class BillingChange(Table):
    """Audit trail: one row per detected change of a person's billing state."""

    id = Serial(primary_key=True)
    user = ForeignKey(references=User, null=False, index=True, db_column_name="user_id")
    kind = Varchar(length=40, help_text="payment_method | plan | status | cancellation | email | address | tax_ids")
    before = Text(null=True, default=None)
    after = Text(null=True, default=None)
    source = Varchar(length=20, help_text="portal_return | webhook | sync | checkout_return")
    portal_session_id = Integer(null=True, default=None, help_text="The local portal session that caused it, if known")
    at = Timestamptz(default=TimestamptzNow())
