"""Request and response bodies of the JSON API (OpenAPI schemas are generated from these).

Money is in the currency's minor unit (`*_cents`) with a lower-case ISO 4217 `currency`; times
are ISO 8601 in UTC.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import date, datetime
from typing import Any, Literal

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


@dataclass
class PortalConfigurationFields:
    """A portal configuration's editable fields, the operator console's form as JSON (every field
    optional: `POST` creates from the defaults below, `PATCH` changes only the fields sent).
    Stripe's limits are checked before any Stripe call (422 naming each failing field)."""

    name: str | None = None
    """This app's name for the configuration (Stripe `name`)."""
    headline: str | None = None
    """`business_profile.headline`, at most 60 characters."""
    privacy_policy_url: str | None = None
    terms_of_service_url: str | None = None
    default_return_url: str | None = None
    """Full https:// URLs (http only for a localhost return URL); empty string clears."""
    customer_update: bool | None = None
    customer_update_fields: list[str] | None = None
    """`email`, `address`, `shipping`, `phone`, `tax_id`, `name` (at least one when `customer_update`)."""
    invoice_history: bool | None = None
    payment_method_update: bool | None = None
    cancel: bool | None = None
    cancel_mode: str | None = None
    """`at_period_end` (default) or `immediately`."""
    cancel_proration: str | None = None
    """`none` (default) or `create_prorations`."""
    cancel_reasons: list[str] | None = None
    """Stripe's cancellation reasons offered to the customer (`too_expensive`, `unused`, …)."""
    update: bool | None = None
    """Let customers switch plan (`subscription_update`)."""
    update_allowed: list[str] | None = None
    """`price`, `quantity`, `promotion_code`."""
    update_proration: str | None = None
    """`none`, `create_prorations` (default) or `always_invoice`."""
    update_prices: list[str] | None = None
    """Stripe price ids (`price_…`) of active recurring catalogue prices; one per interval per product,
    at most 10 products."""
    schedule_downgrades: bool | None = None
    """Downgrades take effect at the end of the period."""


@dataclass
class PortalConfigurationOut:
    """A Customer Portal configuration as Stripe holds it, with this app's view of it."""

    id: str
    """Stripe's id (`bpc_…`)."""
    name: str | None
    active: bool
    is_default: bool
    """Stripe's account default (set only in the Dashboard)."""
    default_return_url: str | None
    business_profile: dict[str, Any]
    features: dict[str, Any]
    """Stripe's `features` object, unchanged."""
    features_words: list[str]
    """The enabled features in words ("switch plan", "invoice history")."""
    used_by: list[str]
    """The workflows of this app that open the portal with this configuration."""
    fields: PortalConfigurationFields
    """The editable fields, in the shape `POST`/`PATCH` take."""


@dataclass
class AnalyticsPeriod:
    start_date: date
    end_date: date
    """Local days, both included, in `timezone`."""
    timezone: str
    start: datetime
    end: datetime
    """The UTC bounds [start, end)."""
    days: int


@dataclass
class WorkflowFigures:
    workflow: str
    sessions: int
    returned: int
    changed: int
    changed_share: float


@dataclass
class DayFigures:
    day: date
    sessions: int


@dataclass
class ReasonFigures:
    reason: str
    cancellations: int


@dataclass
class PlanFigures:
    plan: str
    cancellations: int


@dataclass
class PortalAnalyticsOut:
    """Customer Portal use in a period, from the sessions this app records (Stripe cannot list them).
    Durations are seconds from opening the portal to coming back; rates are 0..1 (null without sessions)."""

    period: AnalyticsPeriod
    total_sessions: int
    unique_customers: int
    returned_sessions: int
    changed_sessions: int
    """Sessions after which something changed (plan, payment method, details, …)."""
    return_rate: float | None
    changed_share: float | None
    median_session_seconds: float | None
    p90_session_seconds: float | None
    by_workflow: list[WorkflowFigures]
    """Most used first."""
    by_day: list[DayFigures]
    cancellations_by_reason: list[ReasonFigures]
    cancellations_by_plan: list[PlanFigures]
