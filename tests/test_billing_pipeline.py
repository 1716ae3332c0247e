"""Plans, Checkout and the webhook pipeline against the offline Stripe emulator over real HTTP."""

from __future__ import annotations

import asyncio
import logging
import time
from typing import Any

import httpx
import pytest

from app.billing.tables import Customer, PaymentTransaction, StripeEvent, Subscription
from app.webhooks import service as webhook_service
from app.webhooks.service import drain, process_next
from tests.conftest import WEBHOOK_SECRET
from tests.support.billing import buy, chaos, checkout_url, settle, signed_in_user
from tests.support.stripe import event_body, pay_on_checkout_page, sign

Client = httpx.AsyncClient


async def post_event(client: Client, event: dict[str, Any], secret: str = WEBHOOK_SECRET, **kw: Any) -> httpx.Response:
    body = event_body(event)
    return await client.post(
        "/webhooks/stripe",
        content=body,
        headers={"Stripe-Signature": sign(body, secret, **kw), "Content-Type": "application/json"},
    )


def fake_event(event_id: str = "evt_test_1", livemode: bool = False) -> dict[str, Any]:
    return {
        "id": event_id,
        "object": "event",
        "api_version": "2026-10-28.endive",
        "created": int(time.time()),
        "livemode": livemode,
        "type": "customer.updated",
        "data": {"object": {"id": "cus_nobody", "object": "customer", "metadata": {}}},
    }


# Webhook endpoint


async def test_bad_signature_is_refused_and_nothing_is_stored(billing_client: Client) -> None:
    response = await post_event(billing_client, fake_event(), secret="whsec_wrong")
    assert response.status_code == 400
    missing = await billing_client.post("/webhooks/stripe", content=event_body(fake_event()))
    assert missing.status_code == 400
    assert await StripeEvent.count() == 0


async def test_accepted_deliveries_are_logged_at_debug_and_refused_ones_at_info(
    billing_client: Client, caplog: pytest.LogCaptureFixture
) -> None:
    def access_lines(level: int) -> list[dict[str, Any]]:
        return [
            r.msg
            for r in caplog.records
            if r.name == "app.access" and r.levelno == level and isinstance(r.msg, dict)
            and r.msg.get("path") == "/webhooks/stripe"
        ]  # fmt: skip

    with caplog.at_level(logging.DEBUG, logger="app.access"):
        accepted = await post_event(billing_client, fake_event("evt_logged"))
        refused = await post_event(billing_client, fake_event("evt_refused"), secret="whsec_wrong")
    assert refused.status_code == 400
    assert accepted.status_code == 200 and accepted.json() == {"received": True, "duplicate": False}
    assert accepted.headers["x-request-id"] and "content-security-policy" in accepted.headers
    assert [line["status"] for line in access_lines(logging.DEBUG)] == [200]
    assert [line["status"] for line in access_lines(logging.INFO)] == [400]


async def test_stale_or_future_timestamp_is_refused(billing_client: Client) -> None:
    stale = await post_event(billing_client, fake_event("evt_old"), timestamp=int(time.time()) - 400)
    future = await post_event(billing_client, fake_event("evt_future"), timestamp=int(time.time()) + 400)
    assert stale.status_code == 400 and future.status_code == 400
    assert await StripeEvent.count() == 0


async def test_oversized_body_gets_413_and_nothing_is_stored(billing_client: Client) -> None:
    body = b"{" + b" " * (1024 * 1024) + b"}"
    response = await billing_client.post(
        "/webhooks/stripe", content=body, headers={"Stripe-Signature": sign(body, WEBHOOK_SECRET)}
    )
    assert response.status_code == 413
    assert await StripeEvent.count() == 0


async def test_livemode_event_is_refused_with_a_test_key(billing_client: Client) -> None:
    response = await post_event(billing_client, fake_event("evt_live", livemode=True))
    assert response.status_code == 400
    assert await StripeEvent.count() == 0


async def test_rotated_secrets_are_all_accepted(billing_client: Client) -> None:
    assert (await post_event(billing_client, fake_event("evt_a"))).status_code == 200
    assert (await post_event(billing_client, fake_event("evt_b"), secret="whsec_unused")).status_code == 400


async def test_duplicate_event_is_acknowledged_once(billing_client: Client) -> None:
    first = await post_event(billing_client, fake_event())
    second = await post_event(billing_client, fake_event())
    assert first.status_code == second.status_code == 200
    assert first.json()["duplicate"] is False and second.json()["duplicate"] is True
    assert await StripeEvent.count() == 1


async def test_unhandled_event_types_are_stored_as_ignored(billing_client: Client) -> None:
    event = fake_event("evt_ignored") | {"type": "issuing_card.created"}
    assert (await post_event(billing_client, event)).status_code == 200
    row = await StripeEvent.objects().get(StripeEvent.stripe_event_id == "evt_ignored")
    assert row is not None and row.status == "ignored"


# Checkout and the local copy


async def test_paying_for_a_plan_shows_it_active_on_success_page_and_account(
    billing_client: Client, oidc_provider: Any, stripe_emulator: Any, gateway: Any
) -> None:
    await signed_in_user(billing_client, oidc_provider, "ada")
    plans = await billing_client.get("/plans")
    assert "$19.00" in plans.text and "Upgrade now" in plans.text
    success = await buy(billing_client, "pro_monthly")
    assert success.status_code == 200
    assert "Thank you" in success.text and 'data-status="active"' in success.text
    account = await billing_client.get("/account")
    assert 'data-testid="plan-name">Pro' in account.text
    assert 'data-status="active"' in account.text
    assert "Renews on" in account.text
    assert "Visa" in account.text and "4242" in account.text
    await settle(stripe_emulator.url)
    assert await drain(gateway) > 0
    assert await Subscription.count() == 1
    assert await PaymentTransaction.count() == 1


async def test_success_page_is_right_before_any_webhook(
    billing_client: Client, oidc_provider: Any, stripe_emulator: Any, gateway: Any
) -> None:
    await chaos(stripe_emulator.url, hold=True)
    await signed_in_user(billing_client, oidc_provider, "grace")
    success = await buy(billing_client, "starter_yearly")
    assert await StripeEvent.count() == 0, "no webhook has arrived yet"
    assert 'data-status="active"' in success.text
    reload = await billing_client.get(str(success.request.url))
    assert 'data-status="active"' in reload.text
    await chaos(stripe_emulator.url, hold=False)
    await settle(stripe_emulator.url)
    assert await StripeEvent.count() > 0
    await drain(gateway)
    subscriptions = await Subscription.objects()
    assert len(subscriptions) == 1 and subscriptions[0].status == "active"


async def test_declined_card_leaves_no_subscription(
    billing_client: Client, oidc_provider: Any, stripe_emulator: Any, gateway: Any
) -> None:
    await signed_in_user(billing_client, oidc_provider, "dora")
    declined = await pay_on_checkout_page(await checkout_url(billing_client, "pro_monthly"), card="4000000000000002")
    assert declined.status_code in (200, 402)
    assert "declined" in declined.text.lower()
    await settle(stripe_emulator.url)
    await drain(gateway)
    assert await Subscription.count() == 0
    account = await billing_client.get("/account")
    assert "You don't have a plan yet" in account.text
    assert await Customer.count() <= 1


async def test_lifetime_purchase_shows_lifetime_access(
    billing_client: Client, oidc_provider: Any, stripe_emulator: Any
) -> None:
    await signed_in_user(billing_client, oidc_provider, "linus")
    success = await buy(billing_client, "pro_lifetime")
    assert "lifetime access" in success.text
    account = await billing_client.get("/account")
    assert 'data-testid="lifetime-status"' in account.text
    assert 'data-testid="plan-name">Pro' in account.text
    payment = await PaymentTransaction.objects().first()
    assert payment is not None and payment.status == "succeeded" and payment.amount_cents == 49900
    assert payment.description == "Pro — lifetime access"


async def test_subscriber_is_not_sent_to_a_second_checkout(
    billing_client: Client, oidc_provider: Any, stripe_emulator: Any
) -> None:
    await signed_in_user(billing_client, oidc_provider, "sam")
    await buy(billing_client, "starter_monthly")
    plans = await billing_client.get("/plans")
    assert "Upgrade now" not in plans.text and "Manage Subscription" in plans.text
    csrf = billing_client.cookies.get("billing_csrf") or ""
    again = await billing_client.post("/billing/checkout", data={"price": "pro_monthly", "_csrf_token": csrf})
    assert again.status_code == 303 and again.headers["location"] == "/account"
    account = await billing_client.get("/account")
    assert "You already have a subscription" in account.text


async def test_two_simultaneous_checkout_clicks_make_one_customer(
    billing_client: Client, oidc_provider: Any, gateway: Any
) -> None:
    await signed_in_user(billing_client, oidc_provider, "twin")
    csrf = (await billing_client.get("/plans")).cookies.get("billing_csrf") or billing_client.cookies.get(
        "billing_csrf"
    )
    responses = await asyncio.gather(
        *[
            billing_client.post("/billing/checkout", data={"price": "pro_monthly", "_csrf_token": csrf or ""})
            for _ in range(5)
        ]
    )
    assert all(r.status_code == 303 for r in responses)
    assert await Customer.count() == 1
    assert len(await gateway.list_customers_by_email("twin@example.com")) == 1


async def test_existing_customer_with_verified_email_is_linked(
    billing_client: Client, oidc_provider: Any, gateway: Any
) -> None:
    existing = await gateway.client.v1.customers.create_async(params={"email": "vera@example.com"})
    await signed_in_user(billing_client, oidc_provider, "vera", verified=True)
    await checkout_url(billing_client, "pro_monthly")
    customer = await Customer.objects().first()
    assert customer is not None and customer.stripe_customer_id == existing.id


async def test_existing_customer_is_not_linked_when_email_is_unverified(
    billing_client: Client, oidc_provider: Any, gateway: Any
) -> None:
    existing = await gateway.client.v1.customers.create_async(params={"email": "uma@example.com"})
    await signed_in_user(billing_client, oidc_provider, "uma", verified=False)
    await checkout_url(billing_client, "pro_monthly")
    customer = await Customer.objects().first()
    assert customer is not None and customer.stripe_customer_id != existing.id


async def test_another_users_checkout_session_is_404(billing_client: Client, oidc_provider: Any, app_port: int) -> None:
    await signed_in_user(billing_client, oidc_provider, "owner")
    paid = await pay_on_checkout_page(await checkout_url(billing_client, "pro_monthly"))
    success_path = paid.headers["location"]
    async with httpx.AsyncClient(base_url=str(billing_client.base_url), timeout=30) as other:
        await signed_in_user(other, oidc_provider, "intruder")
        response = await other.get(success_path)
        assert response.status_code == 404
    bogus = await billing_client.get("/billing/checkout/success?session_id=cs_test_doesnotexist")
    assert bogus.status_code == 404


# Disorder, duplicates and failures


async def _stripe_events(gateway: Any) -> list[dict[str, Any]]:
    return [e async for e in gateway.events()]


async def test_subscription_updated_after_deleted_stays_canceled(
    billing_client: Client, oidc_provider: Any, stripe_emulator: Any, gateway: Any
) -> None:
    await chaos(stripe_emulator.url, hold=True)
    await signed_in_user(billing_client, oidc_provider, "otto")
    await buy(billing_client, "pro_monthly")
    sub = await Subscription.objects().first()
    assert sub is not None
    remote = await gateway.client.v1.subscriptions.retrieve_async(sub.stripe_subscription_id)
    item_id = remote["items"]["data"][0]["id"]
    await gateway.client.v1.subscriptions.update_async(
        sub.stripe_subscription_id, params={"items": [{"id": item_id, "quantity": 2}]}
    )
    await gateway.client.v1.subscriptions.cancel_async(sub.stripe_subscription_id)
    events = await _stripe_events(gateway)
    deleted = next(e for e in events if e["type"] == "customer.subscription.deleted")
    updated = next(e for e in events if e["type"] == "customer.subscription.updated")
    # Delivered in the wrong order, one at a time, each applied before the next arrives.
    assert (await post_event(billing_client, deleted)).status_code == 200
    await drain(gateway)
    assert (await post_event(billing_client, updated)).status_code == 200
    await drain(gateway)
    refreshed = await Subscription.objects().get(Subscription.id == sub.id)
    assert refreshed is not None and refreshed.status == "canceled"
    account = await billing_client.get("/account")
    assert "subscription ended on" in account.text


async def test_concurrent_duplicate_deliveries_make_one_row_and_one_effect(
    billing_client: Client, oidc_provider: Any, stripe_emulator: Any, gateway: Any
) -> None:
    await chaos(stripe_emulator.url, hold=True)
    await signed_in_user(billing_client, oidc_provider, "dup")
    await buy(billing_client, "pro_monthly")
    events = await _stripe_events(gateway)
    completed = next(e for e in events if e["type"] == "checkout.session.completed")
    responses = await asyncio.gather(*[post_event(billing_client, completed) for _ in range(8)])
    assert all(r.status_code == 200 for r in responses)
    assert sum(1 for r in responses if r.json()["duplicate"] is False) == 1
    assert await StripeEvent.count() == 1
    assert await drain(gateway) == 1
    row = await StripeEvent.objects().first()
    assert row is not None and row.status == "processed" and row.attempts == 1
    assert await Subscription.count() == 1 and await PaymentTransaction.count() == 1


async def test_crash_mid_event_writes_nothing_and_the_event_is_retried(
    billing_client: Client, oidc_provider: Any, stripe_emulator: Any, gateway: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    await chaos(stripe_emulator.url, hold=True)
    await signed_in_user(billing_client, oidc_provider, "crash")
    paid = await pay_on_checkout_page(await checkout_url(billing_client, "pro_monthly"))
    assert paid.status_code == 303  # paid, but the success page is never opened
    events = await _stripe_events(gateway)
    completed = next(e for e in events if e["type"] == "checkout.session.completed")
    await post_event(billing_client, completed)

    from app.billing import sync as sync_module

    original = sync_module.upsert_payment

    async def crash(*args: Any, **kwargs: Any) -> None:
        raise RuntimeError("worker died half-way")

    monkeypatch.setattr(sync_module, "upsert_payment", crash)
    assert await process_next(gateway) == 1
    row = await StripeEvent.objects().first()
    assert row is not None and row.status == "failed" and row.attempts == 1 and "half-way" in (row.last_error or "")
    assert await Subscription.count() == 0, "the subscription written before the crash was rolled back"

    monkeypatch.setattr(sync_module, "upsert_payment", original)
    assert await process_next(gateway) == 0, "a failed event waits for its backoff"
    await StripeEvent.update({StripeEvent.next_attempt_at: row.received_at}).where(StripeEvent.id == row.id)
    assert await process_next(gateway) == 1
    row = await StripeEvent.objects().first()
    assert row is not None and row.status == "processed" and row.attempts == 2
    assert await Subscription.count() == 1 and await PaymentTransaction.count() == 1


async def test_rate_limited_sync_postpones_instead_of_failing(
    billing_client: Client, monkeypatch: pytest.MonkeyPatch, gateway: Any
) -> None:
    from app.stripe_gateway import StripeRateLimited

    await post_event(
        billing_client, fake_event("evt_busy") | {"data": {"object": {"id": "cus_busy", "object": "customer"}}}
    )

    async def limited(*args: Any, **kwargs: Any) -> Any:
        raise StripeRateLimited("Stripe is rate limiting requests.")

    monkeypatch.setattr(webhook_service, "sync_customer", limited)
    assert await process_next(gateway) == 1
    row = await StripeEvent.objects().first()
    assert row is not None and row.status == "pending" and row.attempts == 0
    assert "rate limiting" in (row.last_error or "")


async def test_many_changes_under_shuffled_duplicated_delivery_converge(
    billing_client: Client, oidc_provider: Any, stripe_emulator: Any, gateway: Any
) -> None:
    """200 subscription changes, delivered shuffled and duplicated: the local copy equals Stripe's."""
    async with httpx.AsyncClient(base_url=stripe_emulator.url) as http:
        catalogue_events = {d["event"] for d in (await http.get("/_emulator/deliveries")).json()["data"]}
    await chaos(stripe_emulator.url, shuffle=True, duplicate=True)
    subscription_ids = []
    for name in ("mia", "noa", "ola", "pia"):
        async with httpx.AsyncClient(base_url=str(billing_client.base_url), timeout=30) as person:
            await signed_in_user(person, oidc_provider, name)
            await buy(person, "starter_monthly")
    for sub in await Subscription.objects():
        subscription_ids.append(sub.stripe_subscription_id)
    prices = {
        p["lookup_key"]: p["id"]
        async for p in gateway.prices(lookup_keys=["starter_monthly", "pro_monthly", "business_yearly"])
    }
    cycle = [
        {"items": [{"price": prices["pro_monthly"]}], "proration_behavior": "none"},
        {"items": [{"quantity": 3}]},
        {"cancel_at_period_end": True},
        {"cancel_at_period_end": False},
        {"items": [{"price": prices["business_yearly"]}], "proration_behavior": "none"},
    ]
    for step in range(200):
        sub_id = subscription_ids[step % len(subscription_ids)]
        remote = await gateway.client.v1.subscriptions.retrieve_async(sub_id)
        params = dict(cycle[(step // len(subscription_ids)) % len(cycle)])
        if "items" in params:
            params["items"] = [{"id": remote["items"]["data"][0]["id"], **params["items"][0]}]
        await gateway.client.v1.subscriptions.update_async(sub_id, params=params)
    await settle(stripe_emulator.url, seconds=60)
    await drain(gateway)
    for sub_id in subscription_ids:
        remote = (await gateway.client.v1.subscriptions.retrieve_async(sub_id)).to_dict(recursive=True)
        local = await Subscription.objects().get(Subscription.stripe_subscription_id == sub_id)
        assert local is not None
        item = remote["items"]["data"][0]
        assert (local.status, local.stripe_price_id, local.quantity, local.cancel_at_period_end) == (
            remote["status"],
            item["price"]["id"],
            item["quantity"],
            remote["cancel_at_period_end"],
        )
        assert int(local.current_period_end.timestamp()) == item["current_period_end"]
    async with httpx.AsyncClient(base_url=stripe_emulator.url) as http:
        delivered = (await http.get("/_emulator/deliveries")).json()["data"]
    accepted = {d["event"] for d in delivered if d["ok"]} - catalogue_events
    assert any(d["duplicate"] for d in delivered), "the chaos switch duplicated deliveries"
    assert await StripeEvent.count() == len(accepted), "each event stored exactly once"
    assert await StripeEvent.count().where(StripeEvent.status == "failed") == 0
