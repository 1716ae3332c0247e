"""Helpers that act as Stripe and as a customer on the emulator's hosted pages."""

from __future__ import annotations

import hashlib
import hmac
import json
import re
import time
from typing import Any
from urllib.parse import urljoin

import httpx


def sign(payload: bytes, secret: str, timestamp: int | None = None) -> str:
    """A `Stripe-Signature` header exactly as Stripe computes it (v1 = HMAC-SHA256 of "t.payload")."""
    timestamp = int(time.time()) if timestamp is None else timestamp
    digest = hmac.new(secret.encode(), f"{timestamp}.".encode() + payload, hashlib.sha256).hexdigest()
    return f"t={timestamp},v1={digest}"


def event_body(event: dict[str, Any]) -> bytes:
    return json.dumps(event, default=str).encode()


async def pay_on_checkout_page(
    checkout_url: str, card: str = "4242424242424242", email: str | None = None
) -> httpx.Response:
    """Fill and submit the emulator's hosted Checkout form like a person would (no redirects followed).

    Returns the form POST's response: 303 to `success_url` when paid, 200 with the error when declined.
    """
    async with httpx.AsyncClient(timeout=20) as http:
        page = await http.get(checkout_url)
        page.raise_for_status()
        action = re.search(r'<form method="post" action="([^"]+)"', page.text)
        assert action, "no checkout form on the page"
        prefilled = re.search(r'id="email" name="email"[^>]*value="([^"]*)"', page.text)
        form = {
            "email": email or (prefilled.group(1) if prefilled and prefilled.group(1) else "buyer@example.com"),
            "cardNumber": card,
            "cardExpiry": "12 / 34",
            "cardCvc": "123",
            "billingName": "Test Buyer",
        }
        return await http.post(urljoin(checkout_url, action.group(1).replace("&amp;", "&")), data=form)
