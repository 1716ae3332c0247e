"""The entitlement rules on local rows (no Stripe): sources, grace, revocations, the guard and the Jinja test."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from types import SimpleNamespace
from typing import Any

import jinja2
import pytest
from litestar.exceptions import PermissionDeniedException

from app.auth.tables import User
from app.billing.tables import Customer, PaymentTransaction, Plan, Price, Subscription
from app.entitlements import service
from app.entitlements.guards import requires_entitlement
from app.entitlements.tables import CustomerState, Entitlement, HostWebhook, PlanFeature
from app.settings import EntitlementSettings, HostWebhookTarget
from app.web.guards import LoginRequired
from app.web.templating import entitled

NOW = datetime(2026, 12, 1, 12, 0, tzinfo=UTC)


@pytest.fixture
async def person(db: None) -> tuple[User, Customer, Price, Price]:
    """A person with a customer, and a plan `pro` (custom_domain, api) with a monthly and a lifetime price."""
    service.configure(
        EntitlementSettings(grace_days=3, webhook_endpoints=(HostWebhookTarget("http://h/x", "whsec_eA=="),))
    )
    user = User(subject="pat", email="pat@example.com", email_verified=True)
    await user.save()
    customer = Customer(user=user.id, stripe_customer_id="cus_pat")
    await customer.save()
    plan = Plan(key="pro", stripe_product_id="prod_pro", name="Pro")
    await plan.save()
    monthly = Price(stripe_price_id="price_m", plan=plan.id, unit_amount_cents=1900, type="recurring", interval="month")
    lifetime = Price(stripe_price_id="price_l", plan=plan.id, unit_amount_cents=49900, type="one_time")
    await monthly.save()
    await lifetime.save()
    for key in ("custom_domain", "api"):
        await PlanFeature(plan=plan.id, feature_lookup_key=key).save()
    yield user, customer, monthly, lifetime
    service.configure(EntitlementSettings())


async def _subscription(customer: Customer, price: Price, status: str, **extra: Any) -> Subscription:
    sub = Subscription(
        stripe_subscription_id=f"sub_{status}",
        customer=customer.id,
        user=customer.user,
        status=status,
        price=price.id,
        stripe_price_id=price.stripe_price_id,
        current_period_start=NOW - timedelta(days=1),
        current_period_end=NOW + timedelta(days=29),
        stripe_updated_at=NOW,
        **extra,
    )
    await sub.save()
    return sub


async def _features(user: User, now: datetime = NOW) -> dict[str, str]:
    rows = await service.entitled_features(user.id, now)
    return {k: r.source for k, r in rows.items()}


@pytest.mark.parametrize("status", ["paused", "unpaid", "canceled", "incomplete", "incomplete_expired"])
async def test_lapsed_subscriptions_grant_nothing_even_when_stripe_still_lists_them(person: Any, status: str) -> None:
    user, customer, monthly, _ = person
    await _subscription(customer, monthly, status)
    await service.apply_entitlements(customer, [{"id": "ent_1", "lookup_key": "api"}], NOW)
    assert await _features(user) == {}


async def test_past_due_keeps_features_for_the_grace_period_then_loses_them(person: Any) -> None:
    user, customer, monthly, _ = person
    await _subscription(customer, monthly, "past_due")
    await service.apply_entitlements(customer, [{"id": "ent_1", "lookup_key": "api"}], NOW)
    assert await _features(user) == {"api": "subscription", "custom_domain": "subscription"}
    state = await CustomerState.objects().get(CustomerState.user == user.id)
    assert state is not None and state.next_change_at == NOW - timedelta(days=1) + timedelta(days=3)

    assert await service.refresh_due(NOW + timedelta(days=2, seconds=1)) == 1
    assert await _features(user, NOW + timedelta(days=2, seconds=1)) == {}


async def test_a_revocation_wins_and_a_grant_adds_until_its_end(person: Any) -> None:
    user, customer, monthly, _ = person
    await _subscription(customer, monthly, "active")
    await service.apply_entitlements(customer, [], NOW)
    ends = datetime.now(UTC) + timedelta(days=5)
    await service.add_override(user.id, "custom_domain", "revoke", None)
    await service.add_override(user.id, "beta_reports", "grant", ends)
    rows = await service.entitled_features(user.id)
    assert {k: r.source for k, r in rows.items()} == {"api": "subscription", "beta_reports": "grant"}
    assert rows["beta_reports"].until == ends
    with pytest.raises(ValueError):
        await service.add_override(user.id, "x", "grant", datetime.now(UTC) - timedelta(days=1))


async def test_a_lifetime_purchase_grants_for_good_and_a_refund_takes_it_back(person: Any) -> None:
    user, customer, _, lifetime = person
    payment = PaymentTransaction(
        user=user.id,
        stripe_payment_intent_id="pi_life",
        stripe_customer_id="cus_pat",
        stripe_price_id=lifetime.stripe_price_id,
        amount_cents=49900,
        status="succeeded",
    )
    await payment.save()
    await service.apply_entitlements(customer, [], NOW)
    rows = await service.entitled_features(user.id)
    assert {r.description for r in rows.values()} == {"from the lifetime purchase pi_life"}
    assert all(r.until is None for r in rows.values())
    await PaymentTransaction.update({PaymentTransaction.status: "refunded"}).where(PaymentTransaction.id == payment.id)
    await service.apply_entitlements(customer, [], NOW)
    assert await _features(user) == {}


async def test_an_unchanged_state_is_not_sent_again(person: Any) -> None:
    _, customer, monthly, _ = person
    await _subscription(customer, monthly, "active")
    assert await service.apply_entitlements(customer, [], NOW) is True
    assert await service.apply_entitlements(customer, [], NOW + timedelta(minutes=1)) is False
    assert await HostWebhook.count() == 1
    assert await Entitlement.count() == 2


async def test_the_guard_lets_entitled_people_through_only(person: Any) -> None:
    user, customer, monthly, _ = person
    await _subscription(customer, monthly, "active")
    await service.apply_entitlements(customer, [], NOW)
    guard = requires_entitlement("custom_domain")
    await guard(SimpleNamespace(session={"user_id": user.id}), None)  # type: ignore[arg-type]
    with pytest.raises(PermissionDeniedException):
        await requires_entitlement("phone_support")(SimpleNamespace(session={"user_id": user.id}), None)  # type: ignore[arg-type]
    with pytest.raises(LoginRequired):
        await guard(SimpleNamespace(session={}), None)  # type: ignore[arg-type]


def test_the_jinja_test_reads_the_pages_entitlements() -> None:
    env = jinja2.Environment(autoescape=True)
    env.tests["entitled"] = entitled
    template = env.from_string('{% if user is entitled("custom_domain") %}yes{% else %}no{% endif %}')
    assert template.render(user=object(), entitlements={"custom_domain"}) == "yes"
    assert template.render(user=object(), entitlements={"api"}) == "no"
    assert template.render(user=None, entitlements={"custom_domain"}) == "no"


BASE_ENV = {
    "SESSION_SECRET": "s" * 40,
    "OIDC_ISSUER": "http://127.0.0.1:9/",
    "AUTH0_CLIENT_ID": "c",
    "AUTH0_CLIENT_SECRET": "s",
    "STRIPE_SECRET_KEY": "sk_test_x",
    "STRIPE_WEBHOOK_SECRET": "whsec_x",
}


def test_entitlement_settings_are_read_and_bad_values_named() -> None:
    from app.settings import Settings, SettingsError

    settings = Settings.from_env(
        {
            **BASE_ENV,
            "ENTITLEMENT_GRACE_DAYS": "3",
            "HOST_API_RATE_LIMIT": "60",
            "HOST_WEBHOOK_ENDPOINTS": "https://a.example/hook whsec_AAAA, https://b.example/h whsec_BBBB",
        }
    )
    assert settings.entitlements.grace_days == 3 and settings.entitlements.api_rate_limit == 60
    assert [t.url for t in settings.entitlements.webhook_endpoints] == ["https://a.example/hook", "https://b.example/h"]
    with pytest.raises(SettingsError) as error:
        Settings.from_env(
            {**BASE_ENV, "ENTITLEMENT_GRACE_DAYS": "-1", "HOST_API_RATE_LIMIT": "x", "HOST_WEBHOOK_ENDPOINTS": "nope"}
        )
    for name in ("ENTITLEMENT_GRACE_DAYS", "HOST_API_RATE_LIMIT", "HOST_WEBHOOK_ENDPOINTS"):
        assert name in str(error.value)
