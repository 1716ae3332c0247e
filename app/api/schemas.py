"""Request and response bodies of the JSON API (OpenAPI schemas are generated from these).

Money is in the currency's minor unit (`*_cents`) with a lower-case ISO 4217 `currency`; times
are ISO 8601 in UTC.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from typing import Literal

WorkflowType = Literal[
    "payment_update", "subscription_management", "cancellation_process", "billing_review", "profile_update"
]


@dataclass
class BillingConfig:
    """What a front end needs to talk to Stripe itself."""

    publishable_key: str
    """Stripe publishable key (`pk_…`) for Stripe.js / the mobile SDKs."""


@dataclass
class Profile:
    subject: str
    email: str | None
    email_verified: bool
    name: str | None


@dataclass
class PlanInfo:
    key: str
    name: str
    interval: str | None
    """`month`, `year`, or null for lifetime access."""


@dataclass
class Me:
    """The caller's profile and billing state (from the local copy; no Stripe call)."""

    profile: Profile
    plan: PlanInfo | None
    status: str | None
    """The subscription's Stripe status (`active`, `trialing`, `past_due`, …), `lifetime`, or null."""
    is_premium: bool
    """True while a subscription gives a plan (`active`, `trialing`, `past_due`) or with lifetime access."""
    is_lifetime: bool
    renews_at: datetime | None
    cancels_at: datetime | None
    has_billing_account: bool


@dataclass
class CheckoutSessionRequest:
    price: str
    """The price's lookup key (e.g. `pro_monthly`) or its Stripe id (`price_…`)."""
    success_url: str | None = None
    """Where Checkout returns after paying (allowed origins only); `{CHECKOUT_SESSION_ID}` is filled in."""
    cancel_url: str | None = None


@dataclass
class CheckoutSessionCreated:
    id: str
    url: str


@dataclass
class PaymentIntentRequest:
    price: str
    """A one-time price's lookup key (e.g. `pro_lifetime`) or Stripe id; the amount comes from the catalogue."""


@dataclass
class PaymentIntentCreated:
    payment_intent_id: str
    client_secret: str
    """Confirm with Stripe.js (`stripe.confirmCardPayment(client_secret, …)`) or a mobile SDK."""
    amount_cents: int
    currency: str
    publishable_key: str


@dataclass
class Transaction:
    """One payment, as the history page shows it."""

    id: str
    """The Stripe PaymentIntent id (`pi_…`)."""
    created_at: datetime
    description: str
    amount_cents: int
    amount_refunded_cents: int
    currency: str
    status: str
    """`succeeded`, `pending`, `failed`, `refunded`, `partially_refunded` or `canceled`."""
    payment_method: str | None
    payment_method_last4: str | None
    failure_reason: str | None
    hosted_invoice_url: str | None
    invoice_pdf_url: str | None
    receipt_url: str | None


@dataclass
class HistoryPageOut:
    transactions: list[Transaction]
    total: int
    """How many payments match the filters."""
    limit: int
    offset: int | None
    """The offset asked for; null when paging by `cursor`."""
    has_more: bool
    next_cursor: str | None
    """Pass as `cursor` for the next (older) page; works at any depth, unlike `offset`."""


@dataclass
class PortalSessionRequest:
    workflow_type: WorkflowType = "subscription_management"
    return_url: str | None = None
    """Where the portal returns (allowed origins only); default: this app's return page."""
    configuration_id: str | None = None
    """A portal configuration (`bpc_…`) this app manages; default: the workflow's own."""
    locale: str | None = None
    """Stripe portal locale: `auto`, `en`, `fr`, `fr-CA`, …"""


@dataclass
class PortalSessionOut:
    id: str
    """Stripe's Billing Portal Session id (`bps_…`); pass it to `GET /api/v1/portal/return`."""
    url: str
    expires_at: datetime
    """Open the URL before this; Stripe's portal links are short-lived (this app allows 5 minutes)."""
    return_url: str
    workflow_type: str


@dataclass
class ChangeOut:
    kind: str
    """`payment_method`, `plan`, `status`, `cancellation`, `email`, `address` or `tax_ids`."""
    before: str | None
    after: str | None
    text: str


@dataclass
class PortalReturn:
    workflow_type: str
    customer_updated: bool
    subscription_changed: bool
    payment_method_updated: bool
    changes: list[ChangeOut] = field(default_factory=list)
    redirect_url: str = ""
    """The page of this app that shows the outcome."""
