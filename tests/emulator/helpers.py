"""Small builders shared by the emulator tests (all through the public API)."""

from __future__ import annotations

import time
from typing import Any

import httpx
import stripe

DAY = 86400


def monthly_price(client: stripe.StripeClient, amount: int = 1000, interval: str = "month") -> Any:
    product = client.v1.products.create(params={"name": f"Plan {interval}"})
    return client.v1.prices.create(
        params={"product": product.id, "unit_amount": amount, "currency": "usd", "recurring": {"interval": interval}}  # type: ignore[typeddict-item]
    )


def customer_with(client: stripe.StripeClient, test_pm: str = "pm_card_visa", **params: Any) -> tuple[Any, Any]:
    customer = client.v1.customers.create(params={"email": "buyer@example.com", **params})
    pm = client.v1.payment_methods.attach(test_pm, params={"customer": customer.id})
    client.v1.customers.update(customer.id, params={"invoice_settings": {"default_payment_method": pm.id}})
    return customer, pm


def subscribe(client: stripe.StripeClient, price: Any, **params: Any) -> tuple[Any, Any, Any]:
    customer, pm = customer_with(client, **params)
    sub = client.v1.subscriptions.create(params={"customer": customer.id, "items": [{"price": price.id}]})
    return customer, pm, sub


def advance(control: httpx.Client, seconds: int) -> None:
    control.post("/_emulator/clock/advance", json={"seconds": seconds}).raise_for_status()


def wait_idle(control: httpx.Client, timeout: float = 10) -> dict[str, Any]:
    """Wait until the emulator has no webhook deliveries queued or in flight."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        state: dict[str, Any] = control.get("/_emulator/deliveries").json()
        if state["idle"]:
            return state
        time.sleep(0.02)
    raise AssertionError("webhook deliveries did not settle")
