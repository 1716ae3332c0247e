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
        "name": customer.name if customer else None,
        "phone": customer.phone if customer else None,
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
