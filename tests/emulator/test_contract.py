"""Contract scenarios written once against the `stripe` SDK.

Each runs against the emulator and, when `STRIPE_CONTRACT_SECRET_KEY=sk_test_...` is set, against real
Stripe test mode too, so the emulator's answers are pinned to what Stripe really does.
"""

from __future__ import annotations

import asyncio
import time
import uuid
from typing import Any

import pytest
import stripe

from .conftest import Target

pytestmark = pytest.mark.asyncio


async def make_prices(client: stripe.StripeClient) -> tuple[Any, Any, Any]:
    """A product with a monthly and a yearly price (unique lookup keys per run)."""
    tag = uuid.uuid4().hex[:10]
    product = await client.v1.products.create_async(params={"name": f"Contract Pro {tag}"})
    monthly = await client.v1.prices.create_async(
        params={
            "product": product.id,
            "unit_amount": 1000,
            "currency": "usd",
            "recurring": {"interval": "month"},
            "lookup_key": f"contract_monthly_{tag}",
        }
    )
    yearly = await client.v1.prices.create_async(
        params={
            "product": product.id,
            "unit_amount": 10000,
            "currency": "usd",
            "recurring": {"interval": "year"},
            "lookup_key": f"contract_yearly_{tag}",
        }
    )
    return product, monthly, yearly


async def customer_with_card(client: stripe.StripeClient, email: str = "contract@example.com") -> tuple[Any, Any]:
    customer = await client.v1.customers.create_async(params={"email": email, "metadata": {"user_id": "42"}})
    pm = await client.v1.payment_methods.attach_async("pm_card_visa", params={"customer": customer.id})
    await client.v1.customers.update_async(customer.id, params={"invoice_settings": {"default_payment_method": pm.id}})
    return customer, pm


async def subscribed_customer(client: stripe.StripeClient) -> tuple[Any, Any, Any, Any]:
    product, monthly, yearly = await make_prices(client)
    customer, _ = await customer_with_card(client)
    sub = await client.v1.subscriptions.create_async(params={"customer": customer.id, "items": [{"price": monthly.id}]})
    return customer, sub, product, (monthly, yearly)


async def portal_configuration(client: stripe.StripeClient, product: Any, prices: list[Any]) -> Any:
    return await client.v1.billing_portal.configurations.create_async(
        params={
            "business_profile": {"headline": "Contract test portal"},
            "features": {
                "customer_update": {"enabled": True, "allowed_updates": ["email", "address", "tax_id"]},
                "invoice_history": {"enabled": True},
                "payment_method_update": {"enabled": True},
                "subscription_cancel": {
                    "enabled": True,
                    "mode": "at_period_end",
                    "cancellation_reason": {"enabled": True, "options": ["too_expensive", "unused", "other"]},
                },
                "subscription_update": {
                    "enabled": True,
                    "default_allowed_updates": ["price"],
                    "proration_behavior": "create_prorations",
                    "products": [{"product": product.id, "prices": [p.id for p in prices]}],
                },
            },
        }
    )


async def test_customer_subscription_and_first_invoice_have_current_api_shapes(target: Target) -> None:
    client = target.client
    customer, sub, _, (monthly, _) = await subscribed_customer(client)

    assert sub.status == "active"
    item = sub["items"].data[0]
    assert item.price.id == monthly.id
    assert item.current_period_end > item.current_period_start
    assert "current_period_end" not in sub.to_dict()

    invoice = await client.v1.invoices.retrieve_async(sub.latest_invoice, params={"expand": ["payments"]})
    assert invoice.status == "paid"
    assert invoice.amount_paid == 1000
    assert invoice.parent.subscription_details.subscription == sub.id
    assert invoice.hosted_invoice_url and invoice.invoice_pdf
    payment = invoice.payments.data[0]
    assert payment.payment.type == "payment_intent"
    intent = await client.v1.payment_intents.retrieve_async(
        payment.payment.payment_intent, params={"expand": ["latest_charge"]}
    )
    assert intent.status == "succeeded"
    assert intent.latest_charge.payment_method_details.card.last4 == "4242"
    assert intent.latest_charge.receipt_url

    listed = await client.v1.invoices.list_async(params={"customer": customer.id})
    assert [i.id for i in listed.data] == [invoice.id]


async def test_subscription_retrieve_expands_latest_invoice_and_default_payment_method(target: Target) -> None:
    client = target.client
    _, sub, _, _ = await subscribed_customer(client)
    got = await client.v1.subscriptions.retrieve_async(
        sub.id, params={"expand": ["latest_invoice.payments", "customer.invoice_settings.default_payment_method"]}
    )
    assert got.latest_invoice.object == "invoice"
    assert got.latest_invoice.payments.data[0].status == "paid"
    assert got.customer.invoice_settings.default_payment_method.card.brand == "visa"


async def test_switching_monthly_to_yearly_invoices_the_new_period_with_a_credit(target: Target) -> None:
    client = target.client
    _, sub, _, (_, yearly) = await subscribed_customer(client)
    updated = await client.v1.subscriptions.update_async(
        sub.id,
        params={
            "items": [{"id": sub["items"].data[0].id, "price": yearly.id}],
            "proration_behavior": "create_prorations",
            "expand": ["latest_invoice"],
        },
    )
    assert updated["items"].data[0].price.id == yearly.id
    assert updated.latest_invoice.id != sub.latest_invoice
    assert updated.latest_invoice.status == "paid"
    # The whole unused month is credited against the first year.
    assert 8990 <= updated.latest_invoice.total <= 9000


async def test_quantity_change_creates_pending_proration_items(target: Target) -> None:
    client = target.client
    customer, sub, _, _ = await subscribed_customer(client)
    await client.v1.subscriptions.update_async(
        sub.id, params={"items": [{"id": sub["items"].data[0].id, "quantity": 2}]}
    )
    pending = await client.v1.invoice_items.list_async(params={"customer": customer.id, "pending": True})
    assert pending.data
    assert all(ii.proration for ii in pending.data)
    assert sum(ii.amount for ii in pending.data) > 0


async def test_cancel_at_period_end_then_cancel_now(target: Target) -> None:
    client = target.client
    _, sub, _, _ = await subscribed_customer(client)
    pending = await client.v1.subscriptions.update_async(sub.id, params={"cancel_at_period_end": True})
    assert pending.cancel_at_period_end is True
    assert pending.cancel_at == sub["items"].data[0].current_period_end
    assert pending.status == "active"
    canceled = await client.v1.subscriptions.cancel_async(sub.id)
    assert canceled.status == "canceled"
    assert canceled.ended_at is not None


async def test_lists_filter_by_customer_status_and_price(target: Target) -> None:
    client = target.client
    customer, sub, _, (monthly, yearly) = await subscribed_customer(client)
    by_price = await client.v1.subscriptions.list_async(params={"price": monthly.id})
    assert [s.id for s in by_price.data] == [sub.id]
    assert not (await client.v1.subscriptions.list_async(params={"price": yearly.id})).data
    by_customer = await client.v1.subscriptions.list_async(params={"customer": customer.id, "status": "active"})
    assert [s.id for s in by_customer.data] == [sub.id]
    prices = await client.v1.prices.list_async(params={"lookup_keys": [monthly.lookup_key], "expand": ["data.product"]})
    assert [p.id for p in prices.data] == [monthly.id]
    assert prices.data[0].product.object == "product"
    customers = await client.v1.customers.list_async(params={"email": "contract@example.com", "limit": 100})
    assert customer.id in [c.id for c in customers.data]


async def test_checkout_session_create_retrieve_with_line_items_and_expire(target: Target) -> None:
    client = target.client
    _, monthly, _ = await make_prices(client)
    session = await client.v1.checkout.sessions.create_async(
        params={
            "mode": "subscription",
            "line_items": [{"price": monthly.id, "quantity": 1}],
            "success_url": "https://example.com/success?session_id={CHECKOUT_SESSION_ID}",
            "cancel_url": "https://example.com/cancel",
            "customer_email": "buyer@example.com",
            "client_reference_id": "user-42",
            "metadata": {"user_id": "42"},
            "subscription_data": {"metadata": {"user_id": "42"}},
        }
    )
    assert session.status == "open"
    assert session.payment_status == "unpaid"
    assert session.url
    assert session.amount_total == 1000
    got = await client.v1.checkout.sessions.retrieve_async(session.id, params={"expand": ["line_items"]})
    assert got.line_items.data[0].price.id == monthly.id
    assert got.client_reference_id == "user-42"
    items = await client.v1.checkout.sessions.line_items.list_async(session.id)
    assert items.data[0].quantity == 1
    expired = await client.v1.checkout.sessions.expire_async(session.id)
    assert expired.status == "expired"
    assert expired.url is None


async def test_checkout_payment_mode_rejects_recurring_prices(target: Target) -> None:
    _, monthly, _ = await make_prices(target.client)
    with pytest.raises(stripe.InvalidRequestError) as err:
        await target.client.v1.checkout.sessions.create_async(
            params={
                "mode": "payment",
                "line_items": [{"price": monthly.id, "quantity": 1}],
                "success_url": "https://example.com/success",
            }
        )
    assert err.value.http_status == 400


@pytest.mark.parametrize(
    "flow_type", ["payment_method_update", "subscription_cancel", "subscription_update", "subscription_update_confirm"]
)
async def test_portal_session_for_each_flow_type(target: Target, flow_type: str) -> None:
    client = target.client
    customer, sub, product, (monthly, yearly) = await subscribed_customer(client)
    config = await portal_configuration(client, product, [monthly, yearly])
    flow: dict[str, Any] = {
        "type": flow_type,
        "after_completion": {"type": "redirect", "redirect": {"return_url": "https://example.com/done"}},
    }
    if flow_type == "subscription_cancel":
        flow["subscription_cancel"] = {"subscription": sub.id}
    elif flow_type == "subscription_update":
        flow["subscription_update"] = {"subscription": sub.id}
    elif flow_type == "subscription_update_confirm":
        flow["subscription_update_confirm"] = {
            "subscription": sub.id,
            "items": [{"id": sub["items"].data[0].id, "price": yearly.id, "quantity": 1}],
        }
    session = await client.v1.billing_portal.sessions.create_async(
        params={
            "customer": customer.id,
            "return_url": "https://example.com/account",
            "configuration": config.id,
            "flow_data": flow,  # type: ignore[typeddict-item]
        }
    )
    assert session.url
    assert session.configuration == config.id
    assert session.flow.type == flow_type
    assert session.flow.after_completion.type == "redirect"
    assert session.flow.after_completion.redirect.return_url == "https://example.com/done"
    if flow_type == "subscription_update_confirm":
        assert session.flow.subscription_update_confirm.items[0].price == yearly.id


async def test_portal_session_without_flow_uses_the_given_configuration(target: Target) -> None:
    client = target.client
    customer, _, product, (monthly, yearly) = await subscribed_customer(client)
    config = await portal_configuration(client, product, [monthly, yearly])
    session = await client.v1.billing_portal.sessions.create_async(
        params={"customer": customer.id, "return_url": "https://example.com/account", "configuration": config.id}
    )
    assert session.flow is None
    assert session.return_url == "https://example.com/account"


async def test_portal_configuration_create_and_update(target: Target) -> None:
    client = target.client
    product, monthly, yearly = await make_prices(client)
    config = await portal_configuration(client, product, [monthly, yearly])
    assert config.features.subscription_cancel.mode == "at_period_end"
    assert config.features.subscription_update.products[0].prices == [monthly.id, yearly.id]
    updated = await client.v1.billing_portal.configurations.update_async(
        config.id,
        params={
            "features": {"subscription_cancel": {"mode": "immediately"}, "invoice_history": {"enabled": False}},
            "metadata": {"purpose": "contract"},
        },
    )
    assert updated.features.subscription_cancel.mode == "immediately"
    assert updated.features.invoice_history.enabled is False
    assert updated.metadata["purpose"] == "contract"
    got = await client.v1.billing_portal.configurations.retrieve_async(config.id)
    assert got.features.subscription_cancel.mode == "immediately"


async def test_idempotent_replay_returns_the_first_response(target: Target) -> None:
    client = target.client
    key = f"contract-{uuid.uuid4()}"
    first = await client.v1.customers.create_async(
        params={"email": "idem@example.com"}, options={"idempotency_key": key}
    )
    second = await client.v1.customers.create_async(
        params={"email": "idem@example.com"}, options={"idempotency_key": key}
    )
    assert second.id == first.id
    assert second.last_response is not None
    assert second.last_response.headers.get("Idempotent-Replayed") == "true"


async def test_idempotency_key_reused_with_other_params_is_an_idempotency_error(target: Target) -> None:
    client = target.client
    key = f"contract-{uuid.uuid4()}"
    await client.v1.customers.create_async(params={"email": "one@example.com"}, options={"idempotency_key": key})
    with pytest.raises(stripe.IdempotencyError) as err:
        await client.v1.customers.create_async(params={"email": "two@example.com"}, options={"idempotency_key": key})
    assert err.value.http_status == 400


async def test_missing_parameter_is_a_400_parameter_missing(target: Target) -> None:
    product, _, _ = await make_prices(target.client)
    with pytest.raises(stripe.InvalidRequestError) as err:
        await target.client.v1.prices.create_async(params={"product": product.id, "unit_amount": 100})  # type: ignore[typeddict-item]
    assert err.value.http_status == 400
    assert err.value.code == "parameter_missing"
    assert err.value.param == "currency"


async def test_unknown_parameter_is_a_400_parameter_unknown(target: Target) -> None:
    with pytest.raises(stripe.InvalidRequestError) as err:
        await target.client.v1.customers.create_async(params={"email": "x@example.com", "favourite_colour": "red"})  # type: ignore[typeddict-unknown-key]
    assert err.value.http_status == 400
    assert err.value.code == "parameter_unknown"
    assert err.value.param == "favourite_colour"


async def test_unknown_nested_parameter_is_rejected(target: Target) -> None:
    with pytest.raises(stripe.InvalidRequestError) as err:
        await target.client.v1.customers.create_async(
            params={"email": "x@example.com", "invoice_settings": {"colour": "red"}}  # type: ignore[typeddict-unknown-key]
        )
    assert err.value.code == "parameter_unknown"
    assert err.value.param == "invoice_settings[colour]"


async def test_declined_card_is_a_402_card_error_with_decline_code(target: Target) -> None:
    customer = await target.client.v1.customers.create_async(params={"email": "declined@example.com"})
    with pytest.raises(stripe.CardError) as err:
        await target.client.v1.payment_methods.attach_async(
            "pm_card_chargeDeclinedInsufficientFunds", params={"customer": customer.id}
        )
    assert err.value.http_status == 402
    assert err.value.code == "card_declined"
    assert err.value.error is not None
    assert err.value.error.decline_code == "insufficient_funds"


async def test_unknown_object_is_a_404_resource_missing(target: Target) -> None:
    with pytest.raises(stripe.InvalidRequestError) as err:
        await target.client.v1.customers.retrieve_async("cus_doesnotexist123")
    assert err.value.http_status == 404
    assert err.value.code == "resource_missing"
    assert err.value.param == "id"


async def test_bad_api_key_is_a_401(target: Target) -> None:
    base = target.client._requestor.base_addresses.get("api") if target.is_emulator else None  # type: ignore[attr-defined]
    kwargs: dict[str, Any] = {"base_addresses": {"api": base}} if base else {}
    bad = stripe.StripeClient("sk_test_not_a_real_key_0000", max_network_retries=0, **kwargs)
    if target.is_emulator:
        bad = stripe.StripeClient("pk_test_publishable_is_not_secret", max_network_retries=0, **kwargs)
    with pytest.raises(stripe.AuthenticationError) as err:
        await bad.v1.customers.list_async()
    assert err.value.http_status == 401


async def test_refund_updates_the_charge(target: Target) -> None:
    client = target.client
    customer, pm = await customer_with_card(client)
    intent = await client.v1.payment_intents.create_async(
        params={
            "amount": 2500,
            "currency": "usd",
            "customer": customer.id,
            "payment_method": pm.id,
            "confirm": True,
            "off_session": True,
        }
    )
    assert intent.status == "succeeded"
    refund = await client.v1.refunds.create_async(params={"payment_intent": intent.id, "amount": 1000})
    assert refund.status == "succeeded"
    charge = await client.v1.charges.retrieve_async(intent.latest_charge)
    assert charge.amount_refunded == 1000
    assert charge.refunded is False


async def test_list_pagination_with_starting_after(target: Target) -> None:
    client = target.client
    tag = uuid.uuid4().hex[:8]
    created = [await client.v1.customers.create_async(params={"email": f"page-{tag}@example.com"}) for _ in range(3)]
    first = await client.v1.customers.list_async(params={"email": f"page-{tag}@example.com", "limit": 2})
    assert [c.id for c in first.data] == [created[2].id, created[1].id]
    assert first.has_more is True
    second = await client.v1.customers.list_async(
        params={"email": f"page-{tag}@example.com", "limit": 2, "starting_after": first.data[-1].id}
    )
    assert [c.id for c in second.data] == [created[0].id]
    assert second.has_more is False


async def test_webhook_endpoint_secret_is_only_in_the_create_response(target: Target) -> None:
    client = target.client
    endpoint = await client.v1.webhook_endpoints.create_async(
        params={"url": f"https://example.com/hooks/{uuid.uuid4().hex}", "enabled_events": ["customer.created"]}
    )
    try:
        assert endpoint.secret and endpoint.secret.startswith("whsec_")
        got = await client.v1.webhook_endpoints.retrieve_async(endpoint.id)
        assert "secret" not in got.to_dict()
        assert got.enabled_events == ["customer.created"]
    finally:
        deleted = await client.v1.webhook_endpoints.delete_async(endpoint.id)
    assert deleted.deleted is True


async def test_events_record_the_change_and_its_previous_attributes(target: Target) -> None:
    client = target.client
    customer = await client.v1.customers.create_async(params={"email": f"ev-{uuid.uuid4().hex[:8]}@example.com"})
    await client.v1.customers.update_async(customer.id, params={"name": "Renamed"})
    for _ in range(50):
        events = await client.v1.events.list_async(params={"type": "customer.updated", "limit": 10})
        mine = [e for e in events.data if e.data.object.id == customer.id]
        if mine:
            break
        await asyncio.sleep(0.2)
    assert mine[0].data.previous_attributes.name is None
    assert mine[0].data.object.name == "Renamed"
    assert mine[0].api_version == stripe.api_version


async def test_test_clock_renews_its_customers_subscription(target: Target) -> None:
    client = target.client
    _, monthly, _ = await make_prices(client)
    start = int(time.time())
    clock = await client.v1.test_helpers.test_clocks.create_async(params={"frozen_time": start})
    try:
        customer = await client.v1.customers.create_async(
            params={
                "email": "clock@example.com",
                "test_clock": clock.id,
                "payment_method": "pm_card_visa",
                "invoice_settings": {"default_payment_method": "pm_card_visa"},
            }
        )
        sub = await client.v1.subscriptions.create_async(
            params={"customer": customer.id, "items": [{"price": monthly.id}]}
        )
        await client.v1.test_helpers.test_clocks.advance_async(clock.id, params={"frozen_time": start + 32 * 86400})
        for _ in range(120):
            if (await client.v1.test_helpers.test_clocks.retrieve_async(clock.id)).status == "ready":
                break
            await asyncio.sleep(1)
        renewed = await client.v1.subscriptions.retrieve_async(sub.id)
        assert renewed.status == "active"
        assert renewed.latest_invoice != sub.latest_invoice
        invoices = await client.v1.invoices.list_async(params={"subscription": sub.id})
        assert [i.billing_reason for i in invoices.data] == ["subscription_cycle", "subscription_create"]
    finally:
        await client.v1.test_helpers.test_clocks.delete_async(clock.id)
