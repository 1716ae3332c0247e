"""What changed in a person's billing: snapshots of the local copy, their differences in words,
and the `billing_change` audit trail.

A snapshot is plain JSON (it is stored on the portal session when the session is created). The
words are built at display time for the person's locale and time zone.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import asdict, dataclass
from datetime import datetime
from typing import Any
from zoneinfo import ZoneInfo

from babel.dates import format_date

from app.billing.tables import LIVE_STATUSES, BillingChange, Customer, Plan, Price, Subscription
from app.web.i18n import N_, language_of, translations

STATUS_WORDS = {
    "active": N_("Active"),
    "trialing": N_("Trial"),
    "past_due": N_("Past due"),
    "unpaid": N_("Unpaid"),
    "incomplete": N_("Incomplete"),
    "incomplete_expired": N_("Expired"),
    "canceled": N_("Canceled"),
    "paused": N_("Paused"),
}
# Kept in English in the snapshot ("Pro monthly"); `describe_changes` translates the word.
INTERVAL_WORDS = {"month": N_("monthly"), "year": N_("yearly"), "week": N_("weekly"), "day": N_("daily")}


# The person's customer row and current subscription (the newest live one, else the newest) with its
# price and plan, in one round trip: the sync takes a snapshot before and after every write.
_SNAPSHOT_SQL = """
SELECT c.email, c.name, c.phone, c.address, c.tax_ids, c.card_brand, c.card_last4,
       s.stripe_subscription_id, s.status, s.cancel_at, s.cancel_at_period_end, s.current_period_start,
       s.current_period_end, s.ended_at, p.id AS price_id, p.interval, pl.name AS plan_name
FROM (SELECT 1) AS one
LEFT JOIN customer c ON c.user_id = {}
LEFT JOIN LATERAL (
    SELECT * FROM subscription WHERE user_id = {} ORDER BY (status = ANY({})) DESC, id DESC LIMIT 1
) s ON true
LEFT JOIN price p ON p.id = s.price_id
LEFT JOIN plan pl ON pl.id = p.plan_id
"""


async def snapshot(user_id: int) -> dict[str, Any]:
    """The person's billing state from the local copy, as JSON-ready data (times as ISO 8601 UTC)."""
    (row,) = await Customer.raw(_SNAPSHOT_SQL, user_id, user_id, list(LIVE_STATUSES))
    return _snapshot_from(row)


def snapshot_of(
    customer: Customer | None, sub: Subscription | None, price: Price | None, plan: Plan | None
) -> dict[str, Any]:
    """`snapshot` from rows already read: the customer, the subscription it describes (the newest live
    one, else the newest), and that subscription's price and plan."""
    fields = ("email", "name", "phone", "address", "tax_ids", "card_brand", "card_last4")
    row: dict[str, Any] = {name: getattr(customer, name) if customer is not None else None for name in fields}
    sub_fields = ("status", "cancel_at", "cancel_at_period_end", "current_period_start", "current_period_end")
    row.update({name: getattr(sub, name) if sub is not None else None for name in sub_fields})
    row["ended_at"] = sub.ended_at if sub is not None else None
    row["stripe_subscription_id"] = sub.stripe_subscription_id if sub is not None else None
    row["price_id"] = price.id if price is not None else None
    row["interval"] = price.interval if price is not None else None
    row["plan_name"] = plan.name if plan is not None else None
    return _snapshot_from(row)


def _snapshot_from(row: Mapping[str, Any]) -> dict[str, Any]:
    """The snapshot's JSON-ready shape from one row of `_SNAPSHOT_SQL`'s columns."""
    plan_label = None
    if row["price_id"] is not None:
        interval = INTERVAL_WORDS.get(row["interval"] or "", row["interval"] or "")
        plan_label = f"{row['plan_name'] or 'Plan'} {interval}".strip()
    card = None
    if row["card_last4"]:
        card = f"{(row['card_brand'] or 'card').title()} •••• {row['card_last4']}"

    def iso(value: datetime | None) -> str | None:
        return value.isoformat() if value else None

    has_sub = row["stripe_subscription_id"] is not None
    return {
        "card": card,
        "subscription_id": row["stripe_subscription_id"],
        "plan": plan_label,
        "status": row["status"],
        "cancel_at": iso(
            (row["cancel_at"] or (row["current_period_end"] if row["cancel_at_period_end"] else None))
            if has_sub
            else None
        ),
        "period_start": iso(row["current_period_start"]),
        "ended_at": iso(row["ended_at"]),
        "email": row["email"],
        "name": row["name"],
        "phone": row["phone"],
        "address": row["address"],
        "tax_ids": row["tax_ids"],
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
    1 Dec 2026", "Cancels on 23 Dec 2026", "Billing email: a@example.com → b@example.com",
    "Billing address: 1 Main St, 10115, Berlin, DE". Each of email, name, phone, address and tax ids
    is named only when it changed (an address whose parts went from null to blank did not). Empty
    when nothing changed. The sentences are in the language of `locale` (`de_CH` → German).
    """
    zone = ZoneInfo(tz)
    gettext = translations(language_of(locale) or "en").ugettext

    def _(message: str, /, **variables: str) -> str:
        return gettext(message) % variables if variables else gettext(message)

    changes: list[Change] = []
    if before.get("card") != after.get("card"):
        old, new = before.get("card"), after.get("card")
        if old and new:
            text = _("Payment method: %(old)s → %(new)s", old=old, new=new)
        elif new:
            text = _("Payment method: %(new)s", new=new)
        else:
            text = _("Payment method: removed")
        changes.append(Change("payment_method", old, new, text))
    if before.get("plan") != after.get("plan") and after.get("plan"):
        old, new = before.get("plan"), after.get("plan")
        since = _date(after.get("period_start"), locale, zone)
        shown_old, shown_new = _plan_label(old, gettext), _plan_label(new, gettext)
        if old and since:
            text = _("Plan: %(old)s → %(new)s, from %(date)s", old=shown_old, new=shown_new, date=since)
        elif old:
            text = _("Plan: %(old)s → %(new)s", old=shown_old, new=shown_new)
        else:
            text = _("Plan: %(new)s", new=shown_new)
        changes.append(Change("plan", old, new, text))
    if before.get("status") != after.get("status") and after.get("status"):
        old, new = before.get("status"), after.get("status")
        if new == "canceled":
            ended = _date(after.get("ended_at"), locale, zone)
            text = _("Subscription canceled on %(date)s", date=ended) if ended else _("Subscription canceled")
        else:
            text = _(
                "Status: %(old)s → %(new)s",
                old=gettext(STATUS_WORDS[old]) if old in STATUS_WORDS else (old or _("none")),
                new=gettext(STATUS_WORDS[str(new)]) if str(new) in STATUS_WORDS else str(new),
            )
        changes.append(Change("status", old, new, text))
    if before.get("cancel_at") != after.get("cancel_at") and after.get("status") != "canceled":
        old, new = before.get("cancel_at"), after.get("cancel_at")
        if new:
            text = _("Cancels on %(date)s", date=_date(new, locale, zone))
        else:
            text = _("Cancellation withdrawn: your plan renews as usual")
        changes.append(Change("cancellation", old, new, text))
    for kind, label in (("email", N_("Billing email")), ("name", N_("Billing name")), ("phone", N_("Phone"))):
        old, new = before.get(kind) or None, after.get(kind) or None
        if old != new:
            changes.append(Change(kind, old, new, _from_to(gettext(label), old, new, _)))
    old_address, new_address = _address(before.get("address")), _address(after.get("address"))
    if old_address != new_address:
        old, new = _flat(old_address), _flat(new_address)
        changes.append(Change("address", old, new, _from_to(_("Billing address"), old, new, _)))
    old_tax, new_tax = _tax_ids(before.get("tax_ids")), _tax_ids(after.get("tax_ids"))
    if old_tax != new_tax:
        old, new = ", ".join(old_tax) or None, ", ".join(new_tax) or None
        changes.append(Change("tax_ids", old, new, _from_to(_("Tax ID"), old, new, _)))
    return changes


def _plan_label(label: str | None, gettext: Any) -> str:
    """ "Pro monthly" (as the snapshot keeps it) with the interval word translated: "Pro monatlich"."""
    name, _, word = (label or "").rpartition(" ")
    if name and word in INTERVAL_WORDS.values():
        return f"{name} {gettext(word)}"
    return label or ""


def _from_to(label: str, old: str | None, new: str | None, _: Any) -> str:
    """ "Billing email: a@x → b@x", "Phone: +1 555 0100" (added), "Tax ID removed (DE123)"."""
    if old and new:
        return str(_("%(label)s: %(old)s → %(new)s", label=label, old=old, new=new))
    if new:
        return str(_("%(label)s: %(new)s", label=label, new=new))
    return str(_("%(label)s removed (%(old)s)", label=label, old=str(old)))


def _address(value: Any) -> dict[str, str] | None:
    """An address without its empty parts (Stripe's null and a blank form field mean the same); None if empty."""
    if not isinstance(value, dict):
        return None
    parts = {k: str(v).strip() for k, v in value.items() if v is not None and str(v).strip()}
    return parts or None


ADDRESS_ORDER = ("line1", "line2", "postal_code", "city", "state", "country")


def _tax_ids(value: Any) -> list[str]:
    """Tax ids as their values, in a stable order."""
    if not isinstance(value, list):
        return []
    return sorted(str(v.get("value")) if isinstance(v, dict) else str(v) for v in value if v)


def _flat(value: Any) -> str | None:
    if not value:
        return None
    if isinstance(value, dict):
        ordered = [value[k] for k in ADDRESS_ORDER if value.get(k)] + [
            v for k, v in value.items() if k not in ADDRESS_ORDER and v
        ]
        return ", ".join(str(v) for v in ordered)
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
