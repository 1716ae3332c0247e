"""Contract tests of the Entitlements resources: Features, Product features, active entitlements
and the summary event (https://docs.stripe.com/api/entitlements)."""

from __future__ import annotations

from typing import Any

import httpx
import pytest
import stripe

from e2e.stripe_emulator.testing import WebhookReceiver

from .conftest import Target
from .helpers import DAY, advance, monthly_price, subscribe, wait_idle

SUMMARY = "entitlements.active_entitlement_summary.updated"


def _feature(client: stripe.StripeClient, key: str) -> Any:
    return client.v1.entitlements.features.create(params={"name": key.replace("_", " ").title(), "lookup_key": key})


def _attach(client: stripe.StripeClient, product: str, *keys: str) -> list[Any]:
    features = [_feature(client, key) for key in keys]
    for feature in features:
        client.v1.products.features.create(product, params={"entitlement_feature": feature.id})
    return features


def _active_keys(client: stripe.StripeClient, customer: str) -> list[str]:
    keys: list[str] = []
    params: dict[str, Any] = {"customer": customer, "limit": 5}
    while True:
        page = client.v1.entitlements.active_entitlements.list(params=params)  # type: ignore[arg-type]
        keys += [e.lookup_key for e in page.data]
        if not page.has_more:
            return keys
        params["starting_after"] = page.data[-1].id


def test_features_are_found_by_lookup_key_and_attach_to_products_once(target: Target) -> None:
    client = target.client
    key = f"contract_{id(client)}"
    feature = _feature(client, key)
    assert feature.object == "entitlements.feature"
    assert feature.active is True
    listed = client.v1.entitlements.features.list(params={"lookup_key": key})
    assert [f.id for f in listed.data] == [feature.id]
    with pytest.raises(stripe.InvalidRequestError):
        _feature(client, key)
    renamed = client.v1.entitlements.features.update(feature.id, params={"name": "Renamed"})
    assert renamed.name == "Renamed"

    product = client.v1.products.create(params={"name": "Contract product"})
    attached = client.v1.products.features.create(product.id, params={"entitlement_feature": feature.id})
    assert attached.object == "product_feature"
    assert attached.entitlement_feature.lookup_key == key
    with pytest.raises(stripe.InvalidRequestError):
        client.v1.products.features.create(product.id, params={"entitlement_feature": feature.id})
    assert [pf.id for pf in client.v1.products.features.list(product.id).data] == [attached.id]
    client.v1.products.features.delete(product.id, attached.id)
    assert client.v1.products.features.list(product.id).data == []
    client.v1.entitlements.features.update(feature.id, params={"active": False})


def test_a_subscription_grants_all_twelve_features_and_the_summary_event_carries_ten(
    stripe_client: stripe.StripeClient, control: httpx.Client, webhook_receiver: WebhookReceiver
) -> None:
    price = monthly_price(stripe_client)
    keys = [f"feature_{n:02d}" for n in range(12)]
    _attach(stripe_client, price.product, *keys)
    customer, _pm, _sub = subscribe(stripe_client, price)
    assert sorted(_active_keys(stripe_client, customer.id)) == keys

    webhook_receiver.wait_for_types(SUMMARY)
    wait_idle(control)
    (event,) = webhook_receiver.of_type(SUMMARY)
    summary = event["data"]["object"]
    assert summary["object"] == "entitlements.active_entitlement_summary"
    assert summary["customer"] == customer.id
    assert len(summary["entitlements"]["data"]) == 10
    assert summary["entitlements"]["has_more"] is True
    assert summary["entitlements"]["data"][0]["feature"]["object"] == "entitlements.feature"


def test_cancelling_removes_the_entitlements_and_says_so(
    stripe_client: stripe.StripeClient, control: httpx.Client, webhook_receiver: WebhookReceiver
) -> None:
    price = monthly_price(stripe_client)
    _attach(stripe_client, price.product, "api_access")
    customer, _pm, sub = subscribe(stripe_client, price)
    assert _active_keys(stripe_client, customer.id) == ["api_access"]
    stripe_client.v1.subscriptions.cancel(sub.id)
    assert _active_keys(stripe_client, customer.id) == []
    wait_idle(control)
    summaries = webhook_receiver.of_type(SUMMARY)
    assert [len(e["data"]["object"]["entitlements"]["data"]) for e in summaries] == [1, 0]


def test_a_feature_added_to_a_product_reaches_existing_subscribers_at_renewal(
    stripe_client: stripe.StripeClient, control: httpx.Client
) -> None:
    price = monthly_price(stripe_client)
    _attach(stripe_client, price.product, "base")
    customer, _pm, _sub = subscribe(stripe_client, price)
    _attach(stripe_client, price.product, "added_later")
    assert _active_keys(stripe_client, customer.id) == ["base"]
    advance(control, 32 * DAY)
    assert sorted(_active_keys(stripe_client, customer.id)) == ["added_later", "base"]


def test_listing_active_entitlements_needs_a_customer(stripe_client: stripe.StripeClient) -> None:
    with pytest.raises(stripe.InvalidRequestError):
        stripe_client.v1.entitlements.active_entitlements.list(params={})  # type: ignore[typeddict-item]
