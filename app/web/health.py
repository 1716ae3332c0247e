"""`GET /healthz`: the truth about this process, for load balancers and orchestrators.

Reports the database, this process's event worker (when it runs one: `EVENT_WORKER=in-process`),
and the event queue: how many events are due, how long the longest-waiting one has been due, and
how many are failing or dead. Answers 503 when the database is unreachable, when this process's
worker loop has not turned for `WORKER_STALE_SECONDS`, or when a due event has waited longer than
`EVENT_MAX_DELAY_SECONDS` (the workers are not keeping up, or none runs). Standalone workers have
the same check as a command: `litestar billing worker --check`.
"""

from __future__ import annotations

import logging
from dataclasses import asdict
from typing import Any

from litestar import MediaType, Response, get
from litestar.di import NamedDependency
from litestar.status_codes import HTTP_200_OK, HTTP_503_SERVICE_UNAVAILABLE

from app.settings import WorkerSettings
from app.webhooks.service import QueueHealth, queue_health
from app.webhooks.worker import EventWorker

logger = logging.getLogger(__name__)


def queue_problems(queue: QueueHealth, settings: WorkerSettings) -> list[str]:
    """Why the event queue is unhealthy (empty when it is fine)."""
    if queue.oldest_due_seconds > settings.max_event_delay_seconds:
        return [f"an event has been due for {queue.oldest_due_seconds:.0f} s"]
    return []


@get("/healthz", name="health", media_type=MediaType.JSON, cache=False, opt={"skip_session": True})
async def healthz(worker: NamedDependency[EventWorker], run_worker: NamedDependency[bool]) -> Response[dict[str, Any]]:
    """`{"status": "ok" | "unhealthy", "database", "worker", "events", "problems"}`; 200 or 503.

    `worker` is `{"running", "seconds_since_loop", "iterations", "in_flight", "last_error"}` or
    `"off"` (this process runs none); `events` is `{"due", "oldest_due_seconds", "processing",
    "failed", "dead"}` (seconds, counts).
    """
    settings = worker.settings
    problems: list[str] = []
    body: dict[str, Any] = {}
    try:
        queue = await queue_health()
        body["database"] = "ok"
        body["events"] = asdict(queue)
        problems += queue_problems(queue, settings)
    except Exception as exc:  # any driver or network error means "not healthy"
        logger.warning("Health check: database unavailable: %s", exc)
        body["database"] = "unavailable"
        problems.append("database unavailable")
    if run_worker:
        status = worker.status()
        body["worker"] = asdict(status)
        if not status.running:
            problems.append("event worker stopped")
        elif status.seconds_since_loop is not None and status.seconds_since_loop > settings.stale_seconds:
            problems.append(f"event worker has not looped for {status.seconds_since_loop:.0f} s")
    else:
        body["worker"] = "off"
    body = {"status": "unhealthy" if problems else "ok", **body, "problems": problems}
    return Response(body, status_code=HTTP_503_SERVICE_UNAVAILABLE if problems else HTTP_200_OK)
