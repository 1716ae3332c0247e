"""The worker's syncs read only what their events are about, with each part's own high-water mark,
and never send Stripe more requests per second than their budget.

Real parts: the app over HTTP, the Stripe emulator (its renewals, its per-second request counts),
PostgreSQL.
"""

from __future__ import annotations

import asyncio
import time
from typing import Any

import httpx
import pytest

from app.billing.sync import ReadScope, apply_customer, read_customer
from app.billing.tables import Customer, PaymentTransaction, StripeEvent, Subscription
from app.settings import Settings
from app.stripe_gateway import StripeGateway
from app.webhooks.service import process_next
from tests.support.billing import buy, settle, signed_in_user

Client = httpx.AsyncClient
DAY = 86400


async def _subscriber(client: Client, oidc_provider: Any, gateway: Any, subject: str) -> Customer:
    await signed_in_user(client, oidc_provider, subject)
    await buy(client, "pro_monthly")
    await settle(gateway.settings.api_base)
    while await process_next(gateway):
        pass
    customer = await Customer.objects().first()
    assert customer is not None
    return customer


async def test_a_renewal_is_applied_with_at_most_two_stripe_requests_per_sync(
    billing_client: Client, oidc_provider: Any, gateway: Any, emulator_control: httpx.Client
) -> None:
    customer = await _subscriber(billing_client, oidc_provider, gateway, "renewing")
    before = await Subscription.objects().first()
    assert before is not None and before.current_period_end is not None
    await StripeEvent.delete(force=True)
    seconds = int(before.current_period_end.timestamp()) - int(time.time()) + DAY
    async with httpx.AsyncClient(base_url=gateway.settings.api_base) as control:
        (await control.post("/_emulator/clock/advance", json={"seconds": seconds})).raise_for_status()
    await settle(gateway.settings.api_base)
    types = {row["type"] for row in await StripeEvent.select(StripeEvent.type)}
    assert {"customer.subscription.updated", "invoice.paid", "payment_intent.succeeded"} <= types, types

    calls, syncs = gateway.calls, 0
    while await process_next(gateway):
        syncs += 1
    assert syncs >= 1 and (gateway.calls - calls) <= 2 * syncs, (gateway.calls - calls, syncs)

    remote = await gateway.retrieve_subscription(before.stripe_subscription_id)
    item = remote["items"]["data"][0]
    after = await Subscription.objects().get(Subscription.id == before.id)
    assert after is not None and int(after.current_period_end.timestamp()) == item["current_period_end"]
    assert after.next_charge_at is not None and int(after.next_charge_at.timestamp()) == item["current_period_end"]
    intents = [pi async for pi in gateway.payment_intents_of(customer.stripe_customer_id)]
    payments = await PaymentTransaction.objects().order_by(PaymentTransaction.created_at)
    assert sorted(p.stripe_payment_intent_id for p in payments) == sorted(pi["id"] for pi in intents)
    renewal = payments[-1]
    assert renewal.status == "succeeded" and renewal.payment_method_last4 == "4242"
    assert renewal.hosted_invoice_url and renewal.stripe_invoice_id and renewal.subscription == before.id
    history = await billing_client.get("/billing/history")
    assert history.text.count("4242") >= 2, "both payments are listed with their card"


async def test_an_older_read_of_a_subscription_never_overwrites_a_newer_one(
    billing_client: Client, oidc_provider: Any, gateway: Any
) -> None:
    customer = await _subscriber(billing_client, oidc_provider, gateway, "older-sub-read")
    sub = await Subscription.objects().first()
    assert sub is not None
    only_it = ReadScope(subscription_ids=frozenset({sub.stripe_subscription_id}))
    older = await read_customer(gateway, customer.stripe_customer_id, scope=only_it)
    remote = await gateway.retrieve_subscription(sub.stripe_subscription_id)
    await gateway.client.v1.subscriptions.update_async(
        sub.stripe_subscription_id, params={"items": [{"id": remote["items"]["data"][0]["id"], "quantity": 3}]}
    )
    newer = await read_customer(gateway, customer.stripe_customer_id, scope=only_it)
    assert not (await apply_customer(newer)).stale
    assert (await apply_customer(older)).stale
    row = await Subscription.objects().get(Subscription.id == sub.id)
    assert row is not None and row.quantity == 3


async def test_a_partial_read_leaves_the_parts_it_did_not_read_alone(
    billing_client: Client, oidc_provider: Any, gateway: Any
) -> None:
    customer = await _subscriber(billing_client, oidc_provider, gateway, "partial-read")
    sub = await Subscription.objects().first()
    assert sub is not None
    # A full read that began first but is written last: the newer subscription read must win,
    # and the full read still brings the customer's new email (a part no newer read touched).
    full = await read_customer(gateway, customer.stripe_customer_id)
    await gateway.client.v1.customers.update_async(customer.stripe_customer_id, params={"email": "moved@example.com"})
    await gateway.client.v1.subscriptions.update_async(
        sub.stripe_subscription_id, params={"cancel_at_period_end": True}
    )
    scoped = await read_customer(
        gateway, customer.stripe_customer_id, scope=ReadScope(subscription_ids=frozenset({sub.stripe_subscription_id}))
    )
    assert scoped.customer is None and scoped.active_entitlements is None and not scoped.payment_intents
    await apply_customer(scoped)
    row = await Customer.objects().get(Customer.id == customer.id)
    assert row is not None and row.email == "partial-read@example.com", "the customer was not read, so not written"
    result = await apply_customer(full)
    assert not result.stale
    refreshed = await Subscription.objects().get(Subscription.id == sub.id)
    assert refreshed is not None and refreshed.cancel_at_period_end, "the older full read lost on the subscription"
    assert "Cancels on" in (await billing_client.get("/account")).text


@pytest.mark.parametrize("budget", [5, 12])
async def test_the_gateway_never_exceeds_its_request_budget_at_stripe(
    billing_settings: Settings, emulator_control: httpx.Client, budget: int
) -> None:
    """Counted per wall-clock second by the emulator, as Stripe's rate limiter would count them."""
    gateway = StripeGateway(billing_settings.stripe, rate_limit=budget)
    customer = await gateway.create_customer(email=None, name=None, metadata={}, idempotency_key=f"budget-{budget}")
    async with httpx.AsyncClient(base_url=billing_settings.stripe.api_base or "") as control:
        (await control.post("/_emulator/requests/clear")).raise_for_status()
        started = time.monotonic()
        await asyncio.gather(*(gateway.retrieve_customer(customer["id"]) for _ in range(4 * budget)))
        elapsed = time.monotonic() - started
        counted = (await control.get("/_emulator/requests")).json()
    assert counted["total"] == 4 * budget == gateway.requests - 1
    assert counted["peak_per_second"] <= budget, counted["per_second"]
    assert elapsed >= 3, "four budgets' worth of requests take at least three seconds"


def test_the_request_budget_defaults_to_stripes_limits_by_key_mode(billing_settings: Settings) -> None:
    test_mode = Settings.from_env({**_env_of(billing_settings), "STRIPE_SECRET_KEY": "sk_test_x"})
    live = Settings.from_env(
        {**_env_of(billing_settings), "STRIPE_SECRET_KEY": "sk_" + "live_x", "STRIPE_API_BASE": ""}
    )
    assert (test_mode.stripe.rate_limit, live.stripe.rate_limit) == (20, 80)
    chosen = Settings.from_env({**_env_of(billing_settings), "STRIPE_RATE_LIMIT": "7", "WORKER_CONCURRENCY": "16"})
    assert (chosen.stripe.rate_limit, chosen.worker.concurrency) == (7, 16)


def _env_of(settings: Settings) -> dict[str, str]:
    return {
        "APP_BASE_URL": settings.app.base_url,
        "SESSION_SECRET": "s" * 40,
        "OIDC_ISSUER": "http://127.0.0.1:9",
        "AUTH0_CLIENT_ID": "client",
        "AUTH0_CLIENT_SECRET": "secret",
        "STRIPE_SECRET_KEY": "sk_test_x",
        "STRIPE_WEBHOOK_SECRET": "whsec_x",
        "DATA_DIR": "/tmp",
    }
