"""The emulator's hosted Checkout and Customer Portal pages, driven in Chromium like a person would.

Each scenario checks the resulting objects through the API and the signed webhooks a real HTTP endpoint
received (verified with `stripe.Webhook.construct_event`).
"""

from __future__ import annotations

import asyncio
import re
from collections.abc import AsyncIterator, Iterator
from typing import Any

import httpx
import pytest
import stripe
from playwright.async_api import Page, expect

from e2e.stripe_emulator import EmulatorConfig, RunningEmulator, WebhookTarget, run_in_thread
from e2e.stripe_emulator.testing import WebhookReceiver

pytestmark = [pytest.mark.browser, pytest.mark.asyncio(loop_scope="session")]
API_KEY = "sk_test_hosted_pages"


@pytest.fixture(scope="module")
def receiver() -> Iterator[WebhookReceiver]:
    r = WebhookReceiver()
    yield r
    r.stop()


@pytest.fixture(scope="module")
def emulator(receiver: WebhookReceiver) -> Iterator[RunningEmulator]:
    running = run_in_thread(
        EmulatorConfig(
            port=0,
            webhooks=[WebhookTarget(receiver.url, receiver.secret)],
            retry_schedule=[0.2],
            business_name="Acme Cloud",
        )
    )
    yield running
    running.stop()


@pytest.fixture
async def client(emulator: RunningEmulator, receiver: WebhookReceiver) -> AsyncIterator[stripe.StripeClient]:
    async with httpx.AsyncClient(base_url=emulator.url) as http:
        (await http.post("/_emulator/reset")).raise_for_status()
        # Deliveries in flight at the reset land before the receiver forgets.
        for _ in range(500):
            if (await http.get("/_emulator/deliveries")).json()["idle"]:
                break
            await asyncio.sleep(0.01)
    receiver.clear()
    yield stripe.StripeClient(API_KEY, base_addresses={"api": emulator.url}, max_network_retries=0)


async def prices(client: stripe.StripeClient) -> tuple[Any, Any, Any, Any]:
    product: Any = await client.v1.products.create_async(params={"name": "Acme Pro"})
    monthly: Any = await client.v1.prices.create_async(
        params={"product": product.id, "unit_amount": 1000, "currency": "usd", "recurring": {"interval": "month"}}
    )
    yearly: Any = await client.v1.prices.create_async(
        params={"product": product.id, "unit_amount": 10000, "currency": "usd", "recurring": {"interval": "year"}}
    )
    team: Any = await client.v1.prices.create_async(
        params={"product": product.id, "unit_amount": 2500, "currency": "usd", "recurring": {"interval": "month"}}
    )
    return product, monthly, yearly, team


async def subscribed(client: stripe.StripeClient) -> tuple[Any, Any, tuple[Any, Any, Any, Any]]:
    catalog = await prices(client)
    customer: Any = await client.v1.customers.create_async(params={"email": "ada@example.com", "name": "Ada"})
    pm: Any = await client.v1.payment_methods.attach_async("pm_card_visa", params={"customer": customer.id})
    await client.v1.customers.update_async(customer.id, params={"invoice_settings": {"default_payment_method": pm.id}})
    sub: Any = await client.v1.subscriptions.create_async(
        params={"customer": customer.id, "items": [{"price": catalog[1].id}]}
    )
    return customer, sub, catalog


async def portal_config(
    client: stripe.StripeClient, catalog: tuple[Any, Any, Any, Any], mode: str = "at_period_end"
) -> Any:
    product, monthly, yearly, team = catalog
    return await client.v1.billing_portal.configurations.create_async(
        params={
            "business_profile": {"headline": "Manage your Acme plan"},
            "features": {
                "customer_update": {"enabled": True, "allowed_updates": ["email", "address", "tax_id"]},
                "invoice_history": {"enabled": True},
                "payment_method_update": {"enabled": True},
                "subscription_cancel": {
                    "enabled": True,
                    "mode": mode,
                    "cancellation_reason": {"enabled": True, "options": ["too_expensive", "unused", "other"]},
                },
                "subscription_update": {
                    "enabled": True,
                    "default_allowed_updates": ["price"],
                    "proration_behavior": "create_prorations",
                    "products": [{"product": product.id, "prices": [monthly.id, yearly.id, team.id]}],
                },
            },
        }
    )


async def fill_card(page: Page, number: str) -> None:
    await page.get_by_label("Card number").fill(number)
    await page.get_by_label("Expiration date (MM / YY)").fill("12 / 34")
    await page.get_by_label("Security code (CVC)").fill("123")


async def test_paying_with_4242_on_checkout_subscribes_and_returns_to_success_url(
    page: Page, client: stripe.StripeClient, receiver: WebhookReceiver
) -> None:
    _, monthly, _, _ = await prices(client)
    session: Any = await client.v1.checkout.sessions.create_async(
        params={
            "mode": "subscription",
            "line_items": [{"price": monthly.id, "quantity": 1}],
            "success_url": f"{receiver.base_url}/success?session_id={{CHECKOUT_SESSION_ID}}",
            "cancel_url": f"{receiver.base_url}/pricing",
            "client_reference_id": "user-1",
        }
    )
    await page.goto(str(session.url))
    await expect(page.get_by_role("heading", name="Subscribe to Acme Pro")).to_be_visible()
    await expect(page.locator("#total")).to_have_text("$10.00")
    await expect(page.get_by_role("link", name="Back")).to_have_attribute("href", f"{receiver.base_url}/pricing")
    await page.get_by_label("Email").fill("grace@example.com")
    await fill_card(page, "4242 4242 4242 4242")
    await page.get_by_label("Cardholder name").fill("Grace Hopper")
    await page.get_by_role("button", name="Subscribe").click()
    await page.wait_for_url(f"{receiver.base_url}/success?session_id={session.id}")

    done: Any = await client.v1.checkout.sessions.retrieve_async(session.id, params={"expand": ["subscription"]})
    assert (done.status, done.payment_status, done.subscription.status) == ("complete", "paid", "active")
    customer: Any = await client.v1.customers.retrieve_async(
        str(done.customer), params={"expand": ["invoice_settings.default_payment_method"]}
    )
    assert customer.email == "grace@example.com"
    assert customer.invoice_settings.default_payment_method.card.last4 == "4242"
    events = receiver.wait_for_types(
        "checkout.session.completed",
        "customer.created",
        "customer.subscription.created",
        "invoice.paid",
        "charge.succeeded",
    )
    completed = next(e for e in events if e["type"] == "checkout.session.completed")
    assert completed["data"]["object"]["client_reference_id"] == "user-1"
    assert not receiver.rejected


async def test_declined_card_on_checkout_shows_the_error_and_stays_open(
    page: Page, client: stripe.StripeClient, receiver: WebhookReceiver
) -> None:
    _, monthly, _, _ = await prices(client)
    session: Any = await client.v1.checkout.sessions.create_async(
        params={
            "mode": "subscription",
            "line_items": [{"price": monthly.id, "quantity": 1}],
            "success_url": f"{receiver.base_url}/success",
        }
    )
    await page.goto(str(session.url))
    await page.get_by_label("Email").fill("declined@example.com")
    await fill_card(page, "4000 0000 0000 0002")
    await page.get_by_role("button", name="Subscribe").click()
    await expect(page.get_by_role("alert")).to_have_text("Your card was declined.")
    assert page.url == session.url
    assert (await client.v1.checkout.sessions.retrieve_async(session.id)).status == "open"
    assert (await client.v1.customers.list_async()).data == []
    assert "checkout.session.completed" not in receiver.types()


async def test_portal_update_payment_method_makes_the_new_card_the_default(
    page: Page, client: stripe.StripeClient, receiver: WebhookReceiver
) -> None:
    customer, sub, catalog = await subscribed(client)
    config = await portal_config(client, catalog)
    session: Any = await client.v1.billing_portal.sessions.create_async(
        params={"customer": customer.id, "configuration": config.id, "return_url": f"{receiver.base_url}/account"}
    )
    await page.goto(str(session.url))
    await expect(page.get_by_role("link", name="Return to Acme Cloud")).to_have_attribute(
        "href", f"{receiver.base_url}/account"
    )
    await expect(page.get_by_text("Visa ending in 4242")).to_be_visible()
    await page.get_by_role("link", name="Update payment method").click()
    await fill_card(page, "5555 5555 5555 4444")
    await page.get_by_role("button", name="Save payment method").click()
    await expect(page.get_by_text("Mastercard ending in 4444, expires 12/2034 (Default)")).to_be_visible()

    customer_now: Any = await client.v1.customers.retrieve_async(
        customer.id, params={"expand": ["invoice_settings.default_payment_method"]}
    )
    assert customer_now.invoice_settings.default_payment_method.card.last4 == "4444"
    sub_now: Any = await client.v1.subscriptions.retrieve_async(sub.id)
    assert sub_now.default_payment_method == customer_now.invoice_settings.default_payment_method.id
    receiver.wait_for_types("payment_method.attached", "customer.updated", "customer.subscription.updated")


async def test_portal_cancel_flow_with_reason_cancels_at_period_end(
    page: Page, client: stripe.StripeClient, receiver: WebhookReceiver
) -> None:
    customer, sub, catalog = await subscribed(client)
    config = await portal_config(client, catalog)
    session: Any = await client.v1.billing_portal.sessions.create_async(
        params={
            "customer": customer.id,
            "configuration": config.id,
            "return_url": f"{receiver.base_url}/account",
            "flow_data": {
                "type": "subscription_cancel",
                "subscription_cancel": {"subscription": sub.id},
                "after_completion": {"type": "portal_homepage"},
            },
        }
    )
    await page.goto(str(session.url))
    await expect(page.get_by_role("heading", name="Cancel your subscription")).to_be_visible()
    await page.get_by_label("It's too expensive").check()
    await page.get_by_role("button", name="Cancel subscription").click()
    await expect(page.get_by_text(re.compile(r"Cancels on"))).to_be_visible()
    await expect(page.get_by_role("button", name="Renew subscription")).to_be_visible()

    after: Any = await client.v1.subscriptions.retrieve_async(sub.id)
    assert after.cancel_at_period_end is True
    assert after.cancellation_details.feedback == "too_expensive"

    # Deliveries arrive concurrently (another update, e.g. for the entitlements, may land first or last):
    # one of them reports the change with its previous value, as Stripe's `previous_attributes` does.
    def reports_the_cancellation(events: list[dict[str, Any]]) -> bool:
        return any(
            (e["data"].get("previous_attributes") or {}).get("cancel_at_period_end") is False
            for e in events
            if e["type"] == "customer.subscription.updated"
        )

    receiver.wait_for(reports_the_cancellation, timeout=30)


async def test_portal_immediate_cancel_ends_the_subscription_now(
    page: Page, client: stripe.StripeClient, receiver: WebhookReceiver
) -> None:
    customer, sub, catalog = await subscribed(client)
    config = await portal_config(client, catalog, mode="immediately")
    session: Any = await client.v1.billing_portal.sessions.create_async(
        params={"customer": customer.id, "configuration": config.id}
    )
    await page.goto(str(session.url))
    await page.get_by_role("link", name="Cancel subscription").click()
    await expect(page.get_by_text("will be canceled immediately")).to_be_visible()
    await page.get_by_role("button", name="Cancel subscription").click()
    await expect(page.get_by_text("No active subscription.")).to_be_visible()
    assert (await client.v1.subscriptions.retrieve_async(sub.id)).status == "canceled"
    receiver.wait_for_types("customer.subscription.deleted")


async def test_portal_switch_monthly_to_yearly_previews_and_confirms(
    page: Page, client: stripe.StripeClient, receiver: WebhookReceiver
) -> None:
    customer, sub, catalog = await subscribed(client)
    config = await portal_config(client, catalog)
    session: Any = await client.v1.billing_portal.sessions.create_async(
        params={
            "customer": customer.id,
            "configuration": config.id,
            "flow_data": {
                "type": "subscription_update",
                "subscription_update": {"subscription": sub.id},
                "after_completion": {"type": "redirect", "redirect": {"return_url": f"{receiver.base_url}/updated"}},
            },
        }
    )
    await page.goto(str(session.url))
    await page.get_by_label("Acme Pro, $100.00 per year").check()
    await page.get_by_role("button", name="Continue").click()
    await expect(page.get_by_role("heading", name="Confirm your update")).to_be_visible()
    await expect(page.get_by_text("Amount due today")).to_be_visible()
    await expect(page.locator("#amount-due")).to_have_text("$90.00")
    await page.get_by_role("button", name="Confirm").click()
    await page.wait_for_url(f"{receiver.base_url}/updated")

    after: Any = await client.v1.subscriptions.retrieve_async(sub.id, params={"expand": ["latest_invoice"]})
    assert after["items"].data[0].price.id == catalog[2].id
    assert after.latest_invoice.status == "paid"
    assert after.latest_invoice.amount_paid == 9000
    receiver.wait_for_types("customer.subscription.updated", "invoice.paid", "invoiceitem.created")


async def test_portal_confirms_a_given_update_with_hosted_confirmation(
    page: Page, client: stripe.StripeClient, receiver: WebhookReceiver
) -> None:
    customer, sub, catalog = await subscribed(client)
    config = await portal_config(client, catalog)
    team = catalog[3]
    session: Any = await client.v1.billing_portal.sessions.create_async(
        params={
            "customer": customer.id,
            "configuration": config.id,
            "return_url": f"{receiver.base_url}/account",
            "flow_data": {
                "type": "subscription_update_confirm",
                "subscription_update_confirm": {
                    "subscription": sub.id,
                    "items": [{"id": sub["items"].data[0].id, "price": team.id, "quantity": 2}],
                },
                "after_completion": {
                    "type": "hosted_confirmation",
                    "hosted_confirmation": {"custom_message": "Welcome to Team!"},
                },
            },
        }
    )
    await page.goto(str(session.url))
    await expect(page.get_by_text("Adjustment on your next invoice")).to_be_visible()
    await page.get_by_role("button", name="Confirm").click()
    await expect(page.get_by_role("status")).to_have_text("Welcome to Team!")
    await expect(page.get_by_role("link", name="Return to Acme Cloud")).to_be_visible()

    after: Any = await client.v1.subscriptions.retrieve_async(sub.id)
    assert (after["items"].data[0].price.id, after["items"].data[0].quantity) == (team.id, 2)
    pending: Any = await client.v1.invoice_items.list_async(params={"customer": customer.id, "pending": True})
    assert pending.data and all(ii.proration for ii in pending.data)
    receiver.wait_for_types("customer.subscription.updated")


async def test_portal_updates_email_address_and_tax_id(
    page: Page, client: stripe.StripeClient, receiver: WebhookReceiver
) -> None:
    customer, _, catalog = await subscribed(client)
    config = await portal_config(client, catalog)
    session: Any = await client.v1.billing_portal.sessions.create_async(
        params={"customer": customer.id, "configuration": config.id}
    )
    await page.goto(str(session.url))
    await page.get_by_role("link", name="Update information").click()
    await page.get_by_label("Email").fill("ada.lovelace@example.com")
    await page.get_by_label("Address line 1").fill("12 Analytical Row")
    await page.get_by_label("City").fill("London")
    await page.get_by_label("Postal code").fill("N1 9GU")
    await page.get_by_label("Country").fill("GB")
    await page.get_by_label("Tax ID type").select_option("gb_vat")
    await page.get_by_label("Tax ID", exact=True).fill("GB123456789")
    await page.get_by_role("button", name="Save").click()
    await expect(page.get_by_text("Your billing information has been updated.")).to_be_visible()
    await expect(page.get_by_text("GB123456789 (gb_vat)")).to_be_visible()

    after: Any = await client.v1.customers.retrieve_async(customer.id, params={"expand": ["tax_ids"]})
    assert after.email == "ada.lovelace@example.com"
    assert after.address.city == "London"
    assert after.tax_ids.data[0].value == "GB123456789"
    receiver.wait_for_types("customer.updated", "customer.tax_id.created")


async def test_invoice_history_links_open_the_hosted_invoice(page: Page, client: stripe.StripeClient) -> None:
    customer, sub, _ = await subscribed(client)
    session: Any = await client.v1.billing_portal.sessions.create_async(params={"customer": customer.id})
    await page.goto(str(session.url))
    invoice: Any = await client.v1.invoices.retrieve_async(str(sub.latest_invoice))
    await page.get_by_role("link", name=f"View invoice {invoice.number}").click()
    await expect(page.get_by_role("heading", name=f"Invoice {invoice.number}")).to_be_visible()
    await expect(page.locator("#invoice-status")).to_have_text("paid")


async def test_hosted_pages_have_no_axe_violations(
    page: Page, client: stripe.StripeClient, receiver: WebhookReceiver
) -> None:
    from axe_playwright_python.async_playwright import Axe

    customer, sub, catalog = await subscribed(client)
    config = await portal_config(client, catalog)
    checkout: Any = await client.v1.checkout.sessions.create_async(
        params={
            "mode": "subscription",
            "line_items": [{"price": catalog[1].id, "quantity": 1}],
            "success_url": f"{receiver.base_url}/success",
            "cancel_url": f"{receiver.base_url}/pricing",
        }
    )
    portal: Any = await client.v1.billing_portal.sessions.create_async(
        params={"customer": customer.id, "configuration": config.id, "return_url": f"{receiver.base_url}/account"}
    )
    base = str(portal.url)
    urls = [
        str(checkout.url),
        base,
        f"{base}/payment-method",
        f"{base}/billing",
        f"{base}/subscriptions/{sub.id}/cancel",
        f"{base}/subscriptions/{sub.id}/update",
        f"{base}/subscriptions/{sub.id}/update/confirm?price={catalog[2].id}",
    ]
    axe = Axe()
    for url in urls:
        await page.goto(url)
        results = await axe.run(page)
        assert results.violations_count == 0, f"{url}\n{results.generate_report()}"
