"""Keep my plan, the cancellation page and its reason, Manage Subscription's homepage session, and the
next charge: against the emulator over real HTTP."""

from __future__ import annotations

from typing import Any

import httpx
import pytest

from app.billing.tables import BillingChange, Subscription
from app.portal.tables import PortalSession
from tests.support.billing import buy, signed_in_user
from tests.test_portal import cancel_at_period_end_in_stripe, open_portal, return_from

pytestmark = pytest.mark.usefixtures("portal_configured")
Client = httpx.AsyncClient


def csrf(client: Client) -> str:
    return client.cookies.get("billing_csrf") or ""


async def subscriber_who_cancelled(client: Client, oidc_provider: Any, gateway: Any, subject: str) -> int:
    """A Pro monthly subscriber who cancelled through the cancellation workflow; returns the portal session id."""
    await signed_in_user(client, oidc_provider, subject)
    await buy(client, "pro_monthly")
    assert (await open_portal(client, "cancellation_process")).status_code == 303
    row = await PortalSession.objects().order_by(PortalSession.id, ascending=False).first()
    assert row is not None
    await cancel_at_period_end_in_stripe(gateway)
    return int(row.id)


async def test_keep_my_plan_withdraws_the_cancellation_at_stripe_and_says_so(
    billing_client: Client, oidc_provider: Any, gateway: Any
) -> None:
    ps = await subscriber_who_cancelled(billing_client, oidc_provider, gateway, "keeper")
    cancelled = await return_from(billing_client, ps)
    assert "Your plan ends on" in cancelled.text and 'action="/account/keep-plan"' in cancelled.text
    account = await billing_client.get("/account")
    assert "Cancels on" in account.text and "Keep my plan" in account.text

    kept = await billing_client.post("/account/keep-plan", data={"_csrf_token": csrf(billing_client)})
    assert kept.status_code == 303 and kept.headers["location"] == "/account"
    page = await billing_client.get("/account")
    assert "You kept your plan: it renews on" in page.text
    assert "Renews on" in page.text and "Cancels on" not in page.text and "Keep my plan" not in page.text
    sub = await Subscription.objects().first()
    assert sub is not None and sub.cancel_at_period_end is False
    remote = await gateway.client.v1.subscriptions.retrieve_async(sub.stripe_subscription_id)
    assert remote.cancel_at_period_end is False
    sources = [c.source for c in await BillingChange.objects().where(BillingChange.kind == "cancellation")]
    assert "keep_plan" in sources


async def test_keep_my_plan_without_a_cancellation_changes_nothing(billing_client: Client, oidc_provider: Any) -> None:
    await signed_in_user(billing_client, oidc_provider, "steady")
    await buy(billing_client, "starter_monthly")
    response = await billing_client.post("/account/keep-plan", data={"_csrf_token": csrf(billing_client)})
    assert response.status_code == 303
    assert "nothing to undo" in (await billing_client.get("/account")).text


async def test_a_second_cancellation_is_refused_with_what_to_do_instead(
    billing_client: Client, oidc_provider: Any, gateway: Any
) -> None:
    ps = await subscriber_who_cancelled(billing_client, oidc_provider, gateway, "twice")
    await return_from(billing_client, ps)
    portal = await billing_client.get("/portal")
    assert 'data-testid="cancellation-pending"' in portal.text and "Keep my plan" in portal.text
    assert ">Cancel subscription</span>" not in portal.text
    again = await open_portal(billing_client, "cancellation_process")
    assert again.status_code == 303 and again.headers["location"] == "/account"
    page = await billing_client.get("/account")
    assert "Your plan already cancels on" in page.text and "try again in a minute" not in page.text
    assert await PortalSession.count() == 1


async def test_stripe_refusal_gets_a_precise_message_not_try_again(
    billing_client: Client, oidc_provider: Any, gateway: Any
) -> None:
    await signed_in_user(billing_client, oidc_provider, "refused")
    await buy(billing_client, "pro_monthly")
    sub = await Subscription.objects().first()
    assert sub is not None
    # The local copy still says "cancels", but at Stripe the subscription already ended.
    await Subscription.update({Subscription.cancel_at_period_end: True}).where(Subscription.id == sub.id)
    await gateway.client.v1.subscriptions.cancel_async(sub.stripe_subscription_id)
    response = await billing_client.post("/account/keep-plan", data={"_csrf_token": csrf(billing_client)})
    assert response.status_code == 409
    assert "already ended" in response.text and "try again" not in response.text
    assert "Reference" in response.text


async def test_cancellation_reason_is_asked_once_and_stored(
    billing_client: Client, oidc_provider: Any, gateway: Any
) -> None:
    ps = await subscriber_who_cancelled(billing_client, oidc_provider, gateway, "leaver")
    page = await return_from(billing_client, ps)
    assert "Why are you leaving?" in page.text and 'value="too_expensive"' in page.text
    bad = await billing_client.post(
        "/portal/cancelled", data={"ps": str(ps), "reason": "drop table", "_csrf_token": csrf(billing_client)}
    )
    assert bad.status_code == 400 and "Choose one of the listed reasons." in bad.text
    sent = await billing_client.post(
        "/portal/cancelled", data={"ps": str(ps), "reason": "too_expensive", "_csrf_token": csrf(billing_client)}
    )
    assert sent.status_code == 303
    assert "Thank you for telling us" in (await billing_client.get("/account")).text
    row = await PortalSession.objects().get(PortalSession.id == ps)
    assert row is not None and row.cancellation_reason == "too_expensive" and row.cancellation_reason_at
    again = await billing_client.get(f"/portal/cancelled?ps={ps}")
    assert "Your plan ends on" in again.text and "Why are you leaving?" not in again.text
    async with httpx.AsyncClient(base_url=str(billing_client.base_url), timeout=30) as other:
        await signed_in_user(other, oidc_provider, "nosy")
        foreign = await other.post(
            "/portal/cancelled", data={"ps": str(ps), "reason": "other", "_csrf_token": csrf(other)}
        )
        assert foreign.status_code == 404


async def test_reason_is_not_asked_when_stripe_collected_one(
    billing_client: Client, oidc_provider: Any, gateway: Any
) -> None:
    ps = await subscriber_who_cancelled(billing_client, oidc_provider, gateway, "explained")
    sub = await Subscription.objects().first()
    assert sub is not None
    await gateway.client.v1.subscriptions.update_async(
        sub.stripe_subscription_id, params={"cancellation_details": {"feedback": "too_expensive"}}
    )
    page = await return_from(billing_client, ps)
    assert "Your plan ends on" in page.text and "Why are you leaving?" not in page.text


async def test_manage_subscription_opens_the_portal_homepage_with_everything_enabled(
    billing_client: Client, oidc_provider: Any, gateway: Any
) -> None:
    await signed_in_user(billing_client, oidc_provider, "manager")
    await buy(billing_client, "pro_monthly")
    account = await billing_client.get("/account")
    assert 'name="workflow" value="overview"' in account.text
    response = await open_portal(billing_client, "overview")
    assert response.status_code == 303
    created = [e async for e in gateway.events(type="billing_portal.session.created")]
    session = created[0]["data"]["object"]
    assert session["flow"] is None
    configuration = await gateway.client.v1.billing_portal.configurations.retrieve_async(session["configuration"])
    features = configuration.features
    assert configuration.metadata["workflow"] == "overview"
    assert features.payment_method_update.enabled and features.invoice_history.enabled
    assert features.subscription_cancel.enabled and features.subscription_update.enabled
    assert features.customer_update.enabled


async def test_account_shows_the_next_charge_from_stripes_invoice_preview(
    billing_client: Client, oidc_provider: Any
) -> None:
    await signed_in_user(billing_client, oidc_provider, "renewer")
    await buy(billing_client, "pro_monthly")
    sub = await Subscription.objects().first()
    assert sub is not None
    assert sub.next_charge_amount_cents == 1900 and sub.next_charge_currency == "usd"
    assert sub.next_charge_at == sub.current_period_end
    page = await billing_client.get("/account")
    assert 'data-testid="next-charge"' in page.text and "$19.00 on" in page.text
