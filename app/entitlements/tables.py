"""Tables of the entitlements area: what each customer may use, and what the host product is told.

`feature` and `plan_feature` mirror Stripe's Entitlements catalogue (Features attached to Products);
`entitlement` holds each customer's current rows with their source; `customer_state` is the state
published to the host (API and `customer.state_changed` webhooks); `entitlement_override` holds
operator grants and revocations; `host_api_key`, `host_webhook_endpoint` and `host_webhook` (the
outbox) serve the host product. Times are UTC `timestamptz`.
"""

from __future__ import annotations

from piccolo.columns import JSONB, Boolean, ForeignKey, Integer, Serial, Text, Timestamptz, Varchar
from piccolo.columns.defaults.timestamptz import TimestamptzNow
from piccolo.table import Table

from app.auth.tables import User
from app.billing.tables import Customer, Plan


class Feature(Table):
    """A Stripe Entitlements Feature (`feat_…`), known by its stable `lookup_key`."""

    id = Serial(primary_key=True)
    lookup_key = Varchar(length=80, unique=True, index=True)
    name = Varchar(length=255)
    stripe_feature_id = Varchar(length=255, null=True, default=None, unique=True)
    active = Boolean(default=True)


class PlanFeature(Table):
    """A Feature attached to a plan's Product (Stripe's `product_feature`), as last read from Stripe."""

    id = Serial(primary_key=True)
    plan = ForeignKey(references=Plan, null=False, index=True, db_column_name="plan_id")
    feature_lookup_key = Varchar(length=80)
    stripe_product_feature_id = Varchar(length=255, null=True, default=None)


class Entitlement(Table):
    """One feature a customer may use now, with where it comes from (in ids and in words)."""

    id = Serial(primary_key=True)
    customer = ForeignKey(references=Customer, null=True, index=True, db_column_name="customer_id")
    user = ForeignKey(references=User, null=False, index=True, db_column_name="user_id")
    feature = Varchar(length=80, help_text="The feature's lookup key")
    source = Varchar(length=20, help_text="subscription | lifetime | grant | stripe")
    source_id = Varchar(length=255, null=True, default=None, help_text="sub_…, pi_…, grant id or ent_…")
    price_id = Varchar(length=255, null=True, default=None)
    description = Text(default="", help_text="The source in words")
    until = Timestamptz(null=True, default=None, help_text="When access ends unless renewed; NULL: no end known")
    created_at = Timestamptz(default=TimestamptzNow())


class EntitlementOverride(Table):
    """An operator's grant (or revocation) of one feature to one person, optionally until a date."""

    id = Serial(primary_key=True)
    user = ForeignKey(references=User, null=False, index=True, db_column_name="user_id")
    feature = Varchar(length=80)
    kind = Varchar(length=8, help_text="grant | revoke")
    ends_at = Timestamptz(null=True, default=None)
    note = Text(default="")
    created_by = Varchar(length=255, default="cli")
    created_at = Timestamptz(default=TimestamptzNow())


class CustomerState(Table):
    """The state last published to the host for one customer (what `GET …/state` returns)."""

    id = Serial(primary_key=True)
    customer = ForeignKey(references=Customer, null=True, db_column_name="customer_id")
    user = ForeignKey(references=User, null=False, unique=True, index=True, db_column_name="user_id")
    state = JSONB(default="{}")
    fingerprint = Varchar(length=64, default="", help_text="sha256 of plan, status and entitlements")
    stripe_entitlements = JSONB(default="[]", help_text="Stripe's active entitlements at the last sync")
    next_change_at = Timestamptz(null=True, default=None, index=True, help_text="When a grace or grant ends")
    entitlements_until = Timestamptz(
        null=True, default=None, help_text="The earliest `until` of the state's entitlements (NULL: none ends)"
    )
    version = Integer(default=0)
    updated_at = Timestamptz(default=TimestamptzNow())


class HostApiKey(Table):
    """A host product's API key: only a SHA-256 of the secret is kept."""

    id = Serial(primary_key=True)
    name = Varchar(length=120)
    prefix = Varchar(length=32, unique=True, help_text="The key's public part, shown in lists")
    key_hash = Varchar(length=64, unique=True, index=True)
    scope = Varchar(length=32, default="read")
    created_at = Timestamptz(default=TimestamptzNow())
    last_used_at = Timestamptz(null=True, default=None)
    revoked_at = Timestamptz(null=True, default=None)


class HostWebhookEndpoint(Table):
    """A host endpoint added by the CLI (endpoints can also come from `HOST_WEBHOOK_ENDPOINTS`)."""

    id = Serial(primary_key=True)
    url = Varchar(length=2000, unique=True)
    secret = Varchar(length=200, secret=True)
    created_at = Timestamptz(default=TimestamptzNow())
    disabled_at = Timestamptz(null=True, default=None)


class HostWebhook(Table):
    """Outbox: one outbound webhook to one endpoint, delivered in order per person and endpoint."""

    id = Serial(primary_key=True)
    message_id = Varchar(length=64, index=True, help_text="`webhook-id`; the same on every retry")
    endpoint_url = Varchar(length=2000)
    user = ForeignKey(references=User, null=False, index=True, db_column_name="user_id")
    type = Varchar(length=64)
    payload = JSONB()
    status = Varchar(length=12, default="pending", index=True, help_text="pending | delivered | failed")
    attempts = Integer(default=0)
    next_attempt_at = Timestamptz(default=TimestamptzNow())
    lease_until = Timestamptz(null=True, default=None)
    last_error = Text(null=True, default=None)
    created_at = Timestamptz(default=TimestamptzNow())
    delivered_at = Timestamptz(null=True, default=None)
