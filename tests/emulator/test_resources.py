"""Less common API paths: intents, invoices, previews, deletions, and portal edge cases."""

from __future__ import annotations

import httpx
import pytest
import stripe

from e2e.stripe_emulator.testing import WebhookReceiver

from .helpers import customer_with, monthly_price, subscribe

CARD = {"cardExpiry": "12 / 34", "cardCvc": "123"}


def test_declined_payment_intent_confirm_is_a_card_error_and_the_intent_needs_a_new_method(
    stripe_client: stripe.StripeClient, webhook_receiver: WebhookReceiver
) -> None:
    customer, _ = customer_with(stripe_client)
    failing = stripe_client.v1.payment_methods.attach("pm_card_chargeCustomerFail", params={"customer": customer.id})
    intent = stripe_client.v1.payment_intents.create(
        params={"amount": 1500, "currency": "usd", "customer": customer.id, "payment_method": failing.id}
    )
    assert intent.status == "requires_confirmation"
    with pytest.raises(stripe.CardError) as err:
        stripe_client.v1.payment_intents.confirm(intent.id)
    assert err.value.code == "card_declined"
    after = stripe_client.v1.payment_intents.retrieve(intent.id)
    assert after.status == "requires_payment_method"
    assert after.last_payment_error.decline_code == "generic_decline"
    webhook_receiver.wait_for_types("payment_intent.payment_failed", "charge.failed")


def test_default_incomplete_subscription_activates_when_its_intent_is_confirmed(
    stripe_client: stripe.StripeClient,
) -> None:
    price = monthly_price(stripe_client)
    customer, pm = customer_with(stripe_client)
    sub = stripe_client.v1.subscriptions.create(
        params={
            "customer": customer.id,
            "items": [{"price": price.id}],
            "payment_behavior": "default_incomplete",
            "expand": ["latest_invoice.payments"],
        }
    )
    assert sub.status == "incomplete"
    assert sub.latest_invoice.status == "open"
    intent_id = sub.latest_invoice.payments.data[0].payment.payment_intent
    stripe_client.v1.payment_intents.confirm(intent_id, params={"payment_method": pm.id})
    assert stripe_client.v1.subscriptions.retrieve(sub.id).status == "active"
    assert stripe_client.v1.invoices.retrieve(str(sub.latest_invoice.id)).status == "paid"


def test_subscription_without_any_payment_method_is_refused(stripe_client: stripe.StripeClient) -> None:
    price = monthly_price(stripe_client)
    customer = stripe_client.v1.customers.create(params={"email": "nocard@example.com"})
    with pytest.raises(stripe.InvalidRequestError) as err:
        stripe_client.v1.subscriptions.create(params={"customer": customer.id, "items": [{"price": price.id}]})
    assert "no attached payment source" in str(err.value.user_message)


def test_one_off_invoice_create_finalize_pay_and_void(
    stripe_client: stripe.StripeClient, control: httpx.Client
) -> None:
    customer, pm = customer_with(stripe_client)
    stripe_client.v1.invoice_items.create(
        params={"customer": customer.id, "amount": 700, "currency": "usd", "description": "Setup fee"}
    )
    draft = stripe_client.v1.invoices.create(
        params={"customer": customer.id, "pending_invoice_items_behavior": "include"}
    )
    assert (draft.status, draft.total) == ("draft", 700)
    final = stripe_client.v1.invoices.finalize_invoice(str(draft.id))
    assert final.status == "open" and final.number
    paid = stripe_client.v1.invoices.pay(str(draft.id), params={"payment_method": pm.id})
    assert paid.status == "paid"
    stripe_client.v1.invoice_items.create(params={"customer": customer.id, "amount": 300, "currency": "usd"})
    other = stripe_client.v1.invoices.create(
        params={"customer": customer.id, "pending_invoice_items_behavior": "include"}
    )
    stripe_client.v1.invoices.finalize_invoice(str(other.id))
    assert stripe_client.v1.invoices.void_invoice(str(other.id)).status == "void"
    page = control.get(str(paid.hosted_invoice_url))
    assert "Setup fee" in page.text


def test_create_preview_shows_the_next_renewal_and_a_proration(stripe_client: stripe.StripeClient) -> None:
    price = monthly_price(stripe_client)
    yearly = monthly_price(stripe_client, 12000, "year")
    customer, _, sub = subscribe(stripe_client, price)
    upcoming = stripe_client.v1.invoices.create_preview(params={"customer": customer.id, "subscription": sub.id})
    assert upcoming.total == 1000
    assert upcoming.lines.data[0].period.start == sub["items"].data[0].current_period_end
    change = stripe_client.v1.invoices.create_preview(
        params={
            "customer": customer.id,
            "subscription": sub.id,
            "subscription_details": {"items": [{"id": sub["items"].data[0].id, "price": yearly.id}]},
        }
    )
    assert 10990 <= change.total <= 11000


def test_removing_an_item_and_deleting_things(
    stripe_client: stripe.StripeClient, webhook_receiver: WebhookReceiver
) -> None:
    price = monthly_price(stripe_client)
    addon = monthly_price(stripe_client, 300)
    customer, pm, sub = subscribe(stripe_client, price)
    two = stripe_client.v1.subscriptions.update(
        sub.id, params={"items": [{"price": addon.id}], "proration_behavior": "none"}
    )
    assert len(two["items"].data) == 2
    addon_item = next(i for i in two["items"].data if i.price.id == addon.id)
    one = stripe_client.v1.subscriptions.update(sub.id, params={"items": [{"id": addon_item.id, "deleted": True}]})
    assert [i.price.id for i in one["items"].data] == [price.id]
    with pytest.raises(stripe.InvalidRequestError):
        stripe_client.v1.products.delete(str(price.product))
    detached = stripe_client.v1.payment_methods.detach(pm.id)
    assert detached.customer is None
    assert stripe_client.v1.customers.retrieve(customer.id).invoice_settings.default_payment_method is None
    deleted = stripe_client.v1.customers.delete(customer.id)
    assert deleted.deleted is True
    assert stripe_client.v1.subscriptions.retrieve(sub.id).status == "canceled"
    webhook_receiver.wait_for_types("payment_method.detached", "customer.deleted", "customer.subscription.deleted")


def test_portal_renew_undoes_a_pending_cancellation(stripe_client: stripe.StripeClient, control: httpx.Client) -> None:
    price = monthly_price(stripe_client)
    customer, _, sub = subscribe(stripe_client, price)
    stripe_client.v1.subscriptions.update(sub.id, params={"cancel_at_period_end": True})
    session = stripe_client.v1.billing_portal.sessions.create(params={"customer": customer.id})
    home = control.get(str(session.url)).text
    assert "Cancels on" in home and "Renew subscription" in home
    assert control.post(f"{session.url}/subscriptions/{sub.id}/renew").status_code == 303
    after = stripe_client.v1.subscriptions.retrieve(sub.id)
    assert (after.cancel_at_period_end, after.cancel_at) == (False, None)


def test_portal_refuses_a_declining_card_and_keeps_the_old_default(
    stripe_client: stripe.StripeClient, control: httpx.Client
) -> None:
    customer, pm = customer_with(stripe_client)
    session = stripe_client.v1.billing_portal.sessions.create(params={"customer": customer.id})
    page = control.post(f"{session.url}/payment-method", data={"cardNumber": "4000000000009995", **CARD})
    assert page.status_code == 402 and "insufficient funds" in page.text
    assert stripe_client.v1.customers.retrieve(customer.id).invoice_settings.default_payment_method == pm.id
    assert len(stripe_client.v1.customers.payment_methods.list(customer.id).data) == 1


def test_portal_flow_for_a_disabled_feature_is_refused(stripe_client: stripe.StripeClient) -> None:
    price = monthly_price(stripe_client)
    customer, _, sub = subscribe(stripe_client, price)
    config = stripe_client.v1.billing_portal.configurations.create(
        params={"features": {"invoice_history": {"enabled": True}}}
    )
    with pytest.raises(stripe.InvalidRequestError):
        stripe_client.v1.billing_portal.sessions.create(
            params={
                "customer": customer.id,
                "configuration": config.id,
                "flow_data": {"type": "subscription_cancel", "subscription_cancel": {"subscription": sub.id}},
            }
        )


def test_hosted_invoice_page_pays_an_open_invoice(stripe_client: stripe.StripeClient, control: httpx.Client) -> None:
    customer, _ = customer_with(stripe_client)
    stripe_client.v1.invoice_items.create(params={"customer": customer.id, "amount": 4200, "currency": "usd"})
    invoice = stripe_client.v1.invoices.create(
        params={"customer": customer.id, "pending_invoice_items_behavior": "include"}
    )
    final = stripe_client.v1.invoices.finalize_invoice(str(invoice.id))
    page = control.post(str(final.hosted_invoice_url), data={"cardNumber": "5555555555554444", **CARD})
    assert page.status_code == 303
    assert stripe_client.v1.invoices.retrieve(str(invoice.id)).status == "paid"


def test_portal_quantity_change_when_the_configuration_allows_it(
    stripe_client: stripe.StripeClient, control: httpx.Client
) -> None:
    price = monthly_price(stripe_client)
    customer, _, sub = subscribe(stripe_client, price)
    config = stripe_client.v1.billing_portal.configurations.create(
        params={
            "features": {
                "subscription_update": {
                    "enabled": True,
                    "default_allowed_updates": ["price", "quantity"],
                    "proration_behavior": "none",
                    "products": [{"product": str(price.product), "prices": [price.id]}],
                }
            }
        }
    )
    session = stripe_client.v1.billing_portal.sessions.create(
        params={"customer": customer.id, "configuration": config.id}
    )
    form = control.get(f"{session.url}/subscriptions/{sub.id}/update").text
    assert '<label for="quantity">Quantity</label>' in form
    preview = control.get(
        f"{session.url}/subscriptions/{sub.id}/update/confirm", params={"price": price.id, "quantity": "3"}
    )
    assert "× 3" in preview.text
    done = control.post(
        f"{session.url}/subscriptions/{sub.id}/update/confirm", data={"price": price.id, "quantity": "3"}
    )
    assert done.status_code == 303
    assert stripe_client.v1.subscriptions.retrieve(sub.id)["items"].data[0].quantity == 3


def test_always_invoice_bills_only_the_proration_at_once(stripe_client: stripe.StripeClient) -> None:
    price = monthly_price(stripe_client)
    _, _, sub = subscribe(stripe_client, price)
    updated = stripe_client.v1.subscriptions.update(
        sub.id,
        params={
            "items": [{"id": sub["items"].data[0].id, "quantity": 2}],
            "proration_behavior": "always_invoice",
            "expand": ["latest_invoice"],
        },
    )
    invoice = updated.latest_invoice
    assert invoice.billing_reason == "subscription_update"
    assert invoice.status == "paid"
    assert 990 <= invoice.total <= 1000
    assert all(line.parent.type == "invoice_item_details" for line in invoice.lines.data)


def test_canceled_subscription_accepts_only_metadata_changes(stripe_client: stripe.StripeClient) -> None:
    _, _, sub = subscribe(stripe_client, monthly_price(stripe_client))
    stripe_client.v1.subscriptions.cancel(sub.id)
    tagged = stripe_client.v1.subscriptions.update(sub.id, params={"metadata": {"note": "churned"}})
    assert tagged.metadata["note"] == "churned"
    with pytest.raises(stripe.InvalidRequestError):
        stripe_client.v1.subscriptions.update(sub.id, params={"cancel_at_period_end": False})


def test_invoice_payments_by_payment_intent_with_invoice_intent_and_charge_expanded(
    stripe_client: stripe.StripeClient,
) -> None:
    """https://docs.stripe.com/api/invoice-payment/list: `payment[payment_intent]`; 4 levels of expand."""
    customer, _, sub = subscribe(stripe_client, monthly_price(stripe_client))
    invoice = stripe_client.v1.invoices.retrieve(sub.latest_invoice, params={"expand": ["payments"]})
    intent_id = invoice.payments.data[0].payment.payment_intent
    found = stripe_client.v1.invoice_payments.list(
        params={
            "payment": {"type": "payment_intent", "payment_intent": intent_id},
            "expand": ["data.invoice", "data.payment.payment_intent.latest_charge"],
        }
    ).data
    assert len(found) == 1
    assert found[0].invoice.id == invoice.id and found[0].invoice.customer == customer.id
    assert found[0].payment.payment_intent.id == intent_id
    assert found[0].payment.payment_intent.latest_charge.payment_method_details.card.last4 == "4242"
    other = stripe_client.v1.invoice_payments.list(
        params={"payment": {"type": "payment_intent", "payment_intent": "pi_x"}}
    )
    assert other.data == []


def test_requests_are_counted_per_second_as_stripe_would(
    stripe_client: stripe.StripeClient, control: httpx.Client
) -> None:
    control.post("/_emulator/requests/clear").raise_for_status()
    for _ in range(3):
        stripe_client.v1.products.list()
    counted = control.get("/_emulator/requests").json()
    assert counted["total"] == 3 and 1 <= counted["peak_per_second"] <= 3
    assert sum(n for _, n in counted["per_second"]) == 3
    control.post("/_emulator/requests/clear").raise_for_status()
    assert control.get("/_emulator/requests").json() == {"total": 0, "peak_per_second": 0, "per_second": []}
