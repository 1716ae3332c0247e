"""What changed in a person's billing: snapshots of the local copy, their differences in words,
and the `billing_change` audit trail.

A snapshot is plain JSON (it is stored on the portal session when the session is created). The
words are built at display time for the person's locale and time zone.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from datetime import datetime
from typing import Any
from zoneinfo import ZoneInfo

from babel.dates import format_date

from app.billing.tables import LIVE_STATUSES, BillingChange, Customer, Plan, Price, Subscription

STATUS_WORDS = {
    "active": "Active",
    "trialing": "Trial",
    "past_due": "Past due",
    "unpaid": "Unpaid",
    "incomplete": "Incomplete",
    "incomplete_expired": "Expired",
    "canceled": "Canceled",
    "paused": "Paused",
}
INTERVAL_WORDS = {"month": "monthly", "year": "yearly", "week": "weekly", "day": "daily"}


async def snapshot(user_id: int) -> dict[str, Any]:
    """The person's billing state from the local copy, as JSON-ready data (times as ISO 8601 UTC)."""
    customer = await Customer.objects().get(Customer.user == user_id)
    subs = await Subscription.objects().where(Subscription.user == user_id).order_by(Subscription.id, ascending=False)
    live = [s for s in subs if s.status in LIVE_STATUSES]
    sub = live[0] if live else (subs[0] if subs else None)
    plan_label = None
    if sub is not None and sub.price:
        price = await Price.objects().get(Price.id == sub.price)
        plan = await Plan.objects().get(Plan.id == price.plan) if price and price.plan else None
        if price is not None:
            interval = INTERVAL_WORDS.get(price.interval or "", price.interval or "")
            plan_label = f"{plan.name if plan else 'Plan'} {interval}".strip()
    card = None
    if customer is not None and customer.card_last4:
        card = f"{(customer.card_brand or 'card').title()} •••• {customer.card_last4}"

    def iso(value: datetime | None) -> str | None:
        return value.isoformat() if value else None

    return {
        "card": card,
        "subscription_id": sub.stripe_subscription_id if sub else None,
        "plan": plan_label,
        "status": sub.status if sub else None,
        "cancel_at": iso(
            (sub.cancel_at or (sub.current_period_end if sub.cancel_at_period_end else None)) if sub else None
        ),
        "period_start": iso(sub.current_period_start if sub else None),
        "ended_at": iso(sub.ended_at if sub else None),
        "email": customer.email if customer else None,
        "address": customer.address if customer else None,
        "tax_ids": customer.tax_ids if customer else None,
    }


@dataclass(frozen=True)
class Change:
    """One change: `kind`, the values before and after (as shown to people), and the sentence."""

    kind: str
    before: str | None
    after: str | None
    text: str


def _date(value: str | None, locale: str, tz: ZoneInfo) -> str:
    if not value:
        return ""
    return format_date(datetime.fromisoformat(value).astimezone(tz).date(), format="medium", locale=locale)


def describe_changes(
    before: dict[str, Any], after: dict[str, Any], locale: str = "en_GB", tz: str = "UTC"
) -> list[Change]:
    """The differences between two snapshots in words, e.g.

    "Payment method: Visa •••• 4242 → Mastercard •••• 4444", "Plan: Pro monthly → Pro yearly, from
    1 Dec 2026", "Cancels on 23 Dec 2026", "Billing email changed". Empty when nothing changed.
    """
    zone = ZoneInfo(tz)
    changes: list[Change] = []
    if before.get("card") != after.get("card"):
        old, new = before.get("card"), after.get("card")
        text = f"Payment method: {old} → {new}" if old and new else f"Payment method: {new or 'removed'}"
        changes.append(Change("payment_method", old, new, text))
    if before.get("plan") != after.get("plan") and after.get("plan"):
        old, new = before.get("plan"), after.get("plan")
        since = _date(after.get("period_start"), locale, zone)
        text = f"Plan: {old} → {new}" if old else f"Plan: {new}"
        changes.append(Change("plan", old, new, text + (f", from {since}" if since and old else "")))
    if before.get("status") != after.get("status") and after.get("status"):
        old, new = before.get("status"), after.get("status")
        if new == "canceled":
            ended = _date(after.get("ended_at"), locale, zone)
            text = f"Subscription canceled{f' on {ended}' if ended else ''}"
        else:
            text = f"Status: {STATUS_WORDS.get(old or '', old or 'none')} → {STATUS_WORDS.get(str(new), str(new))}"
        changes.append(Change("status", old, new, text))
    if before.get("cancel_at") != after.get("cancel_at") and after.get("status") != "canceled":
        old, new = before.get("cancel_at"), after.get("cancel_at")
        if new:
            text = f"Cancels on {_date(new, locale, zone)}"
        else:
            text = "Cancellation withdrawn: your plan renews as usual"
        changes.append(Change("cancellation", old, new, text))
    if before.get("email") != after.get("email"):
        changes.append(Change("email", before.get("email"), after.get("email"), "Billing email changed"))
    if before.get("address") != after.get("address"):
        changes.append(
            Change("address", _flat(before.get("address")), _flat(after.get("address")), "Billing address updated")
        )
    if before.get("tax_ids") != after.get("tax_ids"):
        changes.append(Change("tax_ids", _flat(before.get("tax_ids")), _flat(after.get("tax_ids")), "Tax ID updated"))
    return changes


def _flat(value: Any) -> str | None:
    if not value:
        return None
    if isinstance(value, dict):
        return ", ".join(str(v) for v in value.values() if v)
    if isinstance(value, list):
        return ", ".join(str(v.get("value", v)) if isinstance(v, dict) else str(v) for v in value)
    return str(value)


async def record_changes(
    user_id: int, changes: list[Change], source: str, portal_session_id: int | None = None
) -> None:
    """Append `changes` to the `billing_change` audit trail."""
    if changes:
        await BillingChange.insert(
            *[
                BillingChange(
                    user=user_id,
                    kind=c.kind,
                    before=c.before,
                    after=c.after,
                    source=source,
                    portal_session_id=portal_session_id,
                )
                for c in changes
            ]
        )


def as_json(changes: list[Change]) -> list[dict[str, Any]]:
    """JSON-ready list of changes (for the portal session row)."""
    return [asdict(c) for c in changes]
