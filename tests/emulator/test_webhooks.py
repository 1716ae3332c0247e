"""Webhook events: Stripe's event shape and signatures, retries, delivery_success, chaos switches."""

from __future__ import annotations

import time

import httpx
import stripe

from e2e.stripe_emulator.testing import WebhookReceiver

from .helpers import wait_idle


def test_events_are_signed_like_stripe_and_shaped_like_stripe_events(
    stripe_client: stripe.StripeClient, control: httpx.Client, webhook_receiver: WebhookReceiver
) -> None:
    customer = stripe_client.v1.customers.create(
        params={"email": "hook@example.com"}, options={"idempotency_key": "hook-key-1"}
    )
    webhook_receiver.wait_for_types("customer.created")
    assert not webhook_receiver.rejected
    (event,) = webhook_receiver.of_type("customer.created")
    assert event["id"].startswith("evt_")
    assert event["object"] == "event"
    assert event["api_version"] == stripe.api_version
    assert event["livemode"] is False
    assert isinstance(event["created"], int)
    assert event["pending_webhooks"] == 1
    assert event["request"]["id"].startswith("req_")
    assert event["request"]["idempotency_key"] == "hook-key-1"
    assert event["data"]["object"]["id"] == customer.id


def test_update_events_carry_previous_attributes(
    stripe_client: stripe.StripeClient, control: httpx.Client, webhook_receiver: WebhookReceiver
) -> None:
    customer = stripe_client.v1.customers.create(params={"email": "old@example.com"})
    stripe_client.v1.customers.update(customer.id, params={"email": "new@example.com"})
    (event,) = [e for e in webhook_receiver.wait_for_types("customer.updated") if e["type"] == "customer.updated"]
    assert event["data"]["object"]["email"] == "new@example.com"
    assert event["data"]["previous_attributes"] == {"email": "old@example.com"}


def test_failed_delivery_is_retried_and_then_counts_as_delivered(
    stripe_client: stripe.StripeClient, control: httpx.Client, webhook_receiver: WebhookReceiver
) -> None:
    webhook_receiver.fail_next = 1
    customer = stripe_client.v1.customers.create(params={"email": "retry@example.com"})
    webhook_receiver.wait_for_types("customer.created")
    deliveries = wait_idle(control)["data"]
    attempts = [(d["attempt"], d["status"]) for d in deliveries if d["type"] == "customer.created"]
    assert attempts == [(1, 500), (2, 200)]
    event = stripe_client.v1.events.list(params={"type": "customer.created"}).data[0]
    assert event.data.object.id == customer.id
    assert event.pending_webhooks == 0
    ok = stripe_client.v1.events.list(params={"delivery_success": True}).data
    assert event.id in [e.id for e in ok]


def test_events_whose_deliveries_all_fail_are_listed_as_not_delivered(
    stripe_client: stripe.StripeClient, control: httpx.Client, webhook_receiver: WebhookReceiver
) -> None:
    webhook_receiver.fail_next = 100
    stripe_client.v1.customers.create(params={"email": "lost@example.com"})
    wait_idle(control)
    failed = stripe_client.v1.events.list(params={"delivery_success": False}).data
    assert [e.type for e in failed] == ["customer.created"]
    deliveries = control.get("/_emulator/deliveries").json()["data"]
    assert [d["attempt"] for d in deliveries] == [1, 2, 3]
    webhook_receiver.fail_next = 0


def test_hold_queues_deliveries_until_flush(
    stripe_client: stripe.StripeClient, control: httpx.Client, webhook_receiver: WebhookReceiver
) -> None:
    control.post("/_emulator/chaos", json={"hold": True}).raise_for_status()
    stripe_client.v1.customers.create(params={"email": "held@example.com"})
    time.sleep(0.3)
    assert webhook_receiver.types() == []
    control.post("/_emulator/flush").raise_for_status()
    webhook_receiver.wait_for_types("customer.created")


def test_duplicate_and_shuffle_deliver_every_event_at_least_once(
    stripe_client: stripe.StripeClient, control: httpx.Client, webhook_receiver: WebhookReceiver
) -> None:
    control.post("/_emulator/chaos", json={"hold": True, "duplicate": True, "shuffle": True}).raise_for_status()
    for i in range(5):
        stripe_client.v1.customers.create(params={"email": f"dup{i}@example.com"})
    control.post("/_emulator/flush").raise_for_status()
    events = webhook_receiver.wait_for(lambda evs: len(evs) == 10)
    assert len({e["id"] for e in events}) == 5


def test_delay_postpones_deliveries(
    stripe_client: stripe.StripeClient, control: httpx.Client, webhook_receiver: WebhookReceiver
) -> None:
    control.post("/_emulator/chaos", json={"delay_seconds": 0.5}).raise_for_status()
    started = time.monotonic()
    stripe_client.v1.customers.create(params={"email": "late@example.com"})
    webhook_receiver.wait_for_types("customer.created")
    assert time.monotonic() - started >= 0.45


def test_endpoints_only_get_their_enabled_events(
    stripe_client: stripe.StripeClient, control: httpx.Client, webhook_receiver: WebhookReceiver
) -> None:
    second = WebhookReceiver(secret="unused")
    try:
        endpoint = stripe_client.v1.webhook_endpoints.create(
            params={"url": second.url, "enabled_events": ["customer.deleted"]}
        )
        assert endpoint.secret and endpoint.secret.startswith("whsec_")
        second.secret = endpoint.secret
        customer = stripe_client.v1.customers.create(params={"email": "filter@example.com"})
        stripe_client.v1.customers.delete(customer.id)
        second.wait_for_types("customer.deleted")
        webhook_receiver.wait_for_types("customer.created", "customer.deleted")
        assert second.types() == ["customer.deleted"]
        listed = stripe_client.v1.webhook_endpoints.list().data
        assert len(listed) == 2
        stripe_client.v1.webhook_endpoints.delete(endpoint.id)
    finally:
        second.stop()


def test_event_list_filters_by_type_types_and_created(
    stripe_client: stripe.StripeClient, control: httpx.Client
) -> None:
    customer = stripe_client.v1.customers.create(params={"email": "filters@example.com"})
    stripe_client.v1.customers.update(customer.id, params={"name": "Filters"})
    product = stripe_client.v1.products.create(params={"name": "Filters"})
    by_type = stripe_client.v1.events.list(params={"type": "customer.updated"}).data
    assert [e.type for e in by_type] == ["customer.updated"]
    wildcard = stripe_client.v1.events.list(params={"type": "customer.*"}).data
    assert [e.type for e in wildcard] == ["customer.updated", "customer.created"]
    several = stripe_client.v1.events.list(params={"types": ["customer.created", "product.created"]}).data
    assert [e.type for e in several] == ["product.created", "customer.created"]
    future = stripe_client.v1.events.list(params={"created": {"gte": int(time.time()) + 3600}}).data
    assert future == []
    one = stripe_client.v1.events.retrieve(by_type[0].id)
    assert one.data.previous_attributes.name is None
    assert product.id


def test_reset_clears_state_but_keeps_the_start_up_endpoint(
    stripe_client: stripe.StripeClient, control: httpx.Client, webhook_receiver: WebhookReceiver
) -> None:
    stripe_client.v1.customers.create(params={"email": "gone@example.com"})
    control.post("/_emulator/chaos", json={"hold": True})
    control.post("/_emulator/reset").raise_for_status()
    assert stripe_client.v1.customers.list().data == []
    endpoints = stripe_client.v1.webhook_endpoints.list().data
    assert [e.url for e in endpoints] == [webhook_receiver.url]
    webhook_receiver.clear()
    stripe_client.v1.customers.create(params={"email": "after-reset@example.com"})
    webhook_receiver.wait_for_types("customer.created")
