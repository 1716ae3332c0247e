"""Renewals, failed payments and dunning when time moves (global clock and test clocks)."""

from __future__ import annotations

import httpx
import stripe

from e2e.stripe_emulator.testing import WebhookReceiver

from .helpers import DAY, advance, customer_with, monthly_price, subscribe


def test_renewal_invoices_and_charges_the_default_card_and_starts_a_new_period(
    stripe_client: stripe.StripeClient, control: httpx.Client, webhook_receiver: WebhookReceiver
) -> None:
    price = monthly_price(stripe_client)
    customer, _, sub = subscribe(stripe_client, price)
    first_end = sub["items"].data[0].current_period_end
    advance(control, 32 * DAY)

    renewed = stripe_client.v1.subscriptions.retrieve(sub.id)
    assert renewed.status == "active"
    assert renewed["items"].data[0].current_period_start == first_end
    assert renewed["items"].data[0].current_period_end > first_end
    invoices = stripe_client.v1.invoices.list(params={"customer": customer.id}).data
    assert [i.billing_reason for i in invoices] == ["subscription_cycle", "subscription_create"]
    assert invoices[0].status == "paid"
    assert invoices[0].id == renewed.latest_invoice
    webhook_receiver.wait_for(
        lambda evs: (
            sum(e["type"] == "invoice.paid" for e in evs) == 2 and any(e["type"] == "charge.succeeded" for e in evs)
        )
    )


def _failing_renewal(client: stripe.StripeClient) -> tuple[stripe.Subscription, str]:
    price = monthly_price(client)
    customer, _, sub = subscribe(client, price)
    failing = client.v1.payment_methods.attach("pm_card_chargeCustomerFail", params={"customer": customer.id})
    client.v1.customers.update(customer.id, params={"invoice_settings": {"default_payment_method": failing.id}})
    return sub, customer.id


def test_failed_renewal_goes_past_due_then_canceled_after_the_last_retry(
    stripe_client: stripe.StripeClient, control: httpx.Client, webhook_receiver: WebhookReceiver
) -> None:
    sub, _ = _failing_renewal(stripe_client)
    advance(control, 31 * DAY)
    past_due = stripe_client.v1.subscriptions.retrieve(sub.id, params={"expand": ["latest_invoice"]})
    assert past_due.status == "past_due"
    invoice = past_due.latest_invoice
    assert invoice.status == "open"
    assert invoice.attempt_count == 1
    assert invoice.next_payment_attempt is not None
    webhook_receiver.wait_for_types("invoice.payment_failed", "payment_intent.payment_failed", "charge.failed")

    advance(control, 3 * DAY + 60)
    assert stripe_client.v1.invoices.retrieve(invoice.id).attempt_count == 2
    assert stripe_client.v1.subscriptions.retrieve(sub.id).status == "past_due"
    advance(control, 5 * DAY)
    canceled = stripe_client.v1.subscriptions.retrieve(sub.id)
    assert canceled.status == "canceled"
    assert canceled.cancellation_details.reason == "payment_failed"
    assert stripe_client.v1.invoices.retrieve(invoice.id).attempt_count == 4
    webhook_receiver.wait_for_types("customer.subscription.deleted")


def test_failed_renewal_can_end_unpaid_when_configured(
    stripe_client: stripe.StripeClient, control: httpx.Client
) -> None:
    control.post("/_emulator/settings", json={"dunning_final_status": "unpaid"}).raise_for_status()
    sub, _ = _failing_renewal(stripe_client)
    advance(control, 40 * DAY)
    assert stripe_client.v1.subscriptions.retrieve(sub.id).status == "unpaid"


def test_retry_after_the_payment_method_is_updated_succeeds(
    stripe_client: stripe.StripeClient, control: httpx.Client
) -> None:
    sub, customer_id = _failing_renewal(stripe_client)
    advance(control, 31 * DAY)
    assert stripe_client.v1.subscriptions.retrieve(sub.id).status == "past_due"
    good = stripe_client.v1.payment_methods.attach("pm_card_mastercard", params={"customer": customer_id})
    stripe_client.v1.customers.update(customer_id, params={"invoice_settings": {"default_payment_method": good.id}})
    advance(control, 3 * DAY + 60)
    recovered = stripe_client.v1.subscriptions.retrieve(sub.id, params={"expand": ["latest_invoice"]})
    assert recovered.status == "active"
    assert recovered.latest_invoice.status == "paid"


def test_paying_an_open_invoice_reactivates_a_past_due_subscription(
    stripe_client: stripe.StripeClient, control: httpx.Client
) -> None:
    sub, customer_id = _failing_renewal(stripe_client)
    advance(control, 31 * DAY)
    invoice_id = stripe_client.v1.subscriptions.retrieve(sub.id).latest_invoice
    good = stripe_client.v1.payment_methods.attach("pm_card_visa", params={"customer": customer_id})
    paid = stripe_client.v1.invoices.pay(str(invoice_id), params={"payment_method": good.id})
    assert paid.status == "paid"
    assert stripe_client.v1.subscriptions.retrieve(sub.id).status == "active"


def test_cancel_at_period_end_ends_the_subscription_at_period_end(
    stripe_client: stripe.StripeClient, control: httpx.Client, webhook_receiver: WebhookReceiver
) -> None:
    price = monthly_price(stripe_client)
    _, _, sub = subscribe(stripe_client, price)
    end = sub["items"].data[0].current_period_end
    stripe_client.v1.subscriptions.update(sub.id, params={"cancel_at_period_end": True})
    advance(control, 10 * DAY)
    assert stripe_client.v1.subscriptions.retrieve(sub.id).status == "active"
    advance(control, 25 * DAY)
    ended = stripe_client.v1.subscriptions.retrieve(sub.id)
    assert ended.status == "canceled"
    assert ended.ended_at == end
    webhook_receiver.wait_for_types("customer.subscription.deleted")
    assert len(stripe_client.v1.invoices.list(params={"subscription": sub.id}).data) == 1


def test_cancel_at_a_date_ends_the_subscription_then(stripe_client: stripe.StripeClient, control: httpx.Client) -> None:
    price = monthly_price(stripe_client)
    _, _, sub = subscribe(stripe_client, price)
    at = sub["items"].data[0].current_period_start + 5 * DAY
    updated = stripe_client.v1.subscriptions.update(sub.id, params={"cancel_at": at})
    assert updated.cancel_at == at
    advance(control, 6 * DAY)
    ended = stripe_client.v1.subscriptions.retrieve(sub.id)
    assert (ended.status, ended.ended_at) == ("canceled", at)


def test_test_clock_advances_only_its_own_customers(stripe_client: stripe.StripeClient) -> None:
    price = monthly_price(stripe_client)
    clock = stripe_client.v1.test_helpers.test_clocks.create(params={"frozen_time": 1_800_000_000})
    on_clock, _, clocked = subscribe(stripe_client, price, test_clock=clock.id)
    _, _, unclocked = subscribe(stripe_client, price)
    assert clocked["items"].data[0].current_period_start == 1_800_000_000
    advanced = stripe_client.v1.test_helpers.test_clocks.advance(
        clock.id, params={"frozen_time": 1_800_000_000 + 40 * DAY}
    )
    assert advanced.status == "ready"
    assert len(stripe_client.v1.invoices.list(params={"customer": on_clock.id}).data) == 2
    assert len(stripe_client.v1.invoices.list(params={"subscription": unclocked.id}).data) == 1
    stripe_client.v1.test_helpers.test_clocks.delete(clock.id)
    assert stripe_client.v1.customers.retrieve(on_clock.id).to_dict().get("deleted") is True


def test_trial_subscription_announces_its_end_and_charges_when_it_ends(
    stripe_client: stripe.StripeClient, control: httpx.Client, webhook_receiver: WebhookReceiver
) -> None:
    price = monthly_price(stripe_client)
    customer, _ = customer_with(stripe_client)
    sub = stripe_client.v1.subscriptions.create(
        params={"customer": customer.id, "items": [{"price": price.id}], "trial_period_days": 7}
    )
    assert sub.status == "trialing"
    advance(control, 5 * DAY)
    webhook_receiver.wait_for_types("customer.subscription.trial_will_end")
    advance(control, 2 * DAY + 60)
    after = stripe_client.v1.subscriptions.retrieve(sub.id, params={"expand": ["latest_invoice"]})
    assert after.status == "active"
    assert after.latest_invoice.amount_paid == 1000
