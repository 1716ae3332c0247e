"""The plans page: catalogue from the local copy, interval switch, locale, current plan."""

from __future__ import annotations

from typing import Any

import httpx

from tests.support.billing import buy, signed_in_user


async def test_monthly_and_yearly_prices_with_a_plain_query_string(billing_client: httpx.AsyncClient) -> None:
    monthly = await billing_client.get("/plans")
    yearly = await billing_client.get("/plans?interval=year")
    assert 'data-testid="price-pro">$19.00' in monthly.text and "/ month" in monthly.text
    assert 'data-testid="price-pro">$190.00' in yearly.text and "/ year" in yearly.text
    assert "Sign in to choose Pro" in monthly.text
    assert (await billing_client.get("/plans?interval=decade")).status_code == 400


async def test_htmx_switch_returns_only_the_cards(billing_client: httpx.AsyncClient) -> None:
    response = await billing_client.get(
        "/plans?interval=year", headers={"HX-Request": "true", "HX-Target": "plan-cards"}
    )
    assert response.status_code == 200
    assert '<div id="plan-cards"' in response.text and "<html" not in response.text
    assert 'data-interval="year"' in response.text


async def test_prices_follow_the_browsers_locale(billing_client: httpx.AsyncClient) -> None:
    german = await billing_client.get("/plans", headers={"Accept-Language": "de-DE,de;q=0.9"})
    assert 'data-testid="price-pro">19,00\xa0$' in german.text
    french = await billing_client.get("/plans", headers={"Accept-Language": "fr-FR"})
    assert 'data-testid="price-business">49,00\xa0$US' in french.text


async def test_current_plan_is_marked_for_a_subscriber(billing_client: httpx.AsyncClient, oidc_provider: Any) -> None:
    await signed_in_user(billing_client, oidc_provider, "marked")
    await buy(billing_client, "pro_monthly")
    page = await billing_client.get("/plans")
    pro_card = page.text.split('data-plan="pro"')[1].split("</article>")[0]
    assert "Current plan" in pro_card
    starter_card = page.text.split('data-plan="starter"')[1].split("</article>")[0]
    assert "Current plan" not in starter_card and "Switch to Starter" in starter_card
