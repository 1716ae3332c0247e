"""The operator console over real HTTP and PostgreSQL: roles, 403s, analytics figures, events,
customers, configurations (against the emulator) and branding."""

from __future__ import annotations

import html
import re
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
import pytest

from app.admin.analytics_service import Period, period_figures
from app.admin.branding_service import contrast_ratio, validate_branding
from app.admin.tables import AuditEntry
from app.auth.service import roles_from_claims
from app.auth.tables import User
from app.billing.tables import Customer, Plan, Price, StripeEvent, Subscription
from app.portal.tables import PortalSession
from app.settings import OIDCSettings, Settings
from tests.conftest import settings_env, sign_in
from tests.support.servers import free_port, serve_in_loop

Client = httpx.AsyncClient

# Every console route a person without a role must be refused, with the method it answers.
ADMIN_ROUTES = [
    ("GET", "/admin/"),
    ("GET", "/admin/audit"),
    ("GET", "/admin/events"),
    ("GET", "/admin/events/evt_123"),
    ("POST", "/admin/events/replay"),
    ("POST", "/admin/events/ignore"),
    ("POST", "/admin/events/reconcile"),
    ("GET", "/admin/customers"),
    ("GET", "/admin/customers/1"),
    ("POST", "/admin/customers/1/resync"),
    ("POST", "/admin/customers/1/entitlements"),
    ("POST", "/admin/customers/1/entitlements/1/end"),
    ("GET", "/admin/api-keys"),
    ("POST", "/admin/api-keys"),
    ("POST", "/admin/api-keys/abc123/revoke"),
    ("GET", "/admin/host-webhooks"),
    ("POST", "/admin/host-webhooks"),
    ("POST", "/admin/host-webhooks/1/enabled"),
    ("POST", "/admin/host-webhooks/1/delete"),
    ("POST", "/admin/host-webhooks/deliveries/1/redeliver"),
    ("GET", "/admin/analytics"),
    ("GET", "/admin/analytics/days.csv"),
    ("GET", "/admin/configurations"),
    ("GET", "/admin/configurations/export.toml"),
    ("GET", "/admin/configurations/new"),
    ("POST", "/admin/configurations/new"),
    ("GET", "/admin/configurations/bpc_123"),
    ("GET", "/admin/configurations/bpc_123/edit"),
    ("POST", "/admin/configurations/bpc_123/edit"),
    ("POST", "/admin/configurations/bpc_123/active"),
    ("POST", "/admin/configurations/bpc_123/use"),
    ("GET", "/admin/branding"),
    ("POST", "/admin/branding"),
]


def csrf(client: Client) -> str:
    return client.cookies.get("billing_csrf") or ""


async def signed_in(client: Client, provider: Any, subject: str, roles: list[str] | None = None) -> None:
    claims: dict[str, Any] = {"email": f"{subject}@example.com", "email_verified": True, "name": subject.title()}
    if roles is not None:
        claims["roles"] = roles
    provider.claims_for[subject] = claims
    assert (await sign_in(client, subject)).status_code == 303
    await client.get("/account")  # a page sets the CSRF cookie


def test_roles_come_from_the_configured_claim_and_the_bootstrap_lists() -> None:
    oidc = OIDCSettings(
        roles_claim="https://billing.example.com/roles", admin_subjects=("boss",), admin_emails=("ops@example.com",)
    )
    assert roles_from_claims({"sub": "a", "https://billing.example.com/roles": ["support", "x"]}, oidc) == ["support"]
    assert roles_from_claims({"sub": "a", "https://billing.example.com/roles": "admin support"}, oidc) == [
        "admin",
        "support",
    ]
    assert roles_from_claims({"sub": "a", "roles": ["admin"]}, oidc) == [], "another claim name is not read"
    assert roles_from_claims({"sub": "boss"}, oidc) == ["admin"]
    assert roles_from_claims({"sub": "b", "email": "OPS@example.com", "email_verified": True}, oidc) == ["admin"]
    assert roles_from_claims({"sub": "b", "email": "ops@example.com", "email_verified": False}, oidc) == [], (
        "an unverified email grants nothing"
    )


async def test_a_customer_without_a_role_gets_403_on_every_admin_route(client: Client, oidc_provider: Any) -> None:
    await signed_in(client, oidc_provider, "carol")
    page = await client.get("/account")
    assert ">Admin<" not in page.text, "the nav shows Admin only to operators"
    for method, path in ADMIN_ROUTES:
        response = await client.request(method, path, data={"_csrf_token": csrf(client)} if method == "POST" else None)
        assert response.status_code == 403, f"{method} {path} answered {response.status_code}"
        assert "You can't do that" in html.unescape(response.text), f"{method} {path} shows the styled 403 page"


async def test_signed_out_visitors_are_sent_to_sign_in(client: Client) -> None:
    response = await client.get("/admin/events", follow_redirects=False)
    assert response.status_code == 303
    assert response.headers["location"].startswith("/auth/login?next=%2Fadmin%2Fevents")


async def test_roles_follow_the_id_token_at_each_sign_in_and_are_audited(client: Client, oidc_provider: Any) -> None:
    await signed_in(client, oidc_provider, "olga", roles=["admin"])
    page = await client.get("/admin/")
    assert page.status_code == 200 and ">Admin<" in page.text
    async with httpx.AsyncClient(base_url=str(client.base_url)) as again:
        await signed_in(again, oidc_provider, "olga", roles=[])
        assert (await again.get("/admin/")).status_code == 403
    # The first session's user lost the role too: the guard reads the roles stored at the last sign-in.
    assert (await client.get("/admin/")).status_code == 403
    entries = await AuditEntry.select(AuditEntry.action, AuditEntry.before, AuditEntry.after).output(load_json=True)
    assert [(e["before"]["roles"], e["after"]["roles"]) for e in entries if e["action"] == "roles.changed"] == [
        ([], ["admin"]),
        (["admin"], []),
    ]


async def test_admin_subjects_setting_grants_admin_without_the_provider(
    oidc_provider: Any, tmp_path: Path, db: None
) -> None:
    port = free_port()
    env = settings_env(oidc_provider, tmp_path, APP_BASE_URL=f"http://127.0.0.1:{port}", ADMIN_SUBJECTS="root")
    async with serve_in_loop(create_app_from(env), port) as base, httpx.AsyncClient(base_url=base) as http:
        await signed_in(http, oidc_provider, "root")
        assert (await http.get("/admin/")).status_code == 200


def create_app_from(env: dict[str, str]) -> Any:
    from app.asgi import create_app

    return create_app(Settings.from_env(env))


async def test_support_can_read_but_not_change(client: Client, oidc_provider: Any) -> None:
    await signed_in(client, oidc_provider, "sam", roles=["support"])
    for path in ("/admin/", "/admin/events", "/admin/customers", "/admin/analytics", "/admin/audit"):
        assert (await client.get(path)).status_code == 200, path
    assert (await client.get("/admin/branding")).status_code == 403
    response = await client.post("/admin/events/replay", data={"_csrf_token": csrf(client), "all_failed": "1"})
    assert response.status_code == 403
    assert "Replay selected" not in (await client.get("/admin/events")).text


async def seed_sessions(base: datetime) -> None:
    """A small data set whose figures are worked out by hand in the test below."""
    users = []
    for name in ("u1", "u2", "u3"):
        row = User(subject=name, email=f"{name}@example.com")
        await row.save()
        users.append(row.id)
    u1, u2, u3 = users

    def at(day: int, hour: int = 12) -> datetime:
        return base + timedelta(days=day, hours=hour)

    rows = [
        # user, workflow, created, seconds until return (None: never came back), outcome
        (u1, "payment_update", at(0), 60, "changed"),
        (u1, "payment_update", at(0), 120, "no_changes"),
        (u2, "payment_update", at(1), 30, "changed"),
        (u2, "cancellation_process", at(1), 300, "changed"),
        (u3, "billing_review", at(2), None, None),
        (u3, "billing_review", at(2), 90, "no_changes"),
        # Outside the period (day before, day after): must not count.
        (u1, "billing_review", at(-1), 10, "changed"),
        (u2, "billing_review", at(3), 10, "changed"),
    ]
    for user, workflow, created, seconds, outcome in rows:
        await PortalSession.insert(
            PortalSession(
                user=user,
                workflow=workflow,
                created_at=created,
                returned_at=created + timedelta(seconds=seconds) if seconds is not None else None,
                outcome=outcome,
            )
        )
    plan = Plan(key="pro", stripe_product_id="prod_pro", name="Pro")
    await plan.save()
    price = Price(
        stripe_price_id="price_pro_m", plan=plan.id, unit_amount_cents=1000, type="recurring", interval="month"
    )
    await price.save()
    for i, (user, feedback, reason, canceled) in enumerate(
        [
            (u1, "too_expensive", "cancellation_requested", at(1)),
            (u2, "too_expensive", "cancellation_requested", at(2)),
            (u3, None, "payment_failed", at(2)),
            (u3, "unused", "cancellation_requested", at(5)),  # outside the period
        ]
    ):
        customer = await Customer.objects().get(Customer.user == user)
        if customer is None:
            customer = Customer(user=user, stripe_customer_id=f"cus_{user}")
            await customer.save()
        await Subscription.insert(
            Subscription(
                stripe_subscription_id=f"sub_{i}",
                customer=customer.id,
                user=user,
                status="canceled",
                price=price.id if i != 2 else None,
                stripe_price_id="price_pro_m" if i != 2 else "price_gone",
                canceled_at=canceled,
                cancellation_feedback=feedback,
                cancellation_reason=reason,
                stripe_updated_at=canceled,
            )
        )


async def test_analytics_figures_match_hand_computed_values(db: None) -> None:
    # Local days 2026-11-10 .. 2026-11-12 in New York; sessions at 12:00 local (17:00 UTC).
    await seed_sessions(datetime(2026, 11, 10, 5, tzinfo=UTC))
    figures = await period_figures(Period(date(2026, 11, 10), date(2026, 11, 12), "America/New_York"))
    assert figures.sessions == 6
    assert figures.unique_customers == 3
    assert figures.returned == 5 and figures.return_rate == pytest.approx(5 / 6)
    assert figures.changed == 3 and figures.changed_share == pytest.approx(0.5)
    # Returned durations 30, 60, 90, 120, 300 s: median 90; p90 = 120 + 0.6 * (300 - 120) = 228.
    assert figures.median_seconds == pytest.approx(90)
    assert figures.p90_seconds == pytest.approx(228)
    assert figures.by_workflow == [
        {
            "workflow": "payment_update",
            "sessions": 3,
            "returned": 3,
            "changed": 2,
            "changed_share": pytest.approx(2 / 3),
        },
        {"workflow": "billing_review", "sessions": 2, "returned": 1, "changed": 0, "changed_share": 0.0},
        {"workflow": "cancellation_process", "sessions": 1, "returned": 1, "changed": 1, "changed_share": 1.0},
    ]
    assert [(d["day"].isoformat(), d["sessions"]) for d in figures.by_day] == [
        ("2026-11-10", 2),
        ("2026-11-11", 2),
        ("2026-11-12", 2),
    ]
    assert figures.cancellations_by_reason == [
        {"reason": "too_expensive", "cancellations": 2},
        {"reason": "payment_failed", "cancellations": 1},
    ]
    assert figures.cancellations_by_plan == [
        {"plan": "Pro", "cancellations": 2},
        {"plan": "price_gone", "cancellations": 1},
    ]


async def test_analytics_page_draws_charts_with_tables_and_csv(client: Client, oidc_provider: Any) -> None:
    await seed_sessions(datetime(2026, 11, 10, 5, tzinfo=UTC))
    await signed_in(client, oidc_provider, "ana", roles=["support"])
    client.cookies.set("tz", "America/New_York")
    page = await client.get("/admin/analytics", params={"date_from": "2026-11-10", "date_to": "2026-11-12"})
    assert page.status_code == 200
    assert page.text.count('role="img"') == 4
    assert "<dd>6</dd>" in page.text and "83.3 %" in page.text and "1.5 min" in page.text
    csv = await client.get(
        "/admin/analytics/workflows.csv", params={"date_from": "2026-11-10", "date_to": "2026-11-12"}
    )
    assert csv.headers["content-type"].startswith("text/csv")
    assert csv.text.splitlines()[:2] == [
        "workflow,sessions,returned,changed,changed_share",
        "payment_update,3,3,2,0.6666666666666666",
    ]
    bad = await client.get("/admin/analytics", params={"date_from": "2026-11-12", "date_to": "2026-11-10"})
    assert bad.status_code == 422 and "The end date is before the start date." in bad.text
    # The charts' own words follow the operator's language, as the rest of the page does.
    german = await client.get(
        "/admin/analytics",
        params={"date_from": "2026-11-10", "date_to": "2026-11-12"},
        headers={"Accept-Language": "de-DE"},
    )
    assert "Sitzungen pro Tag" in german.text and "3 Werte von 2026-11-10 bis 2026-11-12" in german.text
    assert "values from" not in german.text
    empty = await client.get(
        "/admin/analytics",
        params={"date_from": "2020-01-01", "date_to": "2020-01-02"},
        headers={"Accept-Language": "de"},
    )
    assert "Keine Daten in diesem Zeitraum" in empty.text and "no data" not in empty.text.lower()


async def test_customer_search_by_email_stripe_id_and_subject(client: Client, oidc_provider: Any) -> None:
    await seed_sessions(datetime(2026, 11, 10, 5, tzinfo=UTC))
    await signed_in(client, oidc_provider, "sue", roles=["support"])
    u2 = await User.objects().get(User.subject == "u2")
    assert u2 is not None
    for q in ("U2@EXAMPLE", f"cus_{u2.id}", "u2"):
        page = await client.get("/admin/customers", params={"q": q})
        assert f'href="/admin/customers/{u2.id}"' in page.text, q
        assert 'href="/admin/customers/' + str(u2.id + 1) + '"' not in page.text, q
    detail = await client.get(f"/admin/customers/{u2.id}")
    assert "cancellation_process" in detail.text and "sub_1" in detail.text
    assert (await client.get("/admin/customers/999999")).status_code == 404


async def test_event_console_filters_ignores_and_shows_the_payload(client: Client, oidc_provider: Any) -> None:
    await signed_in(client, oidc_provider, "olga", roles=["admin"])
    now = datetime.now(UTC)
    for i, (type_, status) in enumerate([("invoice.paid", "failed"), ("customer.updated", "pending")]):
        await StripeEvent.insert(
            StripeEvent(
                stripe_event_id=f"evt_{i}",
                type=type_,
                created=now,
                payload={"id": f"evt_{i}", "type": type_, "data": {"object": {"marker": "hello-payload"}}},
                stripe_customer_id="cus_x",
                status=status,
                attempts=3 if status == "failed" else 0,
                last_error="StripeUnavailable: Stripe did not answer." if status == "failed" else None,
                next_attempt_at=now - timedelta(minutes=5),
                received_at=now - timedelta(minutes=10),
            )
        )
    listing = await client.get("/admin/events", params={"status": "failed"})
    assert "evt_0" in listing.text and "evt_1" not in listing.text
    assert re.search(r"<dt>Failed</dt><dd><a [^>]*>1</a>", listing.text)
    assert "Oldest due event</dt><dd>10 min" in listing.text
    by_type = await client.get("/admin/events", params={"type": "customer."}, headers={"HX-Request": "true"})
    assert "evt_1" in by_type.text and "evt_0" not in by_type.text and "<html" not in by_type.text
    detail = await client.get("/admin/events/evt_0")
    assert "hello-payload" in detail.text and "Stripe did not answer." in detail.text and "<dd>3</dd>" in detail.text
    response = await client.post(
        "/admin/events/ignore", data={"_csrf_token": csrf(client), "event": ["evt_0", "evt_1"]}, follow_redirects=True
    )
    assert "Marked 2 events as ignored." in response.text
    assert {e["status"] for e in await StripeEvent.select(StripeEvent.status)} == {"ignored"}
    audit = await client.get("/admin/audit")
    assert "event.ignored" in audit.text and "olga@example.com" in audit.text


def test_colours_below_wcag_aa_contrast_are_refused() -> None:
    assert contrast_ratio("#000000", "#ffffff") == pytest.approx(21)
    assert contrast_ratio("#767676", "#ffffff") == pytest.approx(4.54, abs=0.01)
    _, errors = validate_branding({"product_name": "X", "primary_color": "#4338ca", "accent_color": "#777777"}, None)
    assert set(errors) == {"accent_color"}, "#777777 is 4.48:1 with white, under AA's 4.5:1"
    _, errors = validate_branding({"product_name": "X", "primary_color": "#0B5394", "accent_color": "#146c43"}, None)
    assert errors == {}


async def brand_css(client: Client, page: str) -> str:
    """The brand stylesheets a page links (`/brand.css?...`), fetched as the browser would, joined."""
    links = re.findall(r'<link rel="stylesheet" href="(/brand\.css\?[^"]+)"', page)
    return "".join([(await client.get(link.replace("&amp;", "&"))).text for link in links])


async def test_branding_refuses_low_contrast_previews_and_applies_to_pages(client: Client, oidc_provider: Any) -> None:
    await signed_in(client, oidc_provider, "olga", roles=["admin"])
    form = {"_csrf_token": csrf(client), "product_name": "Acme Billing", "primary_color": "#ffcc00"}
    form |= {"accent_color": "#146c43", "terms_url": "https://acme.example/terms", "action": "save"}
    refused = await client.post("/admin/branding", files={"x": ("", b"")}, data=form)
    assert refused.status_code == 422
    assert "WCAG AA needs at least 4.5:1" in refused.text
    assert "Acme Billing" not in (await client.get("/account")).text
    preview = await client.post(
        "/admin/branding", files={"x": ("", b"")}, data=form | {"primary_color": "#0b5394", "action": "preview"}
    )
    assert preview.status_code == 200 and "This is a preview" in preview.text
    assert ".preview-box{--accent:#0b5394" in await brand_css(client, preview.text)
    assert "#0b5394" not in await brand_css(client, (await client.get("/account")).text), "a preview saves nothing"
    not_an_image = await client.post(
        "/admin/branding",
        files={"logo": ("logo.png", b"<script>alert(1)</script>", "image/png")},
        data=form | {"primary_color": "#0b5394"},
    )
    assert not_an_image.status_code == 422 and "The logo must be a PNG, JPEG or WebP image." in not_an_image.text
    png = b"\x89PNG\r\n\x1a\n" + b"0" * 64
    saved = await client.post(
        "/admin/branding",
        files={"logo": ("logo.png", png, "image/png")},
        data=form | {"primary_color": "#0b5394"},
        follow_redirects=True,
    )
    assert "Branding saved." in saved.text
    account = await client.get("/account")
    assert ":root{--accent:#0b5394" in await brand_css(client, account.text) and "Acme Billing" in account.text
    assert 'href="https://acme.example/terms"' in account.text
    logo_src = re.search(r'src="(/brand/logo\?v=\d+)"', account.text)
    assert logo_src is not None
    logo = await client.get(logo_src.group(1))
    assert logo.content == png and logo.headers["content-type"] == "image/png"
    entry = await AuditEntry.objects().where(AuditEntry.action == "branding.saved").first().output(load_json=True)
    assert entry is not None and entry.after["primary_color"] == "#0b5394" and entry.before["product_name"] == "Billing"


@pytest.fixture
async def operator(billing_app_url: str, oidc_provider: Any) -> Any:
    async with httpx.AsyncClient(base_url=billing_app_url, timeout=30) as http:
        await signed_in(http, oidc_provider, "olga", roles=["admin"])
        yield http


def edit_form(cfg: dict[str, Any], **changes: Any) -> dict[str, Any]:
    """The posted form of a configuration as the edit page would send it unchanged, plus `changes`."""
    from app.admin.configurations_service import ConfigurationForm

    form = ConfigurationForm.from_configuration(cfg)
    data: dict[str, Any] = {}
    for key, value in vars(form).items():
        if isinstance(value, bool):
            if value:
                data[key] = "on"
        else:
            data[key] = value
    return data | changes


@pytest.mark.usefixtures("portal_configured")
async def test_configuration_edit_is_validated_then_saved_to_stripe_and_drift_shows_it(
    operator: Client, gateway: Any
) -> None:
    from app.portal.tables import PortalConfiguration

    row = await PortalConfiguration.objects().get(PortalConfiguration.workflow == "subscription_management")
    assert row is not None
    cfg_id = row.stripe_configuration_id
    listing = await operator.get("/admin/configurations")
    assert listing.status_code == 200
    assert "No drift: Stripe matches" in listing.text
    assert "switch plan, cancel subscription" in html.unescape(listing.text) or "switch plan" in listing.text
    cfg = await gateway.retrieve_portal_configuration(cfg_id)
    token = {"_csrf_token": csrf(operator)}

    too_long = await operator.post(
        f"/admin/configurations/{cfg_id}/edit", data=token | edit_form(cfg, headline="x" * 61)
    )
    assert too_long.status_code == 422
    assert "At most 60 characters (61 given)." in too_long.text
    assert 'id="headline-error"' in too_long.text
    prices = [p async for p in gateway.prices(active=True)]
    pro = [p for p in prices if (p.get("lookup_key") or "").startswith("pro_")]
    monthly = [p for p in pro if (p.get("recurring") or {}).get("interval") == "month"]
    extra = await gateway.create_price(
        {"product": monthly[0]["product"], "currency": "usd", "unit_amount": 1234, "recurring": {"interval": "month"}}
    )
    from app.billing.sync import sync_catalog

    await sync_catalog(gateway)
    two_monthly = await operator.post(
        f"/admin/configurations/{cfg_id}/edit",
        data=token | edit_form(cfg, update_prices=[monthly[0]["id"], extra["id"]]),
    )
    assert two_monthly.status_code == 422
    assert "Stripe allows one price per interval per product." in two_monthly.text
    assert (await gateway.retrieve_portal_configuration(cfg_id))["business_profile"] == cfg["business_profile"]

    saved = await operator.post(
        f"/admin/configurations/{cfg_id}/edit",
        data=token | edit_form(cfg, headline="Manage your Acme plan", schedule_downgrades="on"),
        follow_redirects=True,
    )
    assert "Configuration saved." in saved.text and "Manage your Acme plan" in saved.text
    stripe_cfg = await gateway.retrieve_portal_configuration(cfg_id)
    assert stripe_cfg["business_profile"]["headline"] == "Manage your Acme plan"
    assert stripe_cfg["features"]["subscription_update"]["schedule_at_period_end"]["conditions"]
    drift = await operator.get("/admin/configurations")
    assert "business_profile.headline" in drift.text and "Manage your Acme plan" in drift.text
    export = await operator.get("/admin/configurations/export.toml")
    assert 'headline = "Manage your Acme plan"' in export.text
    entry = (
        await AuditEntry.objects()
        .where(AuditEntry.action == "portal_configuration.saved")
        .first()
        .output(load_json=True)
    )
    assert entry is not None and entry.target == cfg_id
    assert entry.before["business_profile"]["headline"] != entry.after["business_profile"]["headline"]


async def test_replaying_a_failed_event_applies_it(operator: Client, gateway: Any) -> None:
    from app.webhooks.service import record_event

    event = await anext(gateway.events(type="product.created"))
    await record_event(event)
    await StripeEvent.update(
        {StripeEvent.status: "failed", StripeEvent.attempts: 8, StripeEvent.last_error: "boom"}
    ).where(StripeEvent.stripe_event_id == event["id"])
    page = await operator.post(
        "/admin/events/replay", data={"_csrf_token": csrf(operator), "event": event["id"]}, follow_redirects=True
    )
    assert "Replayed: 1 event applied." in page.text
    stored = await StripeEvent.objects().get(StripeEvent.stripe_event_id == event["id"])
    assert stored is not None and stored.status == "processed" and stored.attempts == 1
    assert await AuditEntry.exists().where(AuditEntry.action == "event.replayed")


async def test_reconcile_now_stores_and_applies_undelivered_events(
    oidc_provider: Any, tmp_path: Path, db: None, stripe_emulator: Any, emulator_control: Any
) -> None:
    import asyncio
    import time

    from app.stripe_gateway import StripeGateway

    # The emulator delivers to the session's app port, where nothing listens in this test: every
    # delivery fails and Stripe (the emulator) marks the events undelivered.
    port = free_port()
    env = settings_env(
        oidc_provider,
        tmp_path,
        APP_BASE_URL=f"http://127.0.0.1:{port}",
        STRIPE_SECRET_KEY="sk_test_console",
        STRIPE_API_BASE=stripe_emulator.url,
    )
    settings = Settings.from_env(env)
    gateway = StripeGateway(settings.stripe)
    person = User(subject="lost-user", email="lost@example.com")
    await person.save()
    customer = await gateway.client.v1.customers.create_async(
        params={"email": "lost@example.com", "metadata": {"user_id": str(person.id)}}
    )
    deadline = time.monotonic() + 20
    while not [e async for e in gateway.events(delivery_success=False, type="customer.created")]:
        assert time.monotonic() < deadline, "the emulator never gave up delivering"
        await asyncio.sleep(0.2)
    async with serve_in_loop(create_app_from(env), port) as base, httpx.AsyncClient(base_url=base) as http:
        await signed_in(http, oidc_provider, "olga", roles=["admin"])
        page = await http.post("/admin/events/reconcile", data={"_csrf_token": csrf(http)}, follow_redirects=True)
    assert "1 undelivered event at Stripe, 1 stored, 1 applied." in page.text
    linked = await Customer.objects().get(Customer.stripe_customer_id == customer.id)
    assert linked is not None and linked.user == person.id
    assert await AuditEntry.exists().where(AuditEntry.action == "events.reconciled")


async def test_reconcile_when_stripe_is_unreachable_is_a_friendly_502(client: Client, oidc_provider: Any) -> None:
    await signed_in(client, oidc_provider, "olga", roles=["admin"])
    response = await client.post("/admin/events/reconcile", data={"_csrf_token": csrf(client)})
    assert response.status_code == 502
    assert "Stripe could not list undelivered events. Try again." in response.text
    assert "Reference" in response.text or "reference" in response.text


async def test_cancellation_details_from_stripe_feed_the_cancellation_figures(
    billing_client: Client, oidc_provider: Any, gateway: Any
) -> None:
    from app.billing.sync import sync_customer
    from tests.support.billing import buy, signed_in_user

    await signed_in_user(billing_client, oidc_provider, "leaver")
    await buy(billing_client, "pro_monthly")
    sub = await Subscription.objects().first()
    assert sub is not None and sub.cancellation_feedback is None
    await gateway.client.v1.subscriptions.update_async(
        sub.stripe_subscription_id,
        params={"cancel_at_period_end": True, "cancellation_details": {"feedback": "too_expensive"}},
    )
    customer = await Customer.objects().first()
    assert customer is not None
    await sync_customer(gateway, customer.stripe_customer_id)
    synced = await Subscription.objects().get(Subscription.id == sub.id)
    assert synced is not None
    assert (synced.cancellation_reason, synced.cancellation_feedback) == ("cancellation_requested", "too_expensive")
    today = datetime.now(UTC).date()
    figures = await period_figures(Period(today - timedelta(days=1), today + timedelta(days=1), "UTC"))
    assert figures.cancellations_by_reason == [{"reason": "too_expensive", "cancellations": 1}]
    assert figures.cancellations_by_plan == [{"plan": "Pro", "cancellations": 1}]


async def test_replay_returns_only_to_a_page_of_this_site(client: Client, oidc_provider: Any) -> None:
    await signed_in(client, oidc_provider, "olga", roles=["admin"])
    form = {"_csrf_token": csrf(client), "event": "evt_none", "back": "https://evil.example/"}
    response = await client.post("/admin/events/replay", data=form)
    assert response.status_code == 303 and response.headers["location"] == "/admin/events"
    form["back"] = "/admin/events/evt_none"
    response = await client.post("/admin/events/replay", data=form)
    assert response.headers["location"] == "/admin/events/evt_none"


@pytest.mark.usefixtures("portal_configured")
async def test_configurations_are_activated_deactivated_and_chosen_per_workflow(operator: Client, gateway: Any) -> None:
    from app.portal.tables import PortalConfiguration

    row = await PortalConfiguration.objects().get(PortalConfiguration.workflow == "billing_review")
    assert row is not None
    cfg_id = row.stripe_configuration_id
    token = {"_csrf_token": csrf(operator)}
    page = await operator.post(
        f"/admin/configurations/{cfg_id}/active", data=token | {"active": "false"}, follow_redirects=True
    )
    assert "Deactivated." in page.text and (await gateway.retrieve_portal_configuration(cfg_id))["active"] is False
    refused = await operator.post(
        f"/admin/configurations/{cfg_id}/use", data=token | {"workflow": "payment_update"}, follow_redirects=True
    )
    assert "Activate the configuration first." in refused.text
    await operator.post(f"/admin/configurations/{cfg_id}/active", data=token | {"active": "true"})
    assert (await gateway.retrieve_portal_configuration(cfg_id))["active"] is True
    shared = await operator.post(
        f"/admin/configurations/{cfg_id}/use", data=token | {"workflow": "payment_update"}, follow_redirects=True
    )
    assert "This configuration already serves the billing_review workflow; create another." in shared.text
    created = await operator.post(
        "/admin/configurations/new",
        data=token | {"name": "Cards only", "payment_method_update": "on", "invoice_history": "on"},
    )
    assert created.status_code == 303
    new_id = created.headers["location"].rsplit("/", 1)[1]
    assert (await gateway.retrieve_portal_configuration(new_id))["name"] == "Cards only"
    used = await operator.post(
        f"/admin/configurations/{new_id}/use", data=token | {"workflow": "payment_update"}, follow_redirects=True
    )
    assert "The payment_update workflow now uses this configuration." in used.text
    chosen = await PortalConfiguration.objects().get(PortalConfiguration.workflow == "payment_update")
    assert chosen is not None and chosen.stripe_configuration_id == new_id
    assert (
        await operator.post("/admin/configurations/bpc_missing/active", data=token | {"active": "true"})
    ).status_code == 404
    actions = [e["action"] for e in await AuditEntry.select(AuditEntry.action).order_by(AuditEntry.id)]
    assert actions[-4:] == [
        "portal_configuration.deactivated",
        "portal_configuration.activated",
        "portal_configuration.saved",
        "portal_configuration.used_for",
    ]


async def test_the_customer_list_marks_an_email_nobody_verified(client: Client, oidc_provider: Any) -> None:
    """A provider may send an email nobody verified: the list says so and does not name the person by it."""
    await User.insert(
        User(subject="no-mail-7", email="claimed@example.com", email_verified=False, last_login_at=datetime.now(UTC))
    )
    await signed_in(client, oidc_provider, "sue", roles=["support"])
    page = await client.get("/admin/customers", params={"q": "no-mail-7"})
    row = page.text[page.text.index("<tbody>") : page.text.index("</tbody>")]
    assert '<td>claimed@example.com <span class="muted">(not verified)</span></td>' in row
    assert ">no-mail-7</a>" in row and ">claimed@example.com</a>" not in row
    person = await User.objects().get(User.subject == "no-mail-7")
    assert person is not None
    detail = (await client.get(f"/admin/customers/{person.id}")).text
    assert "<h1>no-mail-7</h1>" in detail and "claimed@example.com (not verified)" in detail
    verified = await client.get("/admin/customers", params={"q": "sue"})
    assert "(not verified)" not in verified.text[verified.text.index("<tbody>") :]
