"""The floor for `scripts/bench_state.py --hello`: a bare Litestar app answering the same URL with a
JSON body of the same size, no database, no middleware. What the state endpoint cannot beat."""

from __future__ import annotations

from typing import Any

from litestar import Litestar, get

BODY: dict[str, Any] = {
    "object": "customer_state",
    "external_id": "",
    "email": "person@example.com",
    "stripe_customer_id": "cus_bench_1",
    "plan": {"key": "pro", "name": "Pro", "price": "price_pro_monthly", "interval": "month", "subscription": "sub_1"},
    "status": "active",
    "premium": True,
    "renews_at": "2027-01-01T00:00:00Z",
    "cancels_at": None,
    "entitlements": [
        {
            "feature": f,
            "name": f,
            "source": "subscription",
            "source_id": "sub_bench_1",
            "price": "price_pro_monthly",
            "description": "from subscription sub_bench_1 on price_pro_monthly",
            "until": None,
        }
        for f in ("custom_domain", "priority_support", "projects_unlimited", "storage_100gb")
    ],
    "version": 1,
    "updated_at": "2026-12-01T00:00:00Z",
}


@get("/api/v1/customers/{external_id:str}/state")
async def state(external_id: str) -> dict[str, Any]:
    """The same shape as the real endpoint, from memory."""
    return {**BODY, "external_id": external_id}


@get("/")
async def home() -> str:
    """For the bench's start-up probe."""
    return "ok"


app = Litestar(route_handlers=[state, home])
