"""Webhook delivery: Stripe's signature scheme, retries with backoff, and chaos switches for tests.

https://docs.stripe.com/webhooks#verify-official-libraries (signature `t=<unix>,v1=<HMAC-SHA256>`),
https://docs.stripe.com/webhooks#retries (retries; the schedule here is compressed and configurable).
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import hmac
import json
import random
import time
from dataclasses import dataclass, field
from typing import Any

import httpx

from .store import Obj, Store


def sign(payload: str, secret: str, timestamp: int | None = None) -> str:
    """The `Stripe-Signature` header value for `payload` signed with an endpoint secret."""
    ts = int(time.time()) if timestamp is None else timestamp
    mac = hmac.new(secret.encode(), f"{ts}.{payload}".encode(), hashlib.sha256).hexdigest()
    return f"t={ts},v1={mac}"


@dataclass
class Chaos:
    """Test switches (`POST /_emulator/chaos`): reorder, duplicate, delay or hold deliveries."""

    shuffle: bool = False
    duplicate: bool = False
    delay_seconds: float = 0.0
    hold: bool = False


@dataclass(order=True)
class _Job:
    due: float
    seq: int
    event_id: str = field(compare=False)
    endpoint_id: str = field(compare=False)
    attempt: int = field(compare=False, default=1)


class Dispatcher:
    """Queues one delivery per (event, matching endpoint) and sends them from a background task."""

    def __init__(self, store: Store, retry_schedule: list[float], timeout: float) -> None:
        self.store = store
        self.retry_schedule = retry_schedule
        self.timeout = timeout
        self.chaos = Chaos()
        self.jobs: list[_Job] = []
        self.deliveries: list[dict[str, Any]] = []
        self._seq = 0
        self._wake: asyncio.Event | None = None
        self._quiet: asyncio.Event | None = None
        self._task: asyncio.Task[None] | None = None
        self._client: httpx.AsyncClient | None = None
        self._inflight = 0
        store.event_listeners.append(self.enqueue)

    # --- queueing ----------------------------------------------------------------------------
    def enqueue(self, event: Obj) -> None:
        """Queue `event` for every enabled endpoint whose `enabled_events` match its type."""
        count = 0
        for we in self.store.all("webhook_endpoint"):
            if we["status"] != "enabled" or not _matches(we["enabled_events"], event["type"]):
                continue
            self._seq += 1
            self.jobs.append(_Job(time.monotonic() + self.chaos.delay_seconds, self._seq, event["id"], we["id"]))
            count += 1
        event["pending_webhooks"] = count
        self.store.side(event["id"])["pending"] = sorted(
            {j.endpoint_id for j in self.jobs if j.event_id == event["id"]}
        )
        self.store.side(event["id"])["failed"] = False
        if self._wake is not None:
            self._wake.set()

    def flush(self) -> None:
        """Release held deliveries (`POST /_emulator/flush`)."""
        now = time.monotonic()
        for job in self.jobs:
            job.due = min(job.due, now)
        if self._wake is not None:
            self._wake.set()

    def reset(self) -> None:
        """Forget queued jobs, delivery records and chaos settings."""
        self.jobs.clear()
        self.deliveries.clear()
        self.chaos = Chaos()

    async def settle(self) -> None:
        """Wait (up to 10 s) until no delivery is in flight, so old events never arrive after a reset."""
        if self._quiet is None:
            return
        with contextlib.suppress(TimeoutError):
            async with asyncio.timeout(10):
                await self._quiet.wait()

    def idle(self) -> bool:
        """True when nothing is queued or being sent."""
        return not self.jobs and self._inflight == 0

    # --- the background task -----------------------------------------------------------------
    async def start(self) -> None:
        """Start the delivery task on the running loop."""
        self._wake = asyncio.Event()
        self._quiet = asyncio.Event()
        self._quiet.set()
        self._client = httpx.AsyncClient(timeout=self.timeout)
        self._task = asyncio.create_task(self._run())

    async def stop(self) -> None:
        """Stop delivering (pending jobs stay queued in memory)."""
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
        if self._client is not None:
            await self._client.aclose()

    async def _run(self) -> None:
        assert self._wake is not None
        while True:
            now = time.monotonic()
            due = [] if self.chaos.hold else [j for j in self.jobs if j.due <= now]
            if not due:
                self._wake.clear()
                timeout = None
                if self.jobs and not self.chaos.hold:
                    timeout = max(0.0, min(j.due for j in self.jobs) - now)
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(self._wake.wait(), timeout)
                continue
            due.sort()
            if self.chaos.shuffle:
                random.shuffle(due)
            for job in due:
                self.jobs.remove(job)
            self._inflight += len(due)
            assert self._quiet is not None
            self._quiet.clear()
            for job in due:
                try:
                    await self._deliver(job)
                    if self.chaos.duplicate:
                        await self._deliver(job, duplicate=True)
                finally:
                    self._inflight -= 1
            self._quiet.set()

    async def _deliver(self, job: _Job, duplicate: bool = False) -> None:
        event = self.store.find(job.event_id)
        endpoint = self.store.find(job.endpoint_id)
        if event is None or endpoint is None:
            return
        secret = self.store.side(endpoint["id"]).get("secret", "")
        payload = json.dumps(event, indent=2)
        headers = {
            "Content-Type": "application/json; charset=utf-8",
            "Stripe-Signature": sign(payload, secret),
            "User-Agent": "Stripe/1.0 (+https://stripe.com/docs/webhooks)",
        }
        started = time.monotonic()
        status: int | None = None
        error: str | None = None
        try:
            assert self._client is not None
            response = await self._client.post(endpoint["url"], content=payload.encode(), headers=headers)
            status = response.status_code
        except httpx.HTTPError as exc:
            error = f"{type(exc).__name__}: {exc}"
        ok = status is not None and 200 <= status < 300
        self.deliveries.append(
            {
                "event": event["id"],
                "type": event["type"],
                "endpoint": endpoint["id"],
                "url": endpoint["url"],
                "attempt": job.attempt,
                "duplicate": duplicate,
                "status": status,
                "error": error,
                "ok": ok,
                "at": time.time(),
                "duration_ms": round((time.monotonic() - started) * 1000, 1),
            }
        )
        if duplicate:
            return
        side = self.store.side(event["id"])
        pending: set[str] = set(side.get("pending") or ())
        if ok:
            pending.discard(endpoint["id"])
        elif job.attempt <= len(self.retry_schedule):
            delay = self.retry_schedule[job.attempt - 1]
            self._seq += 1
            self.jobs.append(_Job(time.monotonic() + delay, self._seq, job.event_id, job.endpoint_id, job.attempt + 1))
        else:
            side["failed"] = True
        side["pending"] = sorted(pending)
        event["pending_webhooks"] = len(pending)

    def delivery_success(self, event_id: str) -> bool:
        """Stripe's `delivery_success` filter: False while any endpoint is still pending or has failed for good.

        https://docs.stripe.com/api/events/list#list_events-delivery_success
        """
        side = self.store.side(event_id)
        return not side.get("failed") and not side.get("pending")


def _matches(enabled: list[str], event_type: str) -> bool:
    for pattern in enabled:
        if pattern == "*" or pattern == event_type or (pattern.endswith(".*") and event_type.startswith(pattern[:-1])):
            return True
    return False
