"""The event worker: applies stored Stripe events to the local copy.

Runs inside each web process by default (started in the app's lifespan) and as
`litestar billing worker` in separate processes; any number at once is safe because events are
claimed with `FOR UPDATE SKIP LOCKED`. A webhook wakes the local worker at once; otherwise it
polls, so events stored by other processes or postponed by a backoff are picked up too.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging

from app.metrics import WORKER_ITERATIONS
from app.stripe_gateway import StripeGateway
from app.webhooks.service import process_next

logger = logging.getLogger(__name__)


class EventWorker:
    """A polling loop around `process_next`."""

    def __init__(self, gateway: StripeGateway, poll_seconds: float = 1.0) -> None:
        self.gateway = gateway
        self.poll_seconds = poll_seconds
        self._wake = asyncio.Event()
        self._stop = asyncio.Event()
        self._task: asyncio.Task[None] | None = None

    def wake(self) -> None:
        """Look for due events now instead of at the next poll."""
        self._wake.set()

    async def run(self) -> None:
        """Apply due events until `stop()`; sleeps `poll_seconds` when there is nothing to do."""
        while not self._stop.is_set():
            WORKER_ITERATIONS.inc()
            try:
                handled = await process_next(self.gateway)
            except Exception:  # e.g. the database is restarting: keep the worker alive
                logger.exception("Event worker iteration failed")
                handled = 0
            if handled:
                continue
            self._wake.clear()
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._wake.wait(), timeout=self.poll_seconds)

    def start(self) -> None:
        """Run in the background of the current event loop."""
        self._task = asyncio.create_task(self.run(), name="stripe-event-worker")

    async def stop(self) -> None:
        """Finish the current event, then stop."""
        self._stop.set()
        self._wake.set()
        if self._task is not None:
            await self._task
