"""The next charge of a subscription, from Stripe's invoice preview, kept on the local `subscription` row.

`read_next_charge` does the network call (the read phase of a sync); `next_charge_columns` maps its
result to column values (the write phase). Stripe API: https://docs.stripe.com/api/invoices/create_preview
"""

from __future__ import annotations

import logging
from typing import Any

from app.stripe_gateway import StripeGateway, StripeRequestRejected, from_unix

logger = logging.getLogger(__name__)

# Subscriptions that renew and so have a next charge; a pending cancellation has none.
RENEWING_STATUSES = frozenset({"active", "trialing", "past_due"})
EMPTY = {"next_charge_amount_cents": None, "next_charge_currency": None, "next_charge_at": None}


def renews(subscription: dict[str, Any]) -> bool:
    """True when the Stripe Subscription will be invoiced again (renewing status, no cancellation set)."""
    return (
        subscription.get("status") in RENEWING_STATUSES
        and not subscription.get("cancel_at_period_end")
        and not subscription.get("cancel_at")
    )


async def read_next_charge(gateway: StripeGateway, subscription: dict[str, Any]) -> dict[str, Any] | None:
    """Stripe's preview of the next invoice of a Stripe Subscription (a dict shaped like an Invoice),
    or None when it will not renew or Stripe refuses the preview (4xx: nothing to invoice).

    Raises:
        StripeUnavailable: Stripe did not answer (the caller's sync fails and is retried).
    """
    if not renews(subscription):
        return None
    customer = subscription.get("customer")
    customer_id = customer.get("id") if isinstance(customer, dict) else customer
    try:
        return await gateway.preview_next_invoice(str(customer_id), str(subscription["id"]))
    except StripeRequestRejected as exc:
        logger.info("No invoice preview for %s: %s", subscription.get("id"), exc)
        return None


def next_charge_columns(preview: dict[str, Any] | None) -> dict[str, Any]:
    """`subscription` column values for a preview: amount due (minor units), ISO currency, and the
    charge time (UTC; `next_payment_attempt`, else the period end). All None without a preview."""
    if not preview:
        return dict(EMPTY)
    at = preview.get("next_payment_attempt") or preview.get("period_end")
    return {
        "next_charge_amount_cents": int(preview.get("amount_due") or 0),
        "next_charge_currency": str(preview.get("currency") or "usd").lower(),
        "next_charge_at": from_unix(at) if at else None,
    }
