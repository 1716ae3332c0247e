"""The event worker: applies stored Stripe events to the local copy, and never freezes.

Runs inside each web process by default (started in the app's lifespan) and as
`litestar billing worker` in separate processes; any number at once is safe because events are
leased (`app.webhooks.service.claim_next`). A webhook wakes the local worker at once; otherwise it
polls, so events stored by other processes or postponed by a backoff are picked up too.

The loop is a supervisor: each turn it records a heartbeat, claims due batches up to
`WORKER_CONCURRENCY` and runs each in its own task (syncs of different customers overlap while
Stripe answers), and once every `EVENT_RECONCILE_MINUTES` one worker of all runs the
`delivery_success=false` reconciliation. Nothing long-lived holds a database connection or a
transaction across turns, and every unit of work runs in a task of its own, so a lost connection
costs that unit only: the next turn gets a fresh connection from the pool. A failing turn logs one
line and the loop backs off up to 5 s, so an outage produces a few lines, not a traceback a second.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import secrets
import socket
import time
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

from app.billing.tables import EventWorkerHeartbeat, ScheduledTask
from app.metrics import WORKER_ITERATIONS
from app.settings import WorkerSettings
from app.stripe_gateway import StripeGateway
from app.webhooks.service import claim_next, process_claim, reconcile_undelivered

logger = logging.getLogger(__name__)

RECONCILE_TASK = "reconcile_undelivered_events"
HEARTBEAT_EVERY_SECONDS = 5.0
MAX_IDLE_BACKOFF_SECONDS = 5.0


def new_worker_id() -> str:
    """`<hostname>:<pid>:<random>`: unique among every worker of every process."""
    return f"{socket.gethostname()}:{os.getpid()}:{secrets.token_hex(3)}"


@dataclass
class WorkerStatus:
    """What `/healthz` reports about this process's worker."""

    running: bool
    seconds_since_loop: float | None
    iterations: int
    in_flight: int
    last_error: str | None


class EventWorker:
    """A supervising loop around `claim_next` / `process_claim`.

    `mode` is `in-process` (inside a web process) or `standalone` (`litestar billing worker`); it is
    recorded with the heartbeat in the `event_worker` table.
    """

    def __init__(
        self, gateway: StripeGateway, settings: WorkerSettings | None = None, *, mode: str = "in-process"
    ) -> None:
        self.gateway = gateway
        self.settings = settings or WorkerSettings()
        self.mode = mode
        self.worker_id = new_worker_id()
        self.iterations = 0
        self.last_error: str | None = None
        self._last_loop: float | None = None
        self._last_heartbeat_write = 0.0
        self._failures = 0
        self._wake = asyncio.Event()
        self._stop = asyncio.Event()
        self._task: asyncio.Task[None] | None = None
        self._in_flight: set[asyncio.Task[Any]] = set()
        self._leased: dict[asyncio.Task[Any], list[int]] = {}

    def wake(self) -> None:
        """Look for due events now instead of at the next poll."""
        self._wake.set()

    def status(self) -> WorkerStatus:
        """This worker's liveness, for the health check."""
        since = None if self._last_loop is None else round(time.monotonic() - self._last_loop, 1)
        running = self._task is not None and not self._task.done()
        return WorkerStatus(running, since, self.iterations, len(self._in_flight), self.last_error)

    async def run(self) -> None:
        """Apply due events until `stop()`."""
        while not self._stop.is_set():
            self._last_loop = time.monotonic()
            self.iterations += 1
            WORKER_ITERATIONS.inc()
            claimed = 0
            try:
                claimed = await self._turn()
                self._failures = 0
            except Exception as exc:  # the database is restarting, a connection was killed, ...
                self._failures += 1
                self.last_error = f"{type(exc).__name__}: {exc}"
                logger.warning("Event worker turn failed (%d in a row): %s", self._failures, self.last_error)
            await self._wait(busy=claimed > 0)
        if self._in_flight:
            await asyncio.gather(*self._in_flight, return_exceptions=True)
        with contextlib.suppress(Exception):
            await EventWorkerHeartbeat.delete().where(EventWorkerHeartbeat.worker_id == self.worker_id)

    async def _turn(self) -> int:
        """One turn: heartbeat, maybe the reconciliation, then claim batches into free slots."""
        await self._heartbeat()
        await self._maybe_reconcile()
        claimed = 0
        while len(self._in_flight) < self.settings.concurrency and not self._stop.is_set():
            claim = await claim_next(self.worker_id, self.settings.lease_seconds)
            if claim is None:
                break
            claimed += 1
            task = self._spawn(process_claim(self.gateway, claim, self.settings), f"events {claim.key}")
            self._leased[task] = claim.ids
        return claimed

    def _spawn(self, work: Any, name: str) -> asyncio.Task[Any]:
        task = asyncio.create_task(self._guard(work, name), name=name)
        self._in_flight.add(task)
        task.add_done_callback(self._finished)
        return task

    async def _guard(self, work: Any, name: str) -> None:
        try:
            await work
        except Exception as exc:  # e.g. marking the events failed when the database is gone
            self.last_error = f"{type(exc).__name__}: {exc}"
            logger.warning("%s failed: %s", name, self.last_error)

    def _finished(self, task: asyncio.Task[Any]) -> None:
        self._in_flight.discard(task)
        self._leased.pop(task, None)
        self._wake.set()

    async def _wait(self, *, busy: bool) -> None:
        if busy and len(self._in_flight) < self.settings.concurrency:
            return  # there may be more to claim right away
        timeout = self.settings.poll_seconds
        if self._failures:
            timeout = min(self.settings.poll_seconds * 2**self._failures, MAX_IDLE_BACKOFF_SECONDS)
        self._wake.clear()
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self._wake.wait(), timeout=timeout)

    async def _heartbeat(self) -> None:
        """Record in `event_worker` that this loop turns (every few seconds, not every turn), and put
        back events leased to this worker that no task of it is working on."""
        now = time.monotonic()
        if now - self._last_heartbeat_write < HEARTBEAT_EVERY_SECONDS:
            return
        await release_orphaned_leases(self.worker_id, [i for ids in self._leased.values() for i in ids])
        await EventWorkerHeartbeat.insert(
            EventWorkerHeartbeat(
                worker_id=self.worker_id,
                hostname=socket.gethostname(),
                pid=os.getpid(),
                mode=self.mode,
                heartbeat_at=datetime.now(UTC),
                iterations=self.iterations,
                last_error=self.last_error,
            )
        ).on_conflict(
            target=EventWorkerHeartbeat.worker_id,
            action="DO UPDATE",
            values=[
                EventWorkerHeartbeat.heartbeat_at,
                EventWorkerHeartbeat.iterations,
                EventWorkerHeartbeat.last_error,
            ],
        )
        self._last_heartbeat_write = now

    async def _maybe_reconcile(self) -> None:
        """Lease the reconciliation job when it is due (one worker of all at a time) and start it."""
        minutes = self.settings.reconcile_minutes
        if minutes <= 0:
            return
        rows = await ScheduledTask.raw(
            "INSERT INTO scheduled_task (name, next_run_at, leased_by, lease_expires_at) "
            "VALUES ({}, now(), {}, now() + make_interval(secs => {})) "
            "ON CONFLICT (name) DO UPDATE SET leased_by = EXCLUDED.leased_by, "
            "lease_expires_at = EXCLUDED.lease_expires_at "
            "WHERE scheduled_task.next_run_at <= now() "
            "AND (scheduled_task.lease_expires_at IS NULL OR scheduled_task.lease_expires_at <= now()) "
            "RETURNING id",
            RECONCILE_TASK,
            self.worker_id,
            float(self.settings.lease_seconds),
        )
        if rows:
            self._spawn(self._reconcile(minutes), "reconciliation")

    async def _reconcile(self, minutes: float) -> None:
        result = "failed"
        try:
            found, stored = await reconcile_undelivered(self.gateway, hours=self.settings.retry_hours)
            result = f"{found} undelivered at Stripe, {stored} stored"
            if stored:
                logger.info("Reconciliation: %s", result)
                self._wake.set()
        finally:
            # Retried at the next interval either way; a failure is not retried in a tight loop.
            await ScheduledTask.raw(
                "UPDATE scheduled_task SET leased_by = NULL, lease_expires_at = NULL, last_run_at = now(), "
                "last_result = {}, next_run_at = now() + make_interval(secs => {}) WHERE name = {} AND leased_by = {}",
                result,
                minutes * 60,
                RECONCILE_TASK,
                self.worker_id,
            )

    def start(self) -> None:
        """Run in the background of the current event loop (again after `stop()`)."""
        self._stop.clear()
        self._task = asyncio.create_task(self.run(), name="stripe-event-worker")

    def request_stop(self) -> None:
        """Ask `run()` to return after the work in flight (safe from a signal handler)."""
        self._stop.set()
        self._wake.set()

    async def stop(self) -> None:
        """Finish the work in flight, then stop."""
        self.request_stop()
        if self._task is not None:
            await self._task


async def release_orphaned_leases(worker_id: str, working_on: list[int]) -> int:
    """Return to the queue events leased to `worker_id` but not in `working_on` (event row ids).

    A claim whose statement committed while its connection died never reached the worker; without
    this its events would wait for the lease to expire. Returns how many were put back.
    """
    rows = await EventWorkerHeartbeat.raw(
        "UPDATE stripe_event SET status = 'pending', leased_by = NULL, lease_expires_at = NULL, "
        "attempts = GREATEST(attempts - 1, 0) "
        "WHERE leased_by = {} AND status = 'processing' AND NOT (id = ANY({})) RETURNING id",
        worker_id,
        working_on,
    )
    if rows:
        logger.warning("Put back %d event(s) whose claim never reached this worker", len(rows))
    return len(rows)


async def standalone_worker_alive(stale_seconds: float, hostname: str | None = None) -> bool:
    """True when a standalone worker on `hostname` (default: this host) looped within `stale_seconds`.

    For container health checks: the check runs beside the worker, in the same container.
    """
    since = datetime.now(UTC) - timedelta(seconds=stale_seconds)
    return bool(
        await EventWorkerHeartbeat.exists().where(
            (EventWorkerHeartbeat.hostname == (hostname or socket.gethostname()))
            & (EventWorkerHeartbeat.mode == "standalone")
            & (EventWorkerHeartbeat.heartbeat_at >= since)
        )
    )
