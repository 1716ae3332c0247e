"""Contract tests of the JSON API's billing and portal endpoints and of every compatibility route,
against the Stripe emulator over real HTTP (the exact request and response shapes and error cases)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
import pytest
from litestar import Litestar, Response, post

from app.asgi import create_app
from app.auth.tables import User
from app.billing.tables import Customer, PaymentTransaction, Subscription
from app.portal.tables import PortalSession
from app.settings import Settings
from app.webhooks.service import drain
from tests.conftest import settings_env
from tests.support.billing import buy, settle, signed_in_user
from tests.support.servers import free_port, serve_in_loop, serve_in_thread
from tests.test_api_auth import assert_envelope

Client = httpx.AsyncClient


def token_headers(client: Client, provider: Any, subject: str, **extra: str) -> dict[str, str]:
    token = provider.access_token(subject, f"{client.base_url}/api")
    return {"Authorization": f"Bearer {token}", **extra}


async def confirm_like_stripe_js(emulator_url: str, payment_intent_id: str, client_secret: str, card: str) -> Any:
    """What Stripe.js `confirmCardPayment(client_secret, {payment_method})` sends: the publishable key
    and the client secret, no secret key."""
    async with httpx.AsyncClient(base_url=emulator_url) as http:
        return await http.post(
            f"/v1/payment_intents/{payment_intent_id}/confirm",
            data={"payment_method": card, "client_secret": client_secret, "key": "pk_test_integration"},
        )


async def test_a_payment_intent_bought_through_the_api_lands_in_both_histories(
    billing_client: Client, oidc_provider: Any, stripe_emulator: Any, gateway: Any
) -> None:
    await signed_in_user(billing_client, oidc_provider, "pia")
    auth = token_headers(billing_client, oidc_provider, "pia")

    # The client cannot choose the amount: unknown fields are ignored, the catalogue decides.
    created = await billing_client.post(
        "/api/v1/billing/payment-intents", json={"price": "pro_lifetime", "amount": 1}, headers=auth
    )

    assert created.status_code == 201, created.text
    body = created.json()
    assert set(body) == {"payment_intent_id", "client_secret", "amount_cents", "currency", "publishable_key"}
    assert body["amount_cents"] == 49900 and body["currency"] == "usd"
    assert body["publishable_key"] == "pk_test_integration"
    assert body["client_secret"].startswith(body["payment_intent_id"] + "_secret_")

    confirmed = await confirm_like_stripe_js(
        stripe_emulator.url, body["payment_intent_id"], body["client_secret"], "pm_card_visa"
    )
    assert confirmed.status_code == 200, confirmed.text
    assert confirmed.json()["status"] == "succeeded"
    await settle(stripe_emulator.url)
    await drain(gateway)

    page = await billing_client.get("/billing/history")
    assert page.status_code == 200
    assert "Pro — lifetime access" in page.text and "$499.00" in page.text

    history = (await billing_client.get("/api/v1/billing/history", headers=auth)).json()
    assert history["total"] == 1 and history["has_more"] is False and history["next_cursor"] is None
    [payment] = history["transactions"]
    assert payment["id"] == body["payment_intent_id"]
    assert payment["status"] == "succeeded" and payment["amount_cents"] == 49900
    assert payment["description"] == "Pro — lifetime access"

    me = (await billing_client.get("/api/v1/me", headers=auth)).json()
    assert me["is_lifetime"] is True and me["is_premium"] is True and me["status"] == "lifetime"
    assert me["plan"] == {"key": "pro", "name": "Pro", "interval": None}

    again = await billing_client.post("/api/v1/billing/payment-intents", json={"price": "pro_lifetime"}, headers=auth)
    assert_envelope(again, 409, "already_subscribed")


async def test_a_wrong_client_secret_cannot_confirm_a_payment_intent(
    billing_client: Client, oidc_provider: Any, stripe_emulator: Any
) -> None:
    auth = token_headers(billing_client, oidc_provider, "mallory")
    body = (
        await billing_client.post("/api/v1/billing/payment-intents", json={"price": "pro_lifetime"}, headers=auth)
    ).json()

    refused = await confirm_like_stripe_js(
        stripe_emulator.url, body["payment_intent_id"], body["payment_intent_id"] + "_secret_guess", "pm_card_visa"
    )

    assert refused.status_code == 400
    assert refused.json()["error"]["param"] == "client_secret"


async def test_payment_intents_only_for_one_time_prices_and_known_prices(
    billing_client: Client, oidc_provider: Any
) -> None:
    auth = token_headers(billing_client, oidc_provider, "pia")

    recurring = await billing_client.post(
        "/api/v1/billing/payment-intents", json={"price": "pro_monthly"}, headers=auth
    )
    body = assert_envelope(recurring, 422, "validation_failed")
    assert body["errors"][0]["field"] == "price"

    unknown = await billing_client.post("/api/v1/billing/payment-intents", json={"price": "gold_bar"}, headers=auth)
    assert_envelope(unknown, 422, "validation_failed")

    missing = await billing_client.post("/api/v1/billing/payment-intents", json={}, headers=auth)
    body = assert_envelope(missing, 422, "validation_failed")
    assert any("price" in e["field"] for e in body["errors"]), body


async def test_idempotency_key_replays_the_first_response_and_refuses_another_body(
    billing_client: Client, oidc_provider: Any, gateway: Any
) -> None:
    auth = token_headers(billing_client, oidc_provider, "ida", **{"Idempotency-Key": "order-1"})

    first = await billing_client.post("/api/v1/billing/payment-intents", json={"price": "pro_lifetime"}, headers=auth)
    second = await billing_client.post("/api/v1/billing/payment-intents", json={"price": "pro_lifetime"}, headers=auth)

    assert first.status_code == second.status_code == 201
    assert second.json() == first.json()
    assert second.headers["idempotent-replayed"] == "true" and "idempotent-replayed" not in first.headers
    customer = await Customer.objects().first()
    assert customer is not None
    intents = [pi async for pi in gateway.payment_intents_of(customer.stripe_customer_id)]
    assert len(intents) == 1, "a replay must not create a second PaymentIntent"

    other = await billing_client.post(
        "/api/v1/billing/payment-intents", json={"price": "starter_lifetime"}, headers=auth
    )
    assert_envelope(other, 409, "idempotency_key_reused")

    # Keys belong to one person: the same key from someone else is a new request.
    theirs = token_headers(billing_client, oidc_provider, "other", **{"Idempotency-Key": "order-1"})
    fresh = await billing_client.post("/api/v1/billing/payment-intents", json={"price": "pro_lifetime"}, headers=theirs)
    assert fresh.status_code == 201 and fresh.json()["payment_intent_id"] != first.json()["payment_intent_id"]


async def test_a_failed_request_frees_its_idempotency_key(billing_client: Client, oidc_provider: Any) -> None:
    auth = token_headers(billing_client, oidc_provider, "ida", **{"Idempotency-Key": "retry-me"})

    failed = await billing_client.post("/api/v1/billing/payment-intents", json={"price": "nope"}, headers=auth)
    assert_envelope(failed, 422, "validation_failed")
    retried = await billing_client.post("/api/v1/billing/payment-intents", json={"price": "nope"}, headers=auth)
    assert_envelope(retried, 422, "validation_failed")
    assert "idempotent-replayed" not in retried.headers


async def test_a_key_abandoned_mid_request_is_in_use_then_freed(billing_client: Client, oidc_provider: Any) -> None:
    from app.api.tables import IdempotencyKey

    auth = token_headers(billing_client, oidc_provider, "ida", **{"Idempotency-Key": "crashed"})
    await billing_client.get("/api/v1/me", headers=auth)
    ida = await User.objects().get(User.subject == "ida")
    assert ida is not None
    await IdempotencyKey.insert(IdempotencyKey(user=ida.id, key="crashed", fingerprint="0" * 64))

    busy = await billing_client.post("/api/v1/billing/payment-intents", json={"price": "pro_lifetime"}, headers=auth)
    assert_envelope(busy, 409, "idempotency_key_in_use")

    await IdempotencyKey.update({IdempotencyKey.created_at: datetime.now(UTC) - timedelta(minutes=3)}).where(
        IdempotencyKey.key == "crashed"
    )
    freed = await billing_client.post("/api/v1/billing/payment-intents", json={"price": "pro_lifetime"}, headers=auth)
    assert freed.status_code == 201, freed.text


async def test_checkout_sessions_use_the_catalogue_and_allowed_return_urls(
    billing_client: Client, oidc_provider: Any, gateway: Any
) -> None:
    auth = token_headers(billing_client, oidc_provider, "cora")
    success = f"{billing_client.base_url}/welcome?session={{CHECKOUT_SESSION_ID}}"

    created = await billing_client.post(
        "/api/v1/billing/checkout-sessions", json={"price": "pro_monthly", "success_url": success}, headers=auth
    )

    assert created.status_code == 201, created.text
    body = created.json()
    assert set(body) == {"id", "url"} and body["id"].startswith("cs_")
    session = await gateway.retrieve_checkout_session(body["id"])
    assert session["success_url"] == success and session["mode"] == "subscription"

    offsite = await billing_client.post(
        "/api/v1/billing/checkout-sessions",
        json={"price": "pro_monthly", "cancel_url": "https://phish.example.net/"},
        headers=auth,
    )
    assert assert_envelope(offsite, 422, "validation_failed")["errors"][0]["field"] == "cancel_url"


async def _seed_payments(user: User, count: int) -> None:
    start = datetime(2026, 11, 1, tzinfo=UTC)
    for i in range(count):
        await PaymentTransaction.insert(
            PaymentTransaction(
                user=user.id,
                stripe_payment_intent_id=f"pi_seed_{user.id}_{i}",
                stripe_customer_id="cus_seed",
                amount_cents=1000 + i,
                currency="usd",
                status="succeeded",
                description=f"Payment {i}",
                created_at=start + timedelta(days=i),
            )
        )


async def test_history_pages_by_offset_with_total_and_by_cursor(billing_client: Client, oidc_provider: Any) -> None:
    auth = token_headers(billing_client, oidc_provider, "hana")
    await billing_client.get("/api/v1/me", headers=auth)
    hana = await User.objects().get(User.subject == "hana")
    assert hana is not None
    await _seed_payments(hana, 3)
    other = token_headers(billing_client, oidc_provider, "otto")
    await billing_client.get("/api/v1/me", headers=other)
    otto = await User.objects().get(User.subject == "otto")
    assert otto is not None
    await _seed_payments(otto, 2)

    first = (await billing_client.get("/api/v1/billing/history", params={"limit": 2}, headers=auth)).json()
    assert [t["description"] for t in first["transactions"]] == ["Payment 2", "Payment 1"]
    assert first["total"] == 3 and first["has_more"] is True and first["offset"] == 0

    by_offset = (
        await billing_client.get("/api/v1/billing/history", params={"limit": 2, "offset": 2}, headers=auth)
    ).json()
    by_cursor = (
        await billing_client.get(
            "/api/v1/billing/history", params={"limit": 2, "cursor": first["next_cursor"]}, headers=auth
        )
    ).json()
    assert [t["description"] for t in by_offset["transactions"]] == ["Payment 0"]
    assert by_cursor["transactions"] == by_offset["transactions"] and by_cursor["offset"] is None

    too_deep = await billing_client.get("/api/v1/billing/history", params={"offset": 1001}, headers=auth)
    body = assert_envelope(too_deep, 422, "validation_failed")
    assert "cursor" in body["error"] and body["errors"][0]["field"] == "offset"

    # Otto cannot use Hana's cursor, and sees only his own payments.
    stolen = await billing_client.get("/api/v1/billing/history", params={"cursor": first["next_cursor"]}, headers=other)
    assert_envelope(stolen, 400, "invalid_cursor")
    otto_page = (await billing_client.get("/api/v1/billing/history", headers=other)).json()
    assert otto_page["total"] == 2

    compat = await billing_client.get("/v1/billing/history", params={"limit": 1, "offset": 1}, headers=auth)
    assert compat.status_code == 200
    assert set(compat.json()) == {"transactions", "total"}
    assert compat.json()["total"] == 3 and compat.json()["transactions"][0]["description"] == "Payment 1"


async def test_config_gives_the_publishable_key_without_sign_in(billing_client: Client) -> None:
    for path in ("/api/v1/billing/config", "/v1/billing/config"):
        response = await billing_client.get(path)
        assert response.status_code == 200
        assert response.json() == {"publishable_key": "pk_test_integration"}


async def test_compat_checkout_session_and_payment_intent_shapes(billing_client: Client, oidc_provider: Any) -> None:
    auth = token_headers(billing_client, oidc_provider, "cami")

    checkout = await billing_client.post(
        "/v1/billing/checkout-session", json={"price": "starter_monthly"}, headers=auth
    )
    assert checkout.status_code == 200, checkout.text
    assert set(checkout.json()) == {"session_id", "url"} and checkout.json()["session_id"].startswith("cs_")

    intent = await billing_client.post("/v1/billing/payment-intent", json={"price": "starter_lifetime"}, headers=auth)
    assert intent.status_code == 200, intent.text
    assert set(intent.json()) == {"client_secret", "payment_intent_id"}

    anonymous = await billing_client.post("/v1/billing/payment-intent", json={"price": "starter_lifetime"})
    assert_envelope(anonymous, 401, "authentication_required")


@pytest.mark.usefixtures("portal_configured")
async def test_portal_routes_for_a_subscriber(
    billing_client: Client, oidc_provider: Any, gateway: Any, stripe_emulator: Any
) -> None:
    await signed_in_user(billing_client, oidc_provider, "sam")
    await buy(billing_client, "pro_monthly")
    auth = token_headers(billing_client, oidc_provider, "sam")
    back = f"{billing_client.base_url}/spa/billing"

    legacy = await billing_client.post("/api/create-portal-session", headers=auth)
    assert legacy.status_code == 200, legacy.text
    assert set(legacy.json()) == {"portal_url"} and "/p/session/" in legacy.json()["portal_url"]

    stripe_style = await billing_client.post("/stripe/customer-portal", json={"return_url": back}, headers=auth)
    assert stripe_style.status_code == 200 and set(stripe_style.json()) == {"url"}

    subscriptions = await billing_client.post("/api/subscriptions/user/billing-portal/", headers=auth)
    assert subscriptions.status_code == 200, subscriptions.text
    assert subscriptions.json()["success"] is True and set(subscriptions.json()) == {"success", "message", "portal_url"}

    session = await billing_client.post(
        "/api/payment/portal/session",
        json={"workflow_type": "cancellation_process", "return_url": back, "configuration_id": None},
        headers=auth,
    )
    assert session.status_code == 200, session.text
    body = session.json()
    assert body["success"] is True
    portal_session = body["portal_session"]
    assert {"id", "url", "expires_at", "return_url"} <= set(portal_session)
    assert portal_session["id"].startswith("bps_") and portal_session["return_url"] == back
    assert datetime.fromisoformat(portal_session["expires_at"]) > datetime.now(UTC)

    # The person cancels in the portal (here: straight at Stripe), then the front end asks what changed.
    sub = await Subscription.objects().first()
    assert sub is not None
    await gateway.client.v1.subscriptions.update_async(
        sub.stripe_subscription_id, params={"cancel_at_period_end": True}
    )
    returned = await billing_client.get(
        "/api/payment/portal/return", params={"session_id": portal_session["id"]}, headers=auth
    )
    assert returned.status_code == 200, returned.text
    result = returned.json()
    assert result["success"] is True and result["redirect_url"] == f"{billing_client.base_url}/account"
    data = result["synchronized_data"]
    assert data["subscription_changed"] is True and data["payment_method_updated"] is False
    assert data["customer_updated"] is False
    assert [c["kind"] for c in data["changes"]] == ["cancellation"]
    assert data["changes"][0]["text"].startswith("Cancels on ")

    v1 = await billing_client.get("/api/v1/portal/return", params={"session_id": portal_session["id"]}, headers=auth)
    assert v1.status_code == 200 and v1.json()["changes"] == data["changes"], "the stored summary, again"

    me = (await billing_client.get("/api/v1/me", headers=auth)).json()
    assert me["status"] == "active" and me["is_premium"] is True and me["cancels_at"] is not None
    assert me["renews_at"] is None and me["plan"]["key"] == "pro" and me["plan"]["interval"] == "month"

    # Someone else's portal session is a 404, as is an unknown one.
    intruder = token_headers(billing_client, oidc_provider, "ivy")
    foreign = await billing_client.get(
        "/api/v1/portal/return", params={"session_id": portal_session["id"]}, headers=intruder
    )
    assert_envelope(foreign, 404, "not_found")
    assert_envelope(
        await billing_client.get("/api/payment/portal/return", params={"session_id": "bps_nope"}, headers=auth),
        404,
        "not_found",
    )


async def test_billing_portal_route_error_cases(billing_client: Client, oidc_provider: Any) -> None:
    path = "/api/subscriptions/user/billing-portal/"

    assert_envelope(await billing_client.post(path), 401, "authentication_required")

    auth = token_headers(billing_client, oidc_provider, "nina")
    assert_envelope(await billing_client.post(path, headers=auth), 409, "no_active_subscription")

    await signed_in_user(billing_client, oidc_provider, "sid")
    await buy(billing_client, "starter_monthly")
    sid = token_headers(billing_client, oidc_provider, "sid")
    await Customer.update({Customer.deleted: True}).where(Customer.id.is_not_null())
    assert_envelope(await billing_client.post(path, headers=sid), 409, "no_customer")


async def test_billing_portal_route_answers_502_when_stripe_fails(oidc_provider: Any, tmp_path: Any, db: None) -> None:
    @post("/v1/{path:path}")
    async def broken(path: str) -> Response[dict[str, Any]]:
        return Response({"error": {"type": "api_error", "message": "Internal error"}}, status_code=500)

    with serve_in_thread(Litestar([broken])) as dead_stripe:
        port = free_port()
        env = settings_env(
            oidc_provider, tmp_path, APP_BASE_URL=f"http://127.0.0.1:{port}", STRIPE_API_BASE=dead_stripe
        )
        async with serve_in_loop(create_app(Settings.from_env(env)), port) as base_url:
            async with httpx.AsyncClient(base_url=base_url, timeout=60) as client:
                auth = token_headers(client, oidc_provider, "unlucky")
                await client.get("/api/v1/me", headers=auth)
                user = await User.objects().get(User.subject == "unlucky")
                assert user is not None
                customer = Customer(user=user.id, stripe_customer_id="cus_unlucky")
                await customer.save()
                await Subscription.insert(
                    Subscription(
                        stripe_subscription_id="sub_unlucky",
                        customer=customer.id,
                        user=user.id,
                        status="active",
                        stripe_updated_at=datetime.now(UTC),
                    )
                )
                failed = await client.post("/api/subscriptions/user/billing-portal/", headers=auth)
    body = assert_envelope(failed, 502, "stripe_unavailable")
    assert "nothing was changed" in body["error"] and "Internal error" not in failed.text
    assert await PortalSession.count() == 0


async def test_session_creating_endpoints_are_rate_limited_per_person(app_url: str, oidc_provider: Any) -> None:
    async with httpx.AsyncClient(base_url=app_url) as client:
        auth = token_headers(client, oidc_provider, "rita")
        statuses = [
            (await client.post("/api/v1/portal/sessions", json={"workflow_type": "payment_update"}, headers=auth))
            for _ in range(11)
        ]
        assert [r.status_code for r in statuses[:10]] == [409] * 10
        limited = statuses[10]
        assert_envelope(limited, 429, "rate_limited")
        assert int(limited.headers["retry-after"]) > 0

        # Another person has their own budget.
        other = token_headers(client, oidc_provider, "remy")
        ok = await client.post("/api/v1/portal/sessions", json={"workflow_type": "payment_update"}, headers=other)
        assert_envelope(ok, 409, "no_customer")
