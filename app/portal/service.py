"""Customer Portal workflows: configurations, sessions, and the return summary.

Stripe API: https://docs.stripe.com/api/customer_portal/sessions/create and
https://docs.stripe.com/api/customer_portal/configurations. Flow types:
https://docs.stripe.com/customer-management/portal-deep-links
"""

from __future__ import annotations

import functools
import json
import tomllib
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from app.auth.tables import User
from app.billing.changes import Change, as_json, describe_changes, snapshot, snapshot_of
from app.billing.service import AccountBilling, active_subscription
from app.billing.sync import sync_customer
from app.billing.tables import LIVE_STATUSES, Customer, Plan, Price, Subscription
from app.db import row_of
from app.portal.tables import PortalConfiguration, PortalSession
from app.settings import PROJECT_ROOT
from app.stripe_gateway import StripeGateway
from app.web.i18n import N_

DEFAULT_PORTAL_FILE = PROJECT_ROOT / "portal.toml"
WORKFLOWS = ("payment_update", "subscription_management", "cancellation_process", "billing_review", "profile_update")
# Plan changes chosen on /plans: a confirm-this-change flow (uses the subscription_management configuration).
PLAN_CHANGE = "plan_change"
# "Manage Subscription": the portal homepage (no flow) with every feature the operator enabled.
OVERVIEW = "overview"
RETURN_PAGES = {
    OVERVIEW: "account:show",
    "payment_update": "account:show",
    "subscription_management": "account:show",
    "cancellation_process": "account:show",
    "profile_update": "account:show",
    "billing_review": "history:list",
    PLAN_CHANGE: "plans:list",
}


class NoCustomer(Exception):
    """The person has no Stripe customer yet, so there is nothing to manage."""


class UnknownWorkflow(ValueError):
    """The workflow (or the price of a plan change) is not one this app offers."""


class CancellationPending(Exception):
    """The subscription already cancels at the end of its period; `cancels_at` is when (UTC)."""

    def __init__(self, cancels_at: datetime | None) -> None:
        super().__init__("This subscription is already set to cancel.")
        self.cancels_at = cancels_at


@dataclass(frozen=True)
class WorkflowSpec:
    """One workflow of `portal.toml`."""

    key: str
    title: str
    description: str
    features: tuple[str, ...]


@dataclass(frozen=True)
class PortalSpec:
    """`portal.toml`: the business profile, subscription rules and the workflows."""

    business_profile: dict[str, str]
    proration_behavior: str
    cancel_mode: str
    cancellation_reasons: tuple[str, ...]
    workflows: dict[str, WorkflowSpec]
    overview: WorkflowSpec | None = None

    def configurations(self) -> dict[str, WorkflowSpec]:
        """Every configuration to push: the workflows and the homepage one."""
        return {**self.workflows, **({OVERVIEW: self.overview} if self.overview else {})}


def load_portal_spec(path: Path = DEFAULT_PORTAL_FILE) -> PortalSpec:
    """Read `portal.toml`, parsed once per version of the file (its modification time and size).

    `/portal` shows the workflows on every visit; the file changes only with a deployment.

    Raises:
        ValueError: a workflow is missing or names an unknown feature.
    """
    stat = path.stat()
    return _parse_portal_spec(path, stat.st_mtime_ns, stat.st_size)


@functools.lru_cache(maxsize=16)
def _parse_portal_spec(path: Path, mtime_ns: int, size: int) -> PortalSpec:
    data = tomllib.loads(path.read_text())
    known = {
        "payment_method_update",
        "subscription_update",
        "subscription_cancel",
        "invoice_history",
        "customer_update",
    }
    workflows = {}
    for key in (*WORKFLOWS, OVERVIEW):
        raw = (data.get("workflows") or {}).get(key)
        if raw is None:
            if key == OVERVIEW:
                continue
            raise ValueError(f"{path}: workflow {key} is missing")
        features = tuple(raw.get("features", []))
        if unknown := set(features) - known:
            raise ValueError(f"{path}: workflow {key} names unknown features {sorted(unknown)}")
        workflows[key] = WorkflowSpec(key, str(raw.get("title", key)), str(raw.get("description", "")), features)
    overview = workflows.pop(OVERVIEW, None)
    sub = data.get("subscription") or {}
    return PortalSpec(
        business_profile={k: str(v) for k, v in (data.get("business_profile") or {}).items()},
        proration_behavior=str(sub.get("proration_behavior", "create_prorations")),
        cancel_mode=str(sub.get("cancel_mode", "at_period_end")),
        cancellation_reasons=tuple(sub.get("cancellation_reasons", ["other"])),
        workflows=workflows,
        overview=overview,
    )


async def _switchable_products() -> list[dict[str, Any]]:
    """Every active plan with its active recurring prices, for `subscription_update.products`."""
    plans = await Plan.objects().where(Plan.active == True)  # noqa: E712
    prices = await Price.objects().where((Price.active == True) & (Price.type == "recurring"))  # noqa: E712
    products = []
    for plan in plans:
        ids = [p.stripe_price_id for p in prices if p.plan == plan.id]
        if ids:
            products.append({"product": plan.stripe_product_id, "prices": ids})
    return products


def configuration_params(spec: PortalSpec, workflow: WorkflowSpec, products: list[dict[str, Any]]) -> dict[str, Any]:
    """The Billing Portal Configuration parameters for one workflow (every feature set explicitly)."""
    on = set(workflow.features)
    features: dict[str, Any] = {
        "invoice_history": {"enabled": "invoice_history" in on},
        "payment_method_update": {"enabled": "payment_method_update" in on},
        "customer_update": {"enabled": "customer_update" in on},
        "subscription_cancel": {"enabled": "subscription_cancel" in on},
        "subscription_update": {"enabled": "subscription_update" in on and bool(products)},
    }
    if "customer_update" in on:
        features["customer_update"]["allowed_updates"] = ["email", "name", "phone", "address", "tax_id"]
    if "subscription_cancel" in on:
        features["subscription_cancel"].update(
            mode=spec.cancel_mode,
            proration_behavior="none",
            cancellation_reason={"enabled": True, "options": list(spec.cancellation_reasons)},
        )
    if features["subscription_update"]["enabled"]:
        features["subscription_update"].update(
            default_allowed_updates=["price"], proration_behavior=spec.proration_behavior, products=products
        )
    profile = {k: v for k, v in spec.business_profile.items() if v}
    return {"business_profile": profile, "features": features, "metadata": {"workflow": workflow.key}}


async def push_portal(gateway: StripeGateway, spec: PortalSpec) -> list[str]:
    """Create or update one Billing Portal Configuration per workflow; remember their ids locally.

    Idempotent: configurations are found by `metadata.workflow`. Needs the plan catalogue synced
    (for which prices a subscriber can switch between).
    """
    products = await _switchable_products()
    existing = {
        (c.get("metadata") or {}).get("workflow"): c
        async for c in gateway.portal_configurations()
        if (c.get("metadata") or {}).get("workflow")
    }
    actions = []
    for key, workflow in spec.configurations().items():
        params = configuration_params(spec, workflow, products)
        current = existing.get(key)
        if current is None:
            config = await gateway.create_portal_configuration(params)
            actions.append(f"created configuration {key} ({config['id']})")
        else:
            config = await gateway.update_portal_configuration(current["id"], params)
            actions.append(f"updated configuration {key} ({config['id']})")
        await PortalConfiguration.insert(
            PortalConfiguration(workflow=key, stripe_configuration_id=config["id"], updated_at=datetime.now(UTC))
        ).on_conflict(
            target=PortalConfiguration.workflow,
            action="DO UPDATE",
            values=[PortalConfiguration.stripe_configuration_id, PortalConfiguration.updated_at],
        )
    return actions


async def _flow_data(
    gateway: StripeGateway,
    customer: Customer,
    subscription: Subscription | None,
    workflow: str,
    return_url: str,
    price_lookup_key: str | None,
    coupon: str | None,
) -> dict[str, Any] | None:
    """`flow_data` for a workflow (None: the portal homepage), redirecting back after completion;
    `subscription` is the person's live one (`active_subscription`)."""
    after = {"type": "redirect", "redirect": {"return_url": return_url}}
    if workflow == "payment_update":
        return {"type": "payment_method_update", "after_completion": after}
    if workflow == "subscription_management" and subscription is not None:
        return {
            "type": "subscription_update",
            "subscription_update": {"subscription": subscription.stripe_subscription_id},
            "after_completion": after,
        }
    if workflow == "cancellation_process" and subscription is not None:
        if subscription.cancel_at_period_end or subscription.cancel_at:
            # Stripe refuses this flow then ("already set to be canceled"); say so before asking it.
            raise CancellationPending(subscription.cancel_at or subscription.current_period_end)
        cancel: dict[str, Any] = {"subscription": subscription.stripe_subscription_id}
        if coupon:
            cancel["retention"] = {"type": "coupon_offer", "coupon_offer": {"coupon": coupon}}
        return {"type": "subscription_cancel", "subscription_cancel": cancel, "after_completion": after}
    if workflow == PLAN_CHANGE:
        price = await Price.objects().get((Price.lookup_key == (price_lookup_key or "")) & (Price.active == True))  # noqa: E712
        if subscription is None or price is None or price.type != "recurring":
            raise UnknownWorkflow(N_("That plan change is not available."))
        return {
            "type": "subscription_update_confirm",
            "subscription_update_confirm": {
                "subscription": subscription.stripe_subscription_id,
                "items": [
                    {
                        "id": await _item_id(gateway, customer, subscription.stripe_subscription_id),
                        "price": price.stripe_price_id,
                    }
                ],
            },
            "after_completion": after,
        }
    return None


async def _item_id(gateway: StripeGateway, customer: Customer, stripe_subscription_id: str) -> str:
    """The subscription's (first) item id, read from Stripe: `subscription_update_confirm` needs it."""
    async for sub in gateway.subscriptions_of(customer.stripe_customer_id):
        if sub["id"] == stripe_subscription_id:
            return str(sub["items"]["data"][0]["id"])
    raise UnknownWorkflow(N_("That subscription no longer exists."))


async def create_portal_session(
    gateway: StripeGateway,
    user: User,
    workflow: str,
    base_url: str,
    price_lookup_key: str | None = None,
    retention_coupon: str | None = None,
    *,
    locale: str | None = None,
) -> str:
    """Create a Billing Portal Session for the signed-in user's own customer; returns its URL
    (see `open_portal_session`; `locale` is the portal's language, `de`, `auto`)."""
    opened = await open_portal_session(
        gateway, user, workflow, base_url, price_lookup_key, retention_coupon, locale=locale
    )
    return opened.url


_OPENING_SQL = """
SELECT c AS customer,
       (SELECT pc FROM portal_configuration pc WHERE pc.workflow = {}) AS configuration,
       live.live_row AS subscription, snap.snap_row AS snapshot_subscription, sp AS snapshot_price,
       spl AS snapshot_plan, nextval(pg_get_serial_sequence('portal_session', 'id')) AS row_id
FROM customer c
LEFT JOIN LATERAL (SELECT ls AS live_row FROM subscription ls  -- as `active_subscription`
                   WHERE ls.user_id = c.user_id AND ls.status = ANY({}::varchar[])
                   ORDER BY array_position({}::varchar[], ls.status), ls.id DESC LIMIT 1) live ON true
LEFT JOIN LATERAL (SELECT ss AS snap_row, ss.price_id AS snap_price_id FROM subscription ss  -- as `snapshot`
                   WHERE ss.user_id = c.user_id
                   ORDER BY ss.status = ANY({}::varchar[]) DESC, ss.id DESC LIMIT 1) snap ON true
LEFT JOIN price sp ON sp.id = snap.snap_price_id
LEFT JOIN plan spl ON spl.id = sp.plan_id
WHERE c.user_id = {} AND NOT c.deleted
"""


@dataclass(frozen=True)
class OpenedPortalSession:
    """A Billing Portal Session just created: Stripe's `bps_…` id, its URL, where it returns, and
    the local `portal_session` row id (`/portal/return?ps=<row id>`)."""

    id: str
    url: str
    return_url: str
    created: int
    row_id: int


async def open_portal_session(
    gateway: StripeGateway,
    user: User,
    workflow: str,
    base_url: str,
    price_lookup_key: str | None = None,
    retention_coupon: str | None = None,
    *,
    return_url: str | None = None,
    configuration_id: str | None = None,
    locale: str | None = None,
) -> OpenedPortalSession:
    """Create a Billing Portal Session for the signed-in user's own customer.

    Records a `portal_session` row with the billing snapshot taken now. Its id is minted from the
    sequence first, then Stripe is called with no database connection held, then the row is inserted:
    a Stripe failure leaves no row. `return_url` and each flow's `after_completion` point at
    `/portal/return?ps=<row id>` under `APP_BASE_URL` (`base_url`), unless an API caller gives its
    own `return_url` (already checked against the allowed origins). `configuration_id` (a `bpc_…`
    this app pushed) replaces the workflow's configuration; `locale` is Stripe's portal locale
    (`auto`, `en`, `fr-CA`, …).

    Raises:
        UnknownWorkflow: `workflow` (or the plan-change price) is not offered.
        CancellationPending: the cancellation workflow for a subscription that already cancels.
        NoCustomer: the person has no Stripe customer.
        StripeUnavailable / StripeRequestRejected: nothing was recorded.
    """
    if workflow not in (*WORKFLOWS, PLAN_CHANGE, OVERVIEW):
        raise UnknownWorkflow(N_("Unknown workflow."))
    configuration_key = "subscription_management" if workflow == PLAN_CHANGE else workflow
    # One statement before Stripe is called: the customer, the workflow's configuration, the billing
    # snapshot and the live subscription, and the row's id minted from the sequence (the return URL
    # carries it). Stripe is then called with no connection held, and the row inserted after.
    live = list(LIVE_STATUSES)
    rows = await PortalSession.raw(_OPENING_SQL, configuration_key, live, live, live, user.id)
    if not rows:
        raise NoCustomer
    facts = rows[0]
    customer = row_of(Customer, facts["customer"])
    assert customer is not None
    configuration = row_of(PortalConfiguration, facts["configuration"])
    snapshot_price = row_of(Price, facts["snapshot_price"])
    before = snapshot_of(
        customer,
        row_of(Subscription, facts["snapshot_subscription"]),
        snapshot_price,
        row_of(Plan, facts["snapshot_plan"]),
    )
    row_id = int(facts["row_id"])
    back = return_url or f"{base_url}/portal/return?ps={row_id}"
    subscription = row_of(Subscription, facts["subscription"])
    flow = await _flow_data(gateway, customer, subscription, workflow, back, price_lookup_key, retention_coupon)
    params: dict[str, Any] = {"customer": customer.stripe_customer_id, "return_url": back}
    if configuration_id is not None:
        params["configuration"] = configuration_id
    elif configuration is not None:
        params["configuration"] = configuration.stripe_configuration_id
    if locale:
        params["locale"] = locale
    if flow is not None:
        params["flow_data"] = flow
    session = await gateway.create_portal_session(params)
    await PortalSession.raw(
        "INSERT INTO portal_session (id, user_id, workflow, before, stripe_session_id, created_at)"
        " VALUES ({}, {}, {}, {}::jsonb, {}, now())",
        row_id,
        user.id,
        workflow,
        json.dumps(before),
        session["id"],
    )
    return OpenedPortalSession(
        id=str(session["id"]),
        url=str(session["url"]),
        return_url=back,
        created=int(session.get("created") or 0),
        row_id=row_id,
    )


@dataclass
class ReturnSummary:
    """What the return page tells the person."""

    workflow: str
    changes: list[dict[str, Any]]
    next_page: str

    @property
    def cancelled(self) -> bool:
        """True when the person set their subscription to cancel in this session."""
        return any(c.get("kind") == "cancellation" and c.get("after") for c in self.changes)


async def complete_return(
    gateway: StripeGateway, user: User, portal_session_id: int, locale: str, timezone: str
) -> ReturnSummary | None:
    """Sync the customer from Stripe, compare with the snapshot taken at session creation, and
    record the result once. A reload returns the same stored summary. None when the session is
    not this user's (the caller answers 404).

    Raises:
        StripeUnavailable: the sync failed; nothing was recorded (a reload retries).
    """
    row = (
        await PortalSession.objects()
        .where((PortalSession.id == portal_session_id) & (PortalSession.user == user.id))
        .first()
        .output(load_json=True)
    )
    if row is None:
        return None
    if row.returned_at is None:
        customer = await Customer.objects().get(Customer.user == user.id)
        if customer is not None:
            # Changes this sync detects are audited as portal_return; ones a webhook already
            # applied were audited then. The summary below compares with the session's snapshot.
            await sync_customer(gateway, customer.stripe_customer_id, source="portal_return", portal_session_id=row.id)
        after = await snapshot(user.id)
        before = row.before if isinstance(row.before, dict) else json.loads(row.before or "{}")
        changes: list[Change] = describe_changes(before, after, locale=locale, tz=timezone)
        await PortalSession.update(
            {
                PortalSession.after: after,
                PortalSession.changes: as_json(changes),
                PortalSession.outcome: "changed" if changes else "no_changes",
                PortalSession.returned_at: datetime.now(UTC),
            }
        ).where((PortalSession.id == row.id) & (PortalSession.returned_at.is_null()))
        row = await PortalSession.objects().where(PortalSession.id == row.id).first().output(load_json=True)
        assert row is not None
    stored = row.changes if isinstance(row.changes, list) else json.loads(row.changes or "[]")
    return ReturnSummary(
        workflow=row.workflow, changes=stored, next_page=RETURN_PAGES.get(row.workflow, "account:show")
    )


def portal_entry_points(billing: AccountBilling) -> dict[str, Any]:
    """Which portal workflows `/portal` offers: by subscription kind and whether a (not deleted) customer exists."""
    customer = billing.customer if billing.customer is not None and not billing.customer.deleted else None
    return {"customer": customer, "subscription": billing.subscription, "lifetime": billing.lifetime}


# Stripe's own wording of `cancellation_details.feedback` values in its portal.
REASON_LABELS = {
    "too_expensive": N_("It's too expensive"),
    "missing_features": N_("Some features are missing"),
    "switched_service": N_("I'm switching to a different service"),
    "unused": N_("I don't use the service enough"),
    "customer_service": N_("Customer service was less than expected"),
    "too_complex": N_("Ease of use was less than expected"),
    "low_quality": N_("Quality was less than expected"),
    "other": N_("Other reason"),
}


@dataclass
class CancellationPage:
    """What the cancellation return page shows."""

    portal_session_id: int
    subscription: Any
    plan: Plan | None
    ends_at: datetime | None
    ask_reason: bool
    reason: str | None
    reasons: list[tuple[str, str]]


async def cancellation_page(user: User, portal_session_id: int, spec: PortalSpec) -> CancellationPage | None:
    """The person's pending cancellation after portal session `portal_session_id`, from the local copy.

    None when the session is not this person's or no subscription of theirs is set to cancel (the
    caller sends them to their account). The reason is asked only when Stripe's cancellation page
    did not collect one (`cancellation_details.feedback`) and it was not answered here already.
    """
    row = await PortalSession.objects().get((PortalSession.id == portal_session_id) & (PortalSession.user == user.id))
    subscription = await active_subscription(user.id)
    if row is None or subscription is None or not (subscription.cancel_at_period_end or subscription.cancel_at):
        return None
    price = await Price.objects().get(Price.id == subscription.price) if subscription.price else None
    plan = await Plan.objects().get(Plan.id == price.plan).output(load_json=True) if price and price.plan else None
    return CancellationPage(
        portal_session_id=row.id,
        subscription=subscription,
        plan=plan,
        ends_at=subscription.cancel_at or subscription.current_period_end,
        ask_reason=not subscription.cancellation_feedback and row.cancellation_reason is None,
        reason=row.cancellation_reason,
        reasons=[(r, REASON_LABELS.get(r, r.replace("_", " ").capitalize())) for r in spec.cancellation_reasons],
    )


async def record_cancellation_reason(user: User, portal_session_id: int, reason: str, spec: PortalSpec) -> bool:
    """Store why the person cancelled on their portal session (`portal_session.cancellation_reason`).

    Only the first answer counts. Returns False when the session is not this person's.

    Raises:
        UnknownWorkflow: `reason` is not one of `portal.toml`'s `cancellation_reasons`.
    """
    if reason not in spec.cancellation_reasons:
        raise UnknownWorkflow(N_("Choose one of the listed reasons."))
    if not await PortalSession.exists().where(
        (PortalSession.id == portal_session_id) & (PortalSession.user == user.id)
    ):
        return False
    await PortalSession.update(
        {PortalSession.cancellation_reason: reason, PortalSession.cancellation_reason_at: datetime.now(UTC)}
    ).where((PortalSession.id == portal_session_id) & PortalSession.cancellation_reason.is_null())
    return True
