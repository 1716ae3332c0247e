""" "Keep my plan": withdraw a pending cancellation at Stripe, then sync the local copy."""

from __future__ import annotations

import logging

from app.auth.tables import User
from app.billing.service import active_subscription
from app.billing.sync import sync_customer
from app.billing.tables import Customer, Subscription
from app.stripe_gateway import StripeGateway, StripeUnavailable

logger = logging.getLogger(__name__)


class NothingToKeep(Exception):
    """The person has no subscription that is set to cancel."""


async def keep_plan(gateway: StripeGateway, user: User) -> Subscription:
    """Set `cancel_at_period_end=false` on the person's cancelling subscription
    (https://docs.stripe.com/api/subscriptions/update), sync that customer, and return the synced row.

    No transaction is held during either Stripe call (the sync takes its own).

    Raises:
        NothingToKeep: no live subscription of this person is set to cancel.
        StripeRequestRejected: Stripe refused (e.g. the subscription ended meanwhile); nothing changed.
        StripeUnavailable: Stripe did not answer the update; nothing is known to have changed.
    """
    subscription = await active_subscription(user.id)
    if subscription is None or not (subscription.cancel_at_period_end or subscription.cancel_at):
        raise NothingToKeep
    customer = await Customer.objects().get(Customer.id == subscription.customer)
    assert customer is not None
    await gateway.withdraw_cancellation(subscription.stripe_subscription_id)
    try:
        await sync_customer(gateway, customer.stripe_customer_id, source="keep_plan")
    except StripeUnavailable:
        # Stripe already kept the plan; its webhook brings the change to the local copy.
        logger.warning("Sync after keeping subscription %s failed", subscription.stripe_subscription_id)
    synced = await Subscription.objects().get(Subscription.id == subscription.id)
    assert synced is not None
    return synced
