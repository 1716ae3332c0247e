"""Prometheus metrics (served at `/metrics` only when `METRICS=on`).

Request latency comes from Litestar's `PrometheusMiddleware` (`litestar_requests_*`); this module
adds the app's own series:

| metric | type | what |
|---|---|---|
| `billing_stripe_events{status}` | gauge | stored events that are not done, by status (`pending`, `failed`, …) |
| `billing_stripe_event_oldest_due_seconds` | gauge | age of the oldest pending event whose attempt is due (0: none) |
| `billing_worker_iterations_total` | counter | event-worker loop turns (in web processes and standalone workers) |
| `billing_stripe_request_seconds{operation}` | histogram | time of each Stripe API call |
| `billing_stripe_request_errors_total{operation,kind}` | counter | failed Stripe calls by error class |
| `billing_webhook_request_seconds{status_code}` | histogram | Stripe deliveries (answered before `billing_request_*`) |
| `billing_host_api_request_seconds{endpoint,status_code}` | histogram | host API reads (likewise) |

The event gauges are computed at scrape time with one query over `stripe_event`. With several web
processes in one container, `scripts/serve` sets `PROMETHEUS_MULTIPROC_DIR` so a scrape adds up
every process (prometheus_client's multiprocess mode).
"""

from __future__ import annotations

import os
from typing import Any

from litestar import Controller, MediaType, Response, get
from prometheus_client import REGISTRY, CollectorRegistry, Counter, Gauge, Histogram, generate_latest, multiprocess
from prometheus_client.exposition import CONTENT_TYPE_LATEST

KNOWN_EVENT_STATUSES = ("pending", "processing", "failed", "dead")

STRIPE_EVENTS = Gauge(
    "billing_stripe_events", "Stored Stripe events not yet done, by status", ["status"], multiprocess_mode="mostrecent"
)
OLDEST_DUE_EVENT = Gauge(
    "billing_stripe_event_oldest_due_seconds",
    "Age in seconds of the oldest pending event whose attempt is due (0 when none)",
    multiprocess_mode="mostrecent",
)
WORKER_ITERATIONS = Counter("billing_worker_iterations", "Event-worker loop iterations")
STRIPE_REQUEST_SECONDS = Histogram(
    "billing_stripe_request_seconds",
    "Duration of Stripe API calls in seconds",
    ["operation"],
    buckets=(0.05, 0.1, 0.25, 0.5, 1, 2, 5, 10, 20),
)
STRIPE_REQUEST_ERRORS = Counter(
    "billing_stripe_request_errors", "Stripe API calls that failed, by error class", ["operation", "kind"]
)

WEBHOOK_REQUEST_SECONDS = Histogram(
    "billing_webhook_request_seconds",
    "Time to answer a Stripe webhook delivery in seconds, by HTTP status",
    ["status_code"],
    buckets=(0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5),
)

HOST_API_REQUEST_SECONDS = Histogram(
    "billing_host_api_request_seconds",
    "Time to answer a host API read (state or entitlement) in seconds, by endpoint and HTTP status",
    ["endpoint", "status_code"],
    buckets=(0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 1),
)

# One statement: counts by status and, on the pending row, the oldest due attempt's age.
EVENT_GAUGES_SQL = """
SELECT status,
       count(*) AS events,
       COALESCE(EXTRACT(EPOCH FROM now() - min(next_attempt_at) FILTER (WHERE next_attempt_at <= now())), 0)
           AS oldest_due_seconds
FROM stripe_event
WHERE status NOT IN ('processed', 'ignored')
GROUP BY status
"""


async def refresh_event_gauges() -> None:
    """Set the event gauges from one query over `stripe_event` (no lock, a plain read)."""
    from app.billing.tables import StripeEvent

    rows: list[dict[str, Any]] = await StripeEvent.raw(EVENT_GAUGES_SQL)
    counts = {str(row["status"]): int(row["events"]) for row in rows}
    for status in {*KNOWN_EVENT_STATUSES, *counts}:
        STRIPE_EVENTS.labels(status=status).set(counts.get(status, 0))
    oldest = next((float(row["oldest_due_seconds"]) for row in rows if row["status"] == "pending"), 0.0)
    OLDEST_DUE_EVENT.set(max(oldest, 0.0))


class MetricsController(Controller):
    """`GET /metrics` in Prometheus' text format (registered only when `METRICS=on`)."""

    path = "/metrics"
    include_in_schema = False

    @get(name="metrics", media_type=MediaType.TEXT, cache=False, opt={"skip_session": True})
    async def metrics(self) -> Response[bytes]:
        """Refresh the event gauges, then expose every series (all processes' in multiprocess mode)."""
        await refresh_event_gauges()
        registry = REGISTRY
        if os.environ.get("PROMETHEUS_MULTIPROC_DIR"):
            registry = CollectorRegistry()
            multiprocess.MultiProcessCollector(registry)
        return Response(generate_latest(registry), headers={"Content-Type": CONTENT_TYPE_LATEST})
