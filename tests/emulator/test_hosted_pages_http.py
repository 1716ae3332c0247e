"""The hosted Checkout, Portal, invoice and receipt pages over plain HTTP (no browser, no JavaScript)."""

from __future__ import annotations

from typing import Any

import httpx
import stripe

from e2e.stripe_emulator.testing import WebhookReceiver

from .helpers import monthly_price, subscribe

CARD = {"cardExpiry": "12 / 34", "cardCvc": "123", "billingName": "Ada Lovelace"}


def _session(client: stripe.StripeClient, price: Any, **params: Any) -> Any:
    return client.v1.checkout.sessions.create(
        params={
            "mode": "subscription",
            "line_items": [{"price": price.id, "quantity": 1}],
            "success_url": "https://app.example/billing/success?session_id={CHECKOUT_SESSION_ID}",
            "cancel_url": "https://app.example/pricing",
            **params,
        }
    )


def test_checkout_page_shows_line_items_total_and_labelled_fields(
    stripe_client: stripe.StripeClient, control: httpx.Client
) -> None:
    session = _session(stripe_client, monthly_price(stripe_client, 1500))
    page = control.get(session.url)
    assert page.status_code == 200
    html = page.text
    assert "Plan month" in html and "$15.00" in html
    for field in ("email", "cardNumber", "cardExpiry", "cardCvc", "billingName"):
        assert f'<label for="{field}"' in html and f'id="{field}"' in html
    assert ">Subscribe</button>" in html
    assert 'href="https://app.example/pricing"' in html


def test_successful_subscription_checkout_creates_everything_and_redirects(
    stripe_client: stripe.StripeClient, control: httpx.Client, webhook_receiver: WebhookReceiver
) -> None:
    price = monthly_price(stripe_client)
    session = _session(
        stripe_client, price, client_reference_id="user-7", subscription_data={"metadata": {"user_id": "7"}}
    )
    response = control.post(session.url, data={"email": "new@example.com", "cardNumber": "4242 4242 4242 4242", **CARD})
    assert response.status_code == 303
    assert response.headers["location"] == f"https://app.example/billing/success?session_id={session.id}"

    done = stripe_client.v1.checkout.sessions.retrieve(session.id, params={"expand": ["subscription", "invoice"]})
    assert (done.status, done.payment_status) == ("complete", "paid")
    assert done.client_reference_id == "user-7"
    sub = done.subscription
    assert sub.status == "active"
    assert sub.metadata["user_id"] == "7"
    assert sub.default_payment_method
    assert done.invoice.status == "paid"
    customer = stripe_client.v1.customers.retrieve(done.customer)
    assert customer.email == "new@example.com"
    assert customer.invoice_settings.default_payment_method == sub.default_payment_method
    charge = stripe_client.v1.charges.list(params={"customer": customer.id}).data[0]
    assert charge.payment_method_details.card.brand == "visa"
    assert charge.payment_method_details.card.last4 == "4242"
    assert control.get(charge.receipt_url).status_code == 200
    events = webhook_receiver.wait_for_types("checkout.session.completed", "customer.subscription.created")
    assert (
        events[-1]["type"] == "checkout.session.completed" or "checkout.session.completed" in webhook_receiver.types()
    )


def test_declined_card_shows_the_error_and_creates_nothing(
    stripe_client: stripe.StripeClient, control: httpx.Client
) -> None:
    session = _session(stripe_client, monthly_price(stripe_client))
    for number, message in (
        ("4000000000000002", "Your card was declined."),
        ("4000000000009995", "insufficient funds"),
    ):
        page = control.post(session.url, data={"email": "no@example.com", "cardNumber": number, **CARD})
        assert page.status_code == 402
        assert message in page.text
        assert 'role="alert"' in page.text
    assert stripe_client.v1.customers.list().data == []
    assert stripe_client.v1.subscriptions.list(params={"status": "all"}).data == []
    assert stripe_client.v1.checkout.sessions.retrieve(session.id).status == "open"


def test_invalid_card_number_and_expiry_are_reported(stripe_client: stripe.StripeClient, control: httpx.Client) -> None:
    session = _session(stripe_client, monthly_price(stripe_client))
    page = control.post(session.url, data={"email": "x@example.com", "cardNumber": "4242 4242 4242 4241", **CARD})
    assert "Your card number is invalid." in page.text
    page = control.post(
        session.url,
        data={"email": "x@example.com", "cardNumber": "4242424242424242", "cardExpiry": "1", "cardCvc": "123"},
    )
    assert "expiration date is incomplete" in page.text


def test_payment_mode_checkout_charges_once_and_can_create_an_invoice(
    stripe_client: stripe.StripeClient, control: httpx.Client
) -> None:
    product = stripe_client.v1.products.create(params={"name": "Lifetime"})
    price = stripe_client.v1.prices.create(params={"product": product.id, "unit_amount": 19900, "currency": "usd"})
    customer = stripe_client.v1.customers.create(params={"email": "life@example.com"})
    session = stripe_client.v1.checkout.sessions.create(
        params={
            "mode": "payment",
            "customer": customer.id,
            "line_items": [{"price": price.id, "quantity": 1}],
            "success_url": "https://app.example/ok",
            "payment_intent_data": {"metadata": {"user_id": "9"}},
            "invoice_creation": {"enabled": True},
        }
    )
    page = control.get(session.url)
    assert 'value="life@example.com" readonly' in page.text
    assert (
        control.post(
            session.url, data={"email": "life@example.com", "cardNumber": "5555555555554444", **CARD}
        ).status_code
        == 303
    )
    done = stripe_client.v1.checkout.sessions.retrieve(session.id, params={"expand": ["payment_intent"]})
    assert done.payment_status == "paid"
    assert done.payment_intent.status == "succeeded"
    assert done.payment_intent.metadata["user_id"] == "9"
    invoice = stripe_client.v1.invoices.retrieve(str(done.invoice))
    assert (invoice.status, invoice.amount_paid) == ("paid", 19900)


def test_setup_mode_checkout_saves_the_card(stripe_client: stripe.StripeClient, control: httpx.Client) -> None:
    customer = stripe_client.v1.customers.create(params={"email": "setup@example.com"})
    session = stripe_client.v1.checkout.sessions.create(
        params={"mode": "setup", "customer": customer.id, "currency": "usd", "success_url": "https://app.example/ok"}
    )
    assert (
        control.post(
            session.url, data={"email": "setup@example.com", "cardNumber": "4000000000000341", **CARD}
        ).status_code
        == 303
    )
    pms = stripe_client.v1.customers.payment_methods.list(customer.id).data
    assert [pm.card.last4 for pm in pms] == ["0341"]


def test_portal_homepage_shows_plan_cards_invoices_and_only_enabled_features(
    stripe_client: stripe.StripeClient, control: httpx.Client
) -> None:
    price = monthly_price(stripe_client)
    customer, _, sub = subscribe(stripe_client, price)
    session = stripe_client.v1.billing_portal.sessions.create(
        params={"customer": customer.id, "return_url": "https://app.example/account"}
    )
    html = control.get(session.url).text
    assert "Renews on" in html and "Visa ending in 4242" in html
    assert "Update payment method" in html and "Invoice history" in html and "Cancel subscription" in html
    assert 'href="https://app.example/account"' in html and "Return to" in html
    invoice = stripe_client.v1.invoices.retrieve(str(sub.latest_invoice))
    assert invoice.hosted_invoice_url in html
    pdf = control.get(invoice.invoice_pdf)
    assert pdf.headers["content-type"] == "application/pdf" and pdf.content.startswith(b"%PDF")
    assert control.get(invoice.hosted_invoice_url).status_code == 200

    config = stripe_client.v1.billing_portal.configurations.create(
        params={"features": {"invoice_history": {"enabled": False}, "payment_method_update": {"enabled": False}}}
    )
    bare = stripe_client.v1.billing_portal.sessions.create(params={"customer": customer.id, "configuration": config.id})
    html = control.get(bare.url).text
    assert "Invoice history" not in html and "Update payment method" not in html and "Cancel subscription" not in html
    assert control.get(bare.url + "/payment-method").status_code == 404


def test_portal_cancel_flow_redirects_per_after_completion(
    stripe_client: stripe.StripeClient, control: httpx.Client, webhook_receiver: WebhookReceiver
) -> None:
    price = monthly_price(stripe_client)
    customer, _, sub = subscribe(stripe_client, price)
    session = stripe_client.v1.billing_portal.sessions.create(
        params={
            "customer": customer.id,
            "flow_data": {
                "type": "subscription_cancel",
                "subscription_cancel": {"subscription": sub.id},
                "after_completion": {
                    "type": "hosted_confirmation",
                    "hosted_confirmation": {"custom_message": "Sorry to see you go"},
                },
            },
        }
    )
    first = control.get(session.url)
    assert first.status_code == 303
    form = control.get(first.headers["location"]).text
    assert 'for="reason-too_expensive"' in form
    done = control.post(first.headers["location"], data={"reason": "too_expensive"})
    assert done.status_code == 303
    assert "Sorry to see you go" in control.get(done.headers["location"]).text
    canceled = stripe_client.v1.subscriptions.retrieve(sub.id)
    assert canceled.cancel_at_period_end is True
    assert canceled.cancellation_details.feedback == "too_expensive"
    webhook_receiver.wait_for_types("customer.subscription.updated")


def test_unknown_hosted_page_is_404(control: httpx.Client) -> None:
    assert control.get("/c/pay/cs_test_nope").status_code == 404
    assert control.get("/nothing-here").status_code == 404


def test_open_checkout_sessions_expire_after_a_day(
    stripe_client: stripe.StripeClient, control: httpx.Client, webhook_receiver: WebhookReceiver
) -> None:
    session = _session(stripe_client, monthly_price(stripe_client))
    control.post("/_emulator/clock/advance", json={"seconds": 86400 + 1}).raise_for_status()
    assert stripe_client.v1.checkout.sessions.retrieve(session.id).status == "expired"
    webhook_receiver.wait_for_types("checkout.session.expired")
    assert "no longer available" in control.get(str(session.url)).text


def test_checkout_for_a_customer_without_email_asks_for_one_and_stores_it(
    stripe_client: stripe.StripeClient, control: httpx.Client
) -> None:
    customer = stripe_client.v1.customers.create(params={"name": "Newbie"})
    session = _session(stripe_client, monthly_price(stripe_client), customer=customer.id)
    page = control.get(session.url)
    assert page.status_code == 200
    email_input = page.text[page.text.index('id="email"') :].split(">", 1)[0]
    assert "readonly" not in email_input, "the person must be able to type an email"

    refused = control.post(session.url, data={"email": "", "cardNumber": "4242424242424242", **CARD})
    assert refused.status_code == 402 and "Your email address is invalid." in refused.text
    paid = control.post(session.url, data={"email": "newbie@example.com", "cardNumber": "4242424242424242", **CARD})
    assert paid.status_code == 303
    assert stripe_client.v1.customers.retrieve(customer.id).email == "newbie@example.com"


def test_checkout_keeps_the_email_of_a_customer_that_has_one(
    stripe_client: stripe.StripeClient, control: httpx.Client
) -> None:
    customer = stripe_client.v1.customers.create(params={"email": "kept@example.com"})
    session = _session(stripe_client, monthly_price(stripe_client), customer=customer.id)
    page = control.get(session.url)
    email_input = page.text[page.text.index('id="email"') :].split(">", 1)[0]
    assert "readonly" in email_input and "kept@example.com" in email_input
    paid = control.post(session.url, data={"email": "other@example.com", "cardNumber": "4242424242424242", **CARD})
    assert paid.status_code == 303
    assert stripe_client.v1.customers.retrieve(customer.id).email == "kept@example.com"


def test_card_errors_speak_the_page_language_as_stripes_pages_do(
    stripe_client: stripe.StripeClient, control: httpx.Client
) -> None:
    session = _session(stripe_client, monthly_price(stripe_client), locale="de")
    typed = {"email": "x@example.com", "cardNumber": "4242424242424242", "cardCvc": "123", "billingName": "Ada"}
    incomplete = control.post(session.url, data={**typed, "cardExpiry": "1"})
    declined = control.post(session.url, data={**typed, "cardNumber": "4000000000009995", "cardExpiry": "12 / 34"})
    assert "Das Ablaufdatum Ihrer Karte ist unvollständig." in incomplete.text
    assert "Ihre Karte ist nicht ausreichend gedeckt." in declined.text and declined.status_code == 402
    assert "insufficient funds" not in declined.text.split("Testkarten")[0]
    api = control.post(
        "/v1/payment_methods",
        data={"type": "card", "card[number]": "4242424242424241", "card[exp_month]": "12", "card[exp_year]": "2034"},
        headers={"Authorization": "Bearer sk_test_x", "Accept-Language": "de"},
    )
    assert api.json()["error"]["message"] == "Your card number is incorrect.", "the API itself stays English"
