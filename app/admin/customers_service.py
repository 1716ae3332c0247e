"""Customer lookup for operators: search, one customer's whole local state, resync from Stripe."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from app.admin.audit import record_action
from app.auth.tables import User
from app.billing.sync import sync_customer
from app.billing.tables import BillingChange, Customer, PaymentTransaction, Subscription
from app.portal.tables import PortalSession
from app.stripe_gateway import StripeGateway

SEARCH_LIMIT = 50


async def search_customers(query: str, limit: int = SEARCH_LIMIT) -> list[dict[str, Any]]:
    """People matching `query`: an exact Stripe customer id (`cus_…`) or OIDC subject, or an email
    (case-insensitive prefix). Each row: `user_id`, `subject`, `email`, `email_verified`, `name`,
    `stripe_customer_id` (None without a Stripe customer), `last_login_at` (UTC). Empty query: the
    most recent sign-ins.
    """
    q = query.strip()
    sql = (
        "SELECT u.id AS user_id, u.subject, u.email, u.email_verified, u.name, u.last_login_at, c.stripe_customer_id "
        'FROM "user" u '
        "LEFT JOIN customer c ON c.user_id = u.id "
    )
    if not q:
        return list(await User.raw(sql + f"ORDER BY u.last_login_at DESC LIMIT {int(limit)}"))
    escaped = q.lower().replace("\\", "\\\\").replace("%", r"\%").replace("_", r"\_")
    rows: list[dict[str, Any]] = await User.raw(
        sql + "WHERE c.stripe_customer_id = {} OR u.subject = {} OR lower(u.email) LIKE {} OR lower(c.email) LIKE {} "
        f"ORDER BY u.id LIMIT {int(limit)}",
        q,
        q,
        escaped + "%",
        escaped + "%",
    )
    return rows


@dataclass
class CustomerDetail:
    """Everything the console shows about one person (newest first in each list)."""

    user: User
    customer: Customer | None
    subscriptions: list[Subscription]
    payments: list[PaymentTransaction]
    portal_sessions: list[dict[str, Any]]
    changes: list[BillingChange]


async def customer_detail(user_id: int, limit: int = 50) -> CustomerDetail | None:
    """The local state of user `user_id` (None when there is no such user)."""
    user = await User.objects().get(User.id == user_id)
    if user is None:
        return None
    return CustomerDetail(
        user=user,
        customer=await Customer.objects().get(Customer.user == user_id),
        subscriptions=await Subscription.objects()
        .where(Subscription.user == user_id)
        .order_by(Subscription.id, ascending=False),
        payments=await PaymentTransaction.objects()
        .where(PaymentTransaction.user == user_id)
        .order_by(PaymentTransaction.created_at, ascending=False)
        .limit(limit),
        portal_sessions=await PortalSession.select(
            PortalSession.id,
            PortalSession.workflow,
            PortalSession.outcome,
            PortalSession.changes,
            PortalSession.created_at,
            PortalSession.returned_at,
        )
        .where(PortalSession.user == user_id)
        .order_by(PortalSession.id, ascending=False)
        .limit(limit)
        .output(load_json=True),
        changes=await BillingChange.objects()
        .where(BillingChange.user == user_id)
        .order_by(BillingChange.id, ascending=False)
        .limit(limit),
    )


class NothingToResync(Exception):
    """The person has no Stripe customer, so there is nothing to read from Stripe."""


async def resync_customer(gateway: StripeGateway, user_id: int, actor: User) -> int:
    """Re-read the person's Stripe customer (`app.billing.sync.sync_customer`, `full=True`) and audit it.

    Returns the number of `billing_change` rows the sync added.

    Raises:
        NothingToResync: no Stripe customer for this user.
        StripeUnavailable / StripeRateLimited: Stripe failed; nothing was written.
    """
    customer = await Customer.objects().get(Customer.user == user_id)
    if customer is None:
        raise NothingToResync
    changes_before = await BillingChange.count().where(BillingChange.user == user_id)
    await sync_customer(gateway, customer.stripe_customer_id, full=True, source="sync")
    added = await BillingChange.count().where(BillingChange.user == user_id) - changes_before
    await record_action(actor, "customer.resynced", customer.stripe_customer_id, None, {"changes": added})
    return added
