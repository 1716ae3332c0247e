"""`plans.toml` features become Stripe Features attached to the plan Products (idempotently), and a
changed feature list reaches existing subscribers at their next sync, not at their renewal."""

from __future__ import annotations

import dataclasses
from typing import Any

import httpx

from app.billing.sync import sync_catalog, sync_customer
from app.billing.tables import Customer, Plan
from app.entitlements.service import entitled_features
from app.entitlements.tables import Feature, PlanFeature
from app.plans.catalog import FeatureSpec, load_catalog, push_catalog
from app.webhooks.service import drain
from tests.support.billing import buy, settle, signed_in_user


async def test_pushing_the_catalogue_creates_features_once_and_the_sync_reads_them(
    billing_app_url: str, gateway: Any
) -> None:
    assert await Feature.count() == 10
    pro = await Plan.objects().get(Plan.key == "pro")
    assert pro is not None
    rows = await PlanFeature.select(PlanFeature.feature_lookup_key).where(PlanFeature.plan == pro.id)
    assert sorted(r["feature_lookup_key"] for r in rows) == [
        "custom_domain",
        "priority_support",
        "projects_unlimited",
        "storage_100gb",
    ]
    assert await push_catalog(gateway, load_catalog()) == [], "a second push changes nothing"


async def test_a_changed_feature_list_reaches_existing_subscribers_at_their_next_sync(
    billing_client: httpx.AsyncClient, oidc_provider: Any, gateway: Any, stripe_emulator: Any
) -> None:
    user = await signed_in_user(billing_client, oidc_provider, "fay")
    await buy(billing_client, "pro_monthly")
    await settle(stripe_emulator.url)
    await drain(gateway)
    assert "custom_domain" in await entitled_features(user.id)

    plans = load_catalog()
    pro = next(p for p in plans if p.key == "pro")
    changed = dataclasses.replace(
        pro,
        entitlements=(*[f for f in pro.entitlements if f.key != "custom_domain"], FeatureSpec("sso", "Single sign-on")),
    )
    actions = await push_catalog(gateway, [changed if p.key == "pro" else p for p in plans])
    assert "created feature sso" in " ".join(actions)
    assert "attached feature sso to pro" in actions and "detached feature custom_domain from pro" in actions
    await sync_catalog(gateway)

    customer = await Customer.objects().get(Customer.user == user.id)
    assert customer is not None
    await sync_customer(gateway, customer.stripe_customer_id)
    have = await entitled_features(user.id)
    assert "sso" in have and "custom_domain" not in have
    assert have["sso"].source == "subscription"
