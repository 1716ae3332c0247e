"""Steps of a person buying a plan, and emulator switches, shared by the billing tests."""

from __future__ import annotations

from typing import Any

import httpx

from app.auth.tables import User
from tests.conftest import sign_in, wait_for_deliveries
from tests.support.stripe import pay_on_checkout_page

Client = httpx.AsyncClient


async def settle(emulator_url: str, seconds: float = 15.0) -> None:
    await wait_for_deliveries(emulator_url, seconds)


async def chaos(emulator_url: str, **switches: Any) -> None:
    async with httpx.AsyncClient(base_url=emulator_url) as http:
        (await http.post("/_emulator/chaos", json=switches)).raise_for_status()


async def signed_in_user(client: Client, oidc_provider: Any, subject: str, verified: bool = True) -> User:
    oidc_provider.claims_for[subject] = {"email": f"{subject}@example.com", "email_verified": verified, "name": subject}
    response = await sign_in(client, subject)
    assert response.status_code == 303
    user = await User.objects().get(User.subject == subject)
    assert user is not None
    return user


async def checkout_url(client: Client, price: str) -> str:
    csrf = client.cookies.get("billing_csrf") or (await client.get("/plans")).cookies.get("billing_csrf")
    response = await client.post("/billing/checkout", data={"price": price, "_csrf_token": csrf or ""})
    assert response.status_code == 303, response.text
    return str(response.headers["location"])


async def buy(client: Client, price: str, card: str = "4242424242424242") -> httpx.Response:
    """Start Checkout in the app and pay on the hosted page; returns the app's success page."""
    paid = await pay_on_checkout_page(await checkout_url(client, price), card=card)
    assert paid.status_code == 303, paid.text
    return await client.get(paid.headers["location"])
