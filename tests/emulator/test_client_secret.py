"""PaymentIntents confirmed the way Stripe.js does: a publishable key and the intent's client_secret.

https://docs.stripe.com/js/payment_intents/confirm_card_payment — the browser never holds the
secret key; it sends `key=pk_…` (or `Authorization: Bearer pk_…`) with `client_secret`.
"""

from __future__ import annotations

import httpx
import stripe

from e2e.stripe_emulator import RunningEmulator
from e2e.stripe_emulator.testing import WebhookReceiver

from .helpers import customer_with


def _intent(stripe_client: stripe.StripeClient) -> stripe.PaymentIntent:
    customer, _ = customer_with(stripe_client)
    return stripe_client.v1.payment_intents.create(params={"amount": 4990, "currency": "usd", "customer": customer.id})


def test_stripe_js_confirms_with_publishable_key_and_client_secret_and_events_follow(
    emulator: RunningEmulator, stripe_client: stripe.StripeClient, webhook_receiver: WebhookReceiver
) -> None:
    intent = _intent(stripe_client)
    assert intent.status == "requires_payment_method"

    with httpx.Client(base_url=emulator.url) as browser:
        seen = browser.get(
            f"/v1/payment_intents/{intent.id}", params={"client_secret": intent.client_secret, "key": "pk_test_js"}
        )
        assert seen.status_code == 200 and seen.json()["status"] == "requires_payment_method"
        confirmed = browser.post(
            f"/v1/payment_intents/{intent.id}/confirm",
            data={
                "client_secret": intent.client_secret,
                "payment_method_data[type]": "card",
                "payment_method_data[card][token]": "tok_visa",
                "expected_payment_method_type": "card",
                "use_stripe_sdk": "true",
            },
            headers={"Authorization": "Bearer pk_test_js"},
        )

    assert confirmed.status_code == 200, confirmed.text
    assert confirmed.json()["status"] == "succeeded"
    assert stripe_client.v1.payment_intents.retrieve(intent.id).status == "succeeded"
    webhook_receiver.wait_for_types("payment_intent.succeeded", "charge.succeeded")


def test_a_publishable_key_needs_the_matching_client_secret_and_reaches_nothing_else(
    emulator: RunningEmulator, stripe_client: stripe.StripeClient
) -> None:
    intent = _intent(stripe_client)

    with httpx.Client(base_url=emulator.url) as browser:
        wrong = browser.post(
            f"/v1/payment_intents/{intent.id}/confirm",
            data={"client_secret": "pi_other_secret_x", "payment_method": "pm_card_visa", "key": "pk_test_js"},
        )
        listing = browser.get("/v1/customers", params={"key": "pk_test_js"})

    assert wrong.status_code == 400
    assert wrong.json()["error"]["param"] == "client_secret"
    assert listing.status_code == 401
    assert "publishable API key" in listing.json()["error"]["message"]
    assert stripe_client.v1.payment_intents.retrieve(intent.id).status == "requires_payment_method"
