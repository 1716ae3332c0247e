"""`/metrics` (Prometheus) when `METRICS=on`: request latency, event gauges, Stripe calls; off by default."""

from __future__ import annotations

import re
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import httpx
import pytest

from app.asgi import create_app
from app.billing.tables import StripeEvent
from app.settings import Settings
from tests.conftest import settings_env
from tests.support.oidc_provider import ScriptedProvider
from tests.support.servers import free_port, serve_in_loop


@pytest.fixture
async def metrics_url(oidc_provider: ScriptedProvider, tmp_path: Path, db: None) -> AsyncIterator[str]:
    port = free_port()
    env = settings_env(oidc_provider, tmp_path, APP_BASE_URL=f"http://127.0.0.1:{port}", METRICS="on")
    async with serve_in_loop(create_app(Settings.from_env(env)), port) as base_url:
        yield base_url


def sample(text: str, name: str, **labels: str) -> float:
    for line in text.splitlines():
        match = re.fullmatch(rf"{name}(?:\{{(.*)\}})? (\S+)", line)
        if match and all(f'{k}="{v}"' in (match.group(1) or "") for k, v in labels.items()):
            return float(match.group(2))
    raise AssertionError(f"{name} {labels} not in the metrics")


def event(event_id: str, status: str, due: timedelta) -> StripeEvent:
    return StripeEvent(
        stripe_event_id=event_id,
        type="customer.updated",
        created=datetime.now(UTC),
        payload={"id": event_id},
        stripe_customer_id="cus_1",
        status=status,
        next_attempt_at=datetime.now(UTC) - due,
    )


async def test_metrics_expose_latency_and_event_gauges(metrics_url: str) -> None:
    await StripeEvent.insert(
        event("evt_due", "pending", timedelta(minutes=10)),
        event("evt_later", "pending", timedelta(minutes=-5)),
        event("evt_failed", "failed", timedelta(0)),
        event("evt_done", "processed", timedelta(hours=1)),
    )
    async with httpx.AsyncClient(base_url=metrics_url) as http:
        assert (await http.get("/plans")).status_code == 200
        # Stripe's deliveries are answered before Litestar's middleware: they have their own series.
        unsigned = await http.post("/webhooks/stripe", content=b'{"id": "evt_x"}')
        assert unsigned.status_code == 400
        response = await http.get("/metrics")
    assert response.status_code == 200 and response.headers["content-type"].startswith("text/plain")
    text = response.text
    assert sample(text, "billing_stripe_events", status="pending") == 2
    assert sample(text, "billing_stripe_events", status="failed") == 1
    assert sample(text, "billing_stripe_events", status="dead") == 0
    assert 590 <= sample(text, "billing_stripe_event_oldest_due_seconds") <= 700
    assert sample(text, "billing_request_duration_seconds_count", path="/plans", status_code="200") >= 1
    assert sample(text, "billing_webhook_request_seconds_count", status_code="400") >= 1
    assert "billing_worker_iterations_total" in text
    assert "# TYPE billing_stripe_request_seconds histogram" in text


async def test_metrics_are_off_unless_enabled(client: httpx.AsyncClient) -> None:
    assert (await client.get("/metrics")).status_code == 404
