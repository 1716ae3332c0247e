"""Customer Portal sessions and the return summary, against the emulator over real HTTP."""

from __future__ import annotations

from typing import Any
from urllib.parse import urlsplit

import httpx
import pytest
from litestar import Litestar, Response, get, post

from app.asgi import create_app
from app.billing.tables import BillingChange, Customer, Subscription
from app.portal.tables import PortalSession
from app.settings import Settings
from app.webhooks.service import drain
from tests.conftest import sign_in, wait_for_deliveries
from tests.support.billing import buy, chaos, signed_in_user
from tests.support.servers import free_port, serve_in_loop, serve_in_thread

pytestmark = pytest.mark.usefixtures("portal_configured")
Client = httpx.AsyncClient


async def open_portal(client: Client, workflow: str, **extra: str) -> httpx.Response:
    csrf = client.cookies.get("billing_csrf") or ""
    return await client.post("/portal/sessions", data={"workflow": workflow, "_csrf_token": csrf, **extra})


def portal_session_of(response: httpx.Response) -> str:
    assert response.status_code == 303, response.text
    return urlsplit(response.headers["location"]).path.split("/")[3]


async def return_from(client: Client, ps: int) -> httpx.Response:
    """GET /portal/return and follow to the workflow's page with its toast."""
    response = await client.get(f"/portal/return?ps={ps}")
    assert response.status_code == 303, response.text
    return await client.get(response.headers["location"])


async def cancel_at_period_end_in_stripe(gateway: Any) -> None:
    sub = await Subscription.objects().first()
    assert sub is not None
    await gateway.client.v1.subscriptions.update_async(
        sub.stripe_subscription_id, params={"cancel_at_period_end": True}
    )


async def test_portal_session_is_created_for_the_own_customer_and_recorded(
    billing_client: Client, oidc_provider: Any, gateway: Any
) -> None:
    await signed_in_user(billing_client, oidc_provider, "pat")
    await buy(billing_client, "pro_monthly")
    response = await open_portal(billing_client, "payment_update")
    bps_id = portal_session_of(response)
    created = [e async for e in gateway.events(type="billing_portal.session.created")]
    session = created[0]["data"]["object"]
    customer = await Customer.objects().first()
    assert customer is not None and session["id"] == bps_id
    assert session["customer"] == customer.stripe_customer_id
    assert session["flow"]["type"] == "payment_method_update"
    assert session["flow"]["after_completion"]["redirect"]["return_url"] == session["return_url"]
    row = await PortalSession.objects().first()
    assert row is not None and row.stripe_session_id == bps_id and row.workflow == "payment_update"
    assert row.returned_at is None


@pytest.mark.parametrize("webhook_first", [True, False], ids=["webhook-before-return", "webhook-after-return"])
async def test_return_summary_names_the_change_whenever_the_webhook_arrives(
    billing_client: Client, oidc_provider: Any, stripe_emulator: Any, gateway: Any, webhook_first: bool
) -> None:
    await signed_in_user(billing_client, oidc_provider, "rita")
    await buy(billing_client, "pro_monthly")
    await wait_for_deliveries(stripe_emulator.url)
    await drain(gateway)
    ps = (await PortalSession.count()) + 1
    await open_portal(billing_client, "cancellation_process")
    row = await PortalSession.objects().first()
    assert row is not None
    ps = row.id
    if not webhook_first:
        await chaos(stripe_emulator.url, hold=True)
    await cancel_at_period_end_in_stripe(gateway)  # what the person does in the portal
    if webhook_first:
        await wait_for_deliveries(stripe_emulator.url)
        await drain(gateway)
    page = await return_from(billing_client, ps)
    assert "Cancels on" in page.text
    # A cancellation returns to its own page: the end date, Keep my plan.
    assert str(page.url).endswith(f"/portal/cancelled?ps={ps}") and "Your plan ends on" in page.text
    assert "Keep my plan" in page.text
    # A reload shows the same summary, and the audit trail has the change once per detection.
    again = await return_from(billing_client, ps)
    assert "Cancels on" in again.text
    sources = [c.source for c in await BillingChange.objects().where(BillingChange.kind == "cancellation")]
    assert sources == (["webhook"] if webhook_first else ["portal_return"])
    if not webhook_first:
        await chaos(stripe_emulator.url, hold=False)
        await wait_for_deliveries(stripe_emulator.url)
        await drain(gateway)
        assert await BillingChange.count().where(BillingChange.kind == "cancellation") == 1


async def test_return_without_changes_says_no_changes(billing_client: Client, oidc_provider: Any) -> None:
    await signed_in_user(billing_client, oidc_provider, "nina")
    await buy(billing_client, "pro_lifetime")
    await open_portal(billing_client, "billing_review")
    row = await PortalSession.objects().first()
    assert row is not None
    page = await return_from(billing_client, row.id)
    assert str(page.url).endswith("/billing/history")
    assert "No changes" in page.text


async def test_another_users_portal_session_is_404(billing_client: Client, oidc_provider: Any) -> None:
    await signed_in_user(billing_client, oidc_provider, "first")
    await buy(billing_client, "pro_monthly")
    await open_portal(billing_client, "payment_update")
    row = await PortalSession.objects().first()
    assert row is not None
    async with httpx.AsyncClient(base_url=str(billing_client.base_url), timeout=30) as other:
        await signed_in_user(other, oidc_provider, "second")
        assert (await other.get(f"/portal/return?ps={row.id}")).status_code == 404
        assert (await other.get("/portal/return?ps=999999")).status_code == 404
    refreshed = await PortalSession.objects().get(PortalSession.id == row.id)
    assert refreshed is not None and refreshed.returned_at is None


async def test_person_without_customer_gets_a_clear_message(billing_client: Client, oidc_provider: Any) -> None:
    await signed_in_user(billing_client, oidc_provider, "newbie")
    response = await open_portal(billing_client, "subscription_management")
    assert response.status_code == 409
    assert "Nothing to manage yet" in response.text and 'href="/plans"' in response.text
    htmx = await billing_client.post(
        "/portal/sessions",
        data={"workflow": "payment_update", "_csrf_token": billing_client.cookies.get("billing_csrf") or ""},
        headers={"HX-Request": "true"},
    )
    assert htmx.status_code == 409
    assert await PortalSession.count() == 0


async def test_htmx_request_gets_hx_redirect_to_the_portal(billing_client: Client, oidc_provider: Any) -> None:
    await signed_in_user(billing_client, oidc_provider, "hx")
    await buy(billing_client, "starter_monthly")
    response = await billing_client.post(
        "/portal/sessions",
        data={"workflow": "payment_update", "_csrf_token": billing_client.cookies.get("billing_csrf") or ""},
        headers={"HX-Request": "true"},
    )
    assert response.status_code == 200, (response.status_code, dict(response.headers))
    assert "/p/session/bps_" in response.headers["hx-redirect"]


async def test_unknown_workflow_is_400(billing_client: Client, oidc_provider: Any) -> None:
    await signed_in_user(billing_client, oidc_provider, "odd")
    assert (await open_portal(billing_client, "delete_everything")).status_code == 400


async def test_portal_session_creation_is_rate_limited_per_user(billing_client: Client, oidc_provider: Any) -> None:
    await signed_in_user(billing_client, oidc_provider, "eager")
    await buy(billing_client, "starter_monthly")
    statuses = [(await open_portal(billing_client, "billing_review")).status_code for _ in range(11)]
    assert statuses[:10] == [303] * 10
    assert statuses[10] == 429
    last = await open_portal(billing_client, "billing_review")
    assert last.status_code == 429 and "try again in" in last.text and int(last.headers["retry-after"]) > 0
    assert await PortalSession.count() == 10


async def test_return_url_comes_from_app_base_url_not_the_request(
    billing_client: Client, oidc_provider: Any, gateway: Any
) -> None:
    await signed_in_user(billing_client, oidc_provider, "host")
    await buy(billing_client, "starter_monthly")
    response = await billing_client.post(
        "/portal/sessions",
        data={"workflow": "payment_update", "_csrf_token": billing_client.cookies.get("billing_csrf") or ""},
        headers={"Host": "evil.example", "X-Forwarded-Host": "evil.example"},
    )
    row = await PortalSession.objects().first()
    assert row is not None
    assert response.status_code == 303
    # The emulator echoes what the app sent: read it back from the portal page's return link.
    async with httpx.AsyncClient() as http:
        page = await http.get(response.headers["location"], follow_redirects=True)
    assert f"{billing_client.base_url}/portal/return?ps={row.id}" in page.text.replace("&amp;", "&")
    assert "evil.example" not in page.text


async def test_stripe_failure_is_friendly_and_records_nothing(oidc_provider: Any, tmp_path: Any, db: None) -> None:
    @post("/v1/billing_portal/sessions")
    async def broken() -> Response[dict[str, Any]]:
        return Response({"error": {"type": "api_error", "message": "Internal error"}}, status_code=500)

    @get("/v1/{path:path}")
    async def broken_get(path: str) -> Response[dict[str, Any]]:
        return Response({"error": {"type": "api_error", "message": "Internal error"}}, status_code=500)

    with serve_in_thread(Litestar([broken, broken_get])) as dead_stripe:
        from tests.conftest import settings_env

        port = free_port()
        env = settings_env(
            oidc_provider,
            tmp_path,
            APP_BASE_URL=f"http://127.0.0.1:{port}",
            STRIPE_API_BASE=dead_stripe,
            EVENT_WORKER="off",
        )
        async with serve_in_loop(create_app(Settings.from_env(env)), port) as base_url:
            async with httpx.AsyncClient(base_url=base_url, timeout=60) as client:
                await sign_in(client, "unlucky")
                from app.auth.tables import User

                user = await User.objects().get(User.subject == "unlucky")
                assert user is not None
                await Customer.insert(Customer(user=user.id, stripe_customer_id="cus_unlucky"))
                response = await open_portal(client, "payment_update")
    assert response.status_code == 502
    assert "could not open the billing portal" in response.text and "Reference" in response.text
    assert "Internal error" not in response.text and "sk_test" not in response.text
    assert await PortalSession.count() == 0
