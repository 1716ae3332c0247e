"""Builds one sample of every object type the emulator returns, through its API (for the shape test)."""

from __future__ import annotations

from typing import Any

import httpx


def collect_samples(base_url: str, api_key: str) -> dict[str, dict[str, Any]]:
    """Drive the emulator through a customer → Checkout → subscription → portal → refund journey.

    Returns `{object type: sample}` for every object type the API answered with.
    """
    http = httpx.Client(base_url=base_url, headers={"Authorization": f"Bearer {api_key}"}, timeout=10)
    samples: dict[str, dict[str, Any]] = {}

    def call(method: str, path: str, **data: Any) -> dict[str, Any]:
        response = http.request(method, path, data=data or None) if method != "GET" else http.get(path, params=data)
        response.raise_for_status()
        body: dict[str, Any] = response.json()
        _record(body, samples)
        return body

    clock = call("POST", "/v1/test_helpers/test_clocks", frozen_time="1800000000", name="shapes")
    customer = call("POST", "/v1/customers", email="shape@example.com", test_clock=clock["id"])
    product = call("POST", "/v1/products", name="Shape Pro")
    price = call(
        "POST",
        "/v1/prices",
        product=product["id"],
        unit_amount="1000",
        currency="usd",
        **{"recurring[interval]": "month"},
    )
    one_time = call("POST", "/v1/prices", product=product["id"], unit_amount="5000", currency="usd")
    pm = call("POST", "/v1/payment_methods/pm_card_visa/attach", customer=customer["id"])
    call("POST", f"/v1/customers/{customer['id']}", **{"invoice_settings[default_payment_method]": pm["id"]})
    call("POST", f"/v1/customers/{customer['id']}/tax_ids", type="eu_vat", value="DE123456789")
    feature = call("POST", "/v1/entitlements/features", name="Shape feature", lookup_key="shape_feature")
    call("POST", f"/v1/products/{product['id']}/features", entitlement_feature=feature["id"])
    sub = call("POST", "/v1/subscriptions", customer=customer["id"], **{"items[0][price]": price["id"]})
    call("GET", "/v1/entitlements/active_entitlements", customer=customer["id"])
    call("GET", "/v1/subscription_items", subscription=sub["id"])
    call(
        "POST",
        f"/v1/subscriptions/{sub['id']}",
        **{"items[0][id]": sub["items"]["data"][0]["id"], "items[0][quantity]": "2"},
    )
    call("GET", "/v1/invoiceitems", customer=customer["id"])
    invoice = call("GET", f"/v1/invoices/{sub['latest_invoice']}")
    call("GET", f"/v1/invoices/{invoice['id']}/lines")
    payments = call("GET", "/v1/invoice_payments", invoice=invoice["id"])
    intent = call("GET", f"/v1/payment_intents/{payments['data'][0]['payment']['payment_intent']}")
    call("GET", f"/v1/charges/{intent['latest_charge']}")
    call("POST", "/v1/refunds", charge=intent["latest_charge"], amount="100")
    session = call(
        "POST",
        "/v1/checkout/sessions",
        mode="payment",
        success_url="https://example.com/s",
        **{"line_items[0][price]": one_time["id"], "line_items[0][quantity]": "1"},
    )
    call("GET", f"/v1/checkout/sessions/{session['id']}/line_items")
    setup = call(
        "POST",
        "/v1/checkout/sessions",
        mode="setup",
        currency="usd",
        customer=customer["id"],
        success_url="https://example.com/s",
    )
    http.post(
        f"/c/pay/{setup['id']}",
        data={"email": "shape@example.com", "cardNumber": "4242424242424242", "cardExpiry": "12/40", "cardCvc": "123"},
    )
    setup = call("GET", f"/v1/checkout/sessions/{setup['id']}")
    call("GET", f"/v1/setup_intents/{setup['setup_intent']}")
    call("POST", "/v1/billing_portal/sessions", customer=customer["id"], return_url="https://example.com/account")
    call("GET", "/v1/billing_portal/configurations")
    call("POST", "/v1/webhook_endpoints", url="https://example.com/hook", **{"enabled_events[0]": "*"})
    call("GET", "/v1/events", limit="1")
    call("GET", "/v1/customers/" + customer["id"] + "/tax_ids")
    http.close()
    return samples


def _record(body: Any, samples: dict[str, dict[str, Any]]) -> None:
    """Keep the first object of each type seen anywhere in a response (nested ones too)."""
    if isinstance(body, list):
        for item in body:
            _record(item, samples)
        return
    if not isinstance(body, dict):
        return
    kind = body.get("object")
    if isinstance(kind, str) and kind not in ("list", "search_result") and "id" in body and not body.get("deleted"):
        samples.setdefault(kind, body)
    for value in body.values():
        _record(value, samples)
