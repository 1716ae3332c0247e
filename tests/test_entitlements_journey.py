"""Entitlements end to end: a person's plan through Checkout and Stripe (the emulator), the host
API's answers and the signed `customer.state_changed` webhooks the host receives, at every step."""

from __future__ import annotations

import dataclasses
import json
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
import pytest
import stripe
from standardwebhooks.webhooks import Webhook

from app.auth.tables import User
from app.billing.tables import StripeEvent
from app.entitlements.api_keys import create_key
from app.entitlements.delivery import deliver_due
from app.entitlements.service import add_override, refresh_due
from app.entitlements.tables import Entitlement, HostWebhook
from app.settings import EntitlementSettings, HostWebhookTarget, Settings
from app.webhooks.service import drain
from tests.support.billing import buy, chaos, settle, signed_in_user
from tests.support.host import HOST_SECRET, HostReceiver, host_receiver

STARTER = ["email_support", "projects_one", "storage_5gb"]
PRO = ["custom_domain", "priority_support", "projects_unlimited", "storage_100gb"]


@pytest.fixture(scope="module")
def host() -> Iterator[HostReceiver]:
    with host_receiver() as receiver:
        yield receiver


@pytest.fixture
def billing_settings(billing_settings: Settings, host: HostReceiver) -> Settings:
    """The billing app, telling the host receiver about state changes."""
    host.take()
    host.status = 200
    return dataclasses.replace(
        billing_settings,
        entitlements=EntitlementSettings(
            grace_days=7, webhook_endpoints=(HostWebhookTarget(host.url, HOST_SECRET),), api_rate_limit=600
        ),
    )


@pytest.fixture
def sdk(stripe_emulator: Any) -> stripe.StripeClient:
    """The `stripe` SDK on the emulator, for what a person would do in the Customer Portal."""
    return stripe.StripeClient("sk_test_integration", base_addresses={"api": stripe_emulator.url})


class Host:
    """The host product's view: the state API (with its key) and the webhooks it verified."""

    def __init__(self, client: httpx.AsyncClient, key: str, receiver: HostReceiver, gateway: Any, emulator: str):
        self.client, self.key, self.receiver, self.gateway, self.emulator = client, key, receiver, gateway, emulator
        self.versions: list[int] = []
        self.message_ids: list[str] = []

    async def state(self, external_id: str) -> dict[str, Any]:
        response = await self.client.get(
            f"/api/v1/customers/{external_id}/state", headers={"Authorization": f"Bearer {self.key}"}
        )
        assert response.status_code == 200, response.text
        body: dict[str, Any] = response.json()
        return body

    async def check(self, external_id: str, feature: str) -> dict[str, Any]:
        response = await self.client.get(
            f"/api/v1/customers/{external_id}/entitlements/{feature}", headers={"Authorization": f"Bearer {self.key}"}
        )
        assert response.status_code == 200, response.text
        body: dict[str, Any] = response.json()
        return body

    async def settle(self) -> None:
        """Let Stripe's webhooks arrive, apply them, and deliver what the host is owed."""
        await settle(self.emulator)
        await drain(self.gateway)
        while await deliver_due():
            pass

    def webhooks(self) -> list[dict[str, Any]]:
        """The webhooks received since the last call, each verified with the Standard Webhooks library."""
        verified = []
        for item in self.receiver.take():
            payload = Webhook(HOST_SECRET).verify(item.body, item.headers)
            assert payload["type"] == "customer.state_changed"
            self.message_ids.append(item.headers["webhook-id"])
            self.versions.append(payload["data"]["version"])
            verified.append(payload["data"])
        assert len(set(self.message_ids)) == len(self.message_ids), "a webhook was delivered twice"
        assert self.versions == sorted(self.versions), "webhooks arrived out of order"
        return verified


def keys(state: dict[str, Any]) -> list[str]:
    return sorted(e["feature"] for e in state["entitlements"])


@pytest.fixture
async def host_view(billing_client: httpx.AsyncClient, host: HostReceiver, gateway: Any, stripe_emulator: Any) -> Host:
    _, key = await create_key("journey")
    return Host(billing_client, key, host, gateway, stripe_emulator.url)


async def _subscription(sdk: stripe.StripeClient, customer_id: str) -> Any:
    (sub,) = sdk.v1.subscriptions.list(params={"customer": customer_id, "status": "all"}).data
    return sub


def _switch(sdk: stripe.StripeClient, sub: Any, lookup_key: str) -> None:
    (price,) = sdk.v1.prices.list(params={"lookup_keys": [lookup_key]}).data
    sdk.v1.subscriptions.update(sub.id, params={"items": [{"id": sub["items"].data[0].id, "price": price.id}]})


async def test_a_customer_journey_reaches_the_host_api_and_webhooks_at_every_step(
    billing_client: httpx.AsyncClient, oidc_provider: Any, host_view: Host, sdk: stripe.StripeClient, gateway: Any
) -> None:
    host = host_view
    user = await signed_in_user(billing_client, oidc_provider, "erin")

    # Subscribe to Starter.
    await buy(billing_client, "starter_monthly")
    await host.settle()
    state = await host.state("erin")
    assert (state["plan"]["key"], state["status"], state["premium"]) == ("starter", "active", True)
    assert keys(state) == STARTER
    customer_id = state["stripe_customer_id"]
    sub = await _subscription(sdk, customer_id)
    assert state["renews_at"] is not None and state["cancels_at"] is None
    assert state["entitlements"][0]["description"] == (f"from subscription {sub.id} on {sub['items'].data[0].price.id}")
    (sent,) = host.webhooks()
    assert keys(sent) == STARTER and sent["version"] == state["version"] == 1
    # Found by verified email too.
    assert (await host.state("erin@example.com"))["external_id"] == "erin"

    # Upgrade to Pro.
    _switch(sdk, sub, "pro_monthly")
    await host.settle()
    state = await host.state("erin")
    assert (state["plan"]["key"], keys(state)) == ("pro", PRO)
    assert (await host.check("erin", "custom_domain"))["entitled"] is True
    (sent,) = host.webhooks()
    assert keys(sent) == PRO
    # The person sees what Pro includes, and what a switch or a cancellation would take away.
    account = (await billing_client.get("/account")).text
    assert "Your plan includes" in account and "Custom domain" in account and "1 project" not in account
    plans = (await billing_client.get("/plans")).text
    lost = "100 GB storage, Custom domain, Priority email support, Unlimited projects."
    assert f"Switching to Starter, you would lose: {lost}" in plans
    assert "Switching to Business, you would lose" not in plans, "an upgrade warns of no loss"
    portal = (await billing_client.get("/portal")).text
    assert f"Cancelling ends your access to: {lost}" in portal

    # Downgrade to Starter: Pro's features are gone.
    _switch(sdk, await _subscription(sdk, customer_id), "starter_monthly")
    await host.settle()
    state = await host.state("erin")
    assert (state["plan"]["key"], keys(state)) == ("starter", STARTER)
    check = await host.check("erin", "custom_domain")
    assert (check["entitled"], check["source"]) == (False, None)
    (sent,) = host.webhooks()
    assert keys(sent) == STARTER

    # Failed renewal: past due, features kept for the 7-day grace period.
    failing = sdk.v1.payment_methods.attach("pm_card_chargeCustomerFail", params={"customer": customer_id})
    sdk.v1.customers.update(customer_id, params={"invoice_settings": {"default_payment_method": failing.id}})
    sdk.v1.subscriptions.update(sub.id, params={"default_payment_method": failing.id})
    await chaos(host.emulator)  # no switches: just make sure nothing is held
    async with httpx.AsyncClient(base_url=host.emulator) as control:
        (await control.post("/_emulator/clock/advance", json={"seconds": 31 * 86400})).raise_for_status()
    await host.settle()
    state = await host.state("erin")
    assert (state["status"], state["premium"], keys(state)) == ("past_due", True, STARTER)
    period_start = datetime.fromtimestamp(
        (await _subscription(sdk, customer_id))["items"].data[0].current_period_start, UTC
    )
    grace_end = period_start + timedelta(days=7)
    assert {e["until"] for e in state["entitlements"]} == {grace_end.isoformat().replace("+00:00", "Z")}
    assert "grace period until" in state["entitlements"][0]["description"]
    (sent,) = host.webhooks()
    assert sent["status"] == "past_due"

    # The grace period ends with no event from Stripe: the delivery loop's sweep takes the features away.
    assert await refresh_due(now=grace_end + timedelta(seconds=1)) == 1
    await host.settle()
    state = await host.state("erin")
    assert (state["status"], state["premium"], keys(state)) == ("past_due", False, [])
    assert not await Entitlement.exists().where(Entitlement.user == user.id)
    (sent,) = host.webhooks()
    assert sent["entitlements"] == []

    # Recovery: a working card pays the open invoice.
    visa = sdk.v1.payment_methods.attach("pm_card_visa", params={"customer": customer_id})
    sdk.v1.subscriptions.update(sub.id, params={"default_payment_method": visa.id})
    sdk.v1.invoices.pay((await _subscription(sdk, customer_id)).latest_invoice)
    await host.settle()
    state = await host.state("erin")
    assert (state["status"], keys(state)) == ("active", STARTER)
    assert all(e["until"] is None for e in state["entitlements"])
    (sent,) = host.webhooks()
    assert sent["status"] == "active"

    # Cancel now: nothing is granted.
    sdk.v1.subscriptions.cancel(sub.id)
    await host.settle()
    state = await host.state("erin")
    assert (state["status"], state["premium"], state["plan"], keys(state)) == ("canceled", False, None, [])
    (sent,) = host.webhooks()
    assert sent["status"] == "canceled"

    # A lifetime purchase grants its plan's features for good.
    await buy(billing_client, "pro_lifetime")
    await host.settle()
    state = await host.state("erin")
    assert (state["plan"]["interval"], state["status"], keys(state)) == ("lifetime", "active", PRO)
    lifetime = state["entitlements"][0]
    assert lifetime["source"] == "lifetime" and lifetime["until"] is None
    assert lifetime["description"] == f"from the lifetime purchase {lifetime['source_id']}"
    assert "lifetime access" in (await billing_client.get("/account")).text
    (sent,) = host.webhooks()
    assert sent["plan"]["interval"] == "lifetime"

    # An operator grants Team seats for ten days.
    ends = datetime.now(UTC).replace(microsecond=0) + timedelta(days=10)
    await add_override(user.id, "team_seats", "grant", ends, note="pilot")
    await host.settle()
    check = await host.check("erin", "team_seats")
    assert (check["entitled"], check["source"]) == (True, "grant")
    assert check["until"] == ends.isoformat().replace("+00:00", "Z")
    assert check["description"] == f"granted by an operator until {check['until']}"
    (sent,) = host.webhooks()
    assert "team_seats" in keys(sent)

    # ... and the grant ends on its date.
    assert await refresh_due(now=ends + timedelta(seconds=1)) == 1
    await host.settle()
    assert (await host.check("erin", "team_seats"))["entitled"] is False
    (sent,) = host.webhooks()
    assert keys(sent) == PRO

    assert host.versions == list(range(1, 11))
    assert await HostWebhook.count().where(HostWebhook.status != "delivered") == 0


async def test_events_out_of_order_end_in_the_right_state_and_tell_the_host_nothing_new(
    billing_client: httpx.AsyncClient, oidc_provider: Any, host_view: Host, sdk: stripe.StripeClient
) -> None:
    host = host_view
    await signed_in_user(billing_client, oidc_provider, "olive")
    await buy(billing_client, "starter_monthly")
    await host.settle()
    customer_id = (await host.state("olive"))["stripe_customer_id"]
    assert len(host.webhooks()) == 1

    await chaos(host.emulator, hold=True, shuffle=True, duplicate=True)
    _switch(sdk, await _subscription(sdk, customer_id), "business_monthly")
    _switch(sdk, await _subscription(sdk, customer_id), "pro_monthly")
    _switch(sdk, await _subscription(sdk, customer_id), "starter_monthly")
    await chaos(host.emulator, hold=False, shuffle=True, duplicate=True)
    await host.settle()
    await chaos(host.emulator, hold=False, shuffle=False, duplicate=False)

    state = await host.state("olive")
    assert (state["plan"]["key"], keys(state)) == ("starter", STARTER)
    assert host.webhooks() == [], "the state did not change, so the host hears nothing"


async def test_twelve_features_from_stripe_are_all_kept(
    billing_client: httpx.AsyncClient, oidc_provider: Any, host_view: Host, sdk: stripe.StripeClient, gateway: Any
) -> None:
    """A product outside the catalogue: every feature comes from Stripe's list (the summary event has 10)."""
    host = host_view
    await signed_in_user(billing_client, oidc_provider, "twelve")
    await buy(billing_client, "starter_monthly")
    await host.settle()
    host.webhooks()
    customer_id = (await host.state("twelve"))["stripe_customer_id"]
    product = sdk.v1.products.create(params={"name": "Add-on pack"})
    price = sdk.v1.prices.create(
        params={"product": product.id, "unit_amount": 500, "currency": "usd", "recurring": {"interval": "month"}}
    )
    wanted = [f"addon_{n:02d}" for n in range(12)]
    for key in wanted:
        feature = sdk.v1.entitlements.features.create(params={"name": key, "lookup_key": key})
        sdk.v1.products.features.create(product.id, params={"entitlement_feature": feature.id})
    sdk.v1.subscriptions.create(params={"customer": customer_id, "items": [{"price": price.id}]})
    await host.settle()

    state = await host.state("twelve")
    from_stripe = sorted(e["feature"] for e in state["entitlements"] if e["source"] == "stripe")
    assert from_stripe == wanted
    assert keys(state) == sorted(wanted + STARTER)
    (sent,) = host.webhooks()
    assert len(sent["entitlements"]) == 15
    # Stripe's summary event carried only 10 of them; the sync listed the rest.
    summaries = (
        await StripeEvent.select(StripeEvent.payload)
        .where(
            (StripeEvent.type == "entitlements.active_entitlement_summary.updated")
            & (StripeEvent.status == "processed")
        )
        .order_by(StripeEvent.id)
    )
    assert summaries, "the summary event was received and applied"
    last = summaries[-1]["payload"]
    last = json.loads(last) if isinstance(last, str) else last
    assert len(last["data"]["object"]["entitlements"]["data"]) == 10
    assert last["data"]["object"]["entitlements"]["has_more"] is True


async def test_the_host_api_needs_a_valid_key_and_knows_its_people(
    billing_client: httpx.AsyncClient, oidc_provider: Any, host_view: Host
) -> None:
    host = host_view
    await signed_in_user(billing_client, oidc_provider, "nobody-paid")
    assert (await billing_client.get("/api/v1/customers/nobody-paid/state")).status_code == 401
    wrong = {"Authorization": "Bearer bpk_0000_nope"}
    assert (await billing_client.get("/api/v1/customers/nobody-paid/state", headers=wrong)).status_code == 401
    state = await host.state("nobody-paid")
    assert (state["status"], state["premium"], state["entitlements"]) == ("none", False, [])
    auth = {"Authorization": f"Bearer {host.key}"}
    assert (await billing_client.get("/api/v1/customers/ghost/state", headers=auth)).status_code == 404
    unknown = await billing_client.get("/api/v1/customers/nobody-paid/entitlements/no_such_feature", headers=auth)
    assert unknown.status_code == 404
    assert (await host.check("nobody-paid", "custom_domain"))["entitled"] is False

    from app.entitlements.api_keys import revoke_key

    await revoke_key(host.key.split("_")[1])
    assert (await billing_client.get("/api/v1/customers/nobody-paid/state", headers=auth)).status_code == 401
    assert await User.count() >= 1
