"""Delivering `customer.state_changed` webhooks to the host product (Standard Webhooks).

The outbox (`host_webhook`) is filled in the sync's transaction. `deliver_due` leases the oldest due
row of each person and endpoint in one short transaction (`FOR UPDATE SKIP LOCKED`, then a lease),
posts it with no transaction or pooled connection held, and records the outcome in another short
transaction. Only the oldest pending row of a person and endpoint is ever eligible, so deliveries
are in order per person even with several workers. Failures retry with backoff (5 s, 10 s … 1 h);
after `MAX_ATTEMPTS` the row is `failed` (later rows go on) and `litestar billing host-webhooks redeliver`
queues it again. Signing follows https://www.standardwebhooks.com (the `standardwebhooks` library):
`webhook-id` (the same on every retry), `webhook-timestamp`, `webhook-signature`.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
from standardwebhooks.webhooks import Webhook

from app.db import transaction
from app.entitlements import service
from app.entitlements.tables import HostWebhook, HostWebhookEndpoint

logger = logging.getLogger(__name__)

MAX_ATTEMPTS = 12
LEASE = timedelta(seconds=60)
TIMEOUT_SECONDS = 10.0


def backoff(attempts: int) -> timedelta:
    """Delay before retry number `attempts` (1-based): 5 s, 10 s, 20 s … capped at one hour."""
    return timedelta(seconds=min(5 * 2 ** max(attempts - 1, 0), 3600))


async def secret_for(url: str) -> str | None:
    """The signing secret of an endpoint: from `HOST_WEBHOOK_ENDPOINTS`, else the endpoint table."""
    for target in service.settings().webhook_endpoints:
        if target.url == url:
            return target.secret
    row = await HostWebhookEndpoint.objects().get(
        (HostWebhookEndpoint.url == url) & HostWebhookEndpoint.disabled_at.is_null()
    )
    return row.secret if row else None


async def lease_due(now: datetime, limit: int = 20) -> list[dict[str, Any]]:
    """Claim up to `limit` deliverable rows (the oldest pending one per person and endpoint)."""
    async with transaction():
        rows: list[dict[str, Any]] = await HostWebhook.raw(
            "SELECT id, message_id, endpoint_url, payload, attempts FROM host_webhook h "
            "WHERE status = 'pending' AND next_attempt_at <= {} AND (lease_until IS NULL OR lease_until < {}) "
            "AND NOT EXISTS (SELECT 1 FROM host_webhook e WHERE e.user_id = h.user_id "
            "AND e.endpoint_url = h.endpoint_url AND e.status = 'pending' AND e.id < h.id) "
            "ORDER BY id LIMIT {} FOR UPDATE SKIP LOCKED",
            now,
            now,
            limit,
        )
        if rows:
            await HostWebhook.update({HostWebhook.lease_until: now + LEASE}).where(
                HostWebhook.id.is_in([r["id"] for r in rows])
            )
    return rows


def signed_request(secret: str, message_id: str, payload: Any, now: datetime) -> tuple[bytes, dict[str, str]]:
    """The body and Standard Webhooks headers of one delivery."""
    body = payload if isinstance(payload, str) else json.dumps(payload)
    signature = Webhook(secret).sign(message_id, now, body)
    headers = {
        "content-type": "application/json",
        "webhook-id": message_id,
        "webhook-timestamp": str(int(now.timestamp())),
        "webhook-signature": signature,
        "user-agent": "billing-portal-webhooks/1",
    }
    return body.encode(), headers


async def deliver_due(http: httpx.AsyncClient | None = None, now: datetime | None = None, limit: int = 20) -> int:
    """Deliver what is due now; returns how many rows were attempted."""
    rows = await lease_due(now or datetime.now(UTC), limit)
    if not rows:
        return 0
    own = http is None
    client = http or httpx.AsyncClient(timeout=TIMEOUT_SECONDS)
    try:
        await asyncio.gather(*(_deliver(client, row) for row in rows))
    finally:
        if own:
            await client.aclose()
    return len(rows)


async def _deliver(http: httpx.AsyncClient, row: dict[str, Any]) -> None:
    sent_at = datetime.now(UTC)
    secret = await secret_for(row["endpoint_url"])
    error: str | None
    if secret is None:
        error = "endpoint no longer configured"
    else:
        body, headers = signed_request(secret, row["message_id"], row["payload"], sent_at)
        try:
            response = await http.post(row["endpoint_url"], content=body, headers=headers, timeout=TIMEOUT_SECONDS)
            error = None if 200 <= response.status_code < 300 else f"HTTP {response.status_code}"
        except httpx.HTTPError as exc:
            error = f"{type(exc).__name__}: {exc}"[:500]
    if error is None:
        await HostWebhook.update(
            {
                HostWebhook.status: "delivered",
                HostWebhook.delivered_at: datetime.now(UTC),
                HostWebhook.lease_until: None,
                HostWebhook.attempts: row["attempts"] + 1,
                HostWebhook.last_error: None,
            }
        ).where(HostWebhook.id == row["id"])
        return
    attempts = row["attempts"] + 1
    logger.warning("Webhook %s to %s failed (attempt %d): %s", row["message_id"], row["endpoint_url"], attempts, error)
    await HostWebhook.update(
        {
            HostWebhook.status: "failed" if attempts >= MAX_ATTEMPTS or secret is None else "pending",
            HostWebhook.attempts: attempts,
            HostWebhook.last_error: error,
            HostWebhook.lease_until: None,
            HostWebhook.next_attempt_at: datetime.now(UTC) + backoff(attempts),
        }
    ).where(HostWebhook.id == row["id"])


async def redeliver(message_ids: list[str] | None = None, failed: bool = True) -> int:
    """Queue rows again: those with `message_ids` (any status), else every failed one; returns how many."""
    query = HostWebhook.update(
        {
            HostWebhook.status: "pending",
            HostWebhook.attempts: 0,
            HostWebhook.next_attempt_at: datetime.now(UTC),
            HostWebhook.lease_until: None,
        }
    )
    if message_ids:
        query = query.where(HostWebhook.message_id.is_in(message_ids))
    elif failed:
        query = query.where(HostWebhook.status == "failed")
    else:
        return 0
    rows = await query.returning(HostWebhook.id)
    return len(rows)


async def redeliver_row(row_id: int) -> str | None:
    """Queue one outbox row again, whatever its status; returns its message id (None: no such row)."""
    rows = (
        await HostWebhook.update(
            {
                HostWebhook.status: "pending",
                HostWebhook.attempts: 0,
                HostWebhook.next_attempt_at: datetime.now(UTC),
                HostWebhook.lease_until: None,
            }
        )
        .where(HostWebhook.id == row_id)
        .returning(HostWebhook.message_id)
    )
    return str(rows[0]["message_id"]) if rows else None


class HostWebhookDelivery:
    """A polling loop: ends grace periods and grants that ran out (`service.refresh_due`), then
    delivers due webhooks. Runs next to the event worker (app lifespan, `litestar billing worker`)."""

    def __init__(self, poll_seconds: float = 1.0) -> None:
        self.poll_seconds = poll_seconds
        self._stop = asyncio.Event()
        self._task: asyncio.Task[None] | None = None

    async def run(self) -> None:
        """Work until `stop()`; a failed iteration (database restarting…) costs one turn only."""
        async with httpx.AsyncClient(timeout=TIMEOUT_SECONDS) as http:
            while not self._stop.is_set():
                handled = 0
                try:
                    # Its own task, so a transaction marker left behind by a dropped connection
                    # (Piccolo keeps it in a ContextVar) dies with the iteration.
                    handled = await asyncio.create_task(self._iteration(http))
                except Exception:
                    logger.exception("Host webhook delivery iteration failed")
                if handled:
                    continue
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(self._stop.wait(), timeout=self.poll_seconds)

    async def _iteration(self, http: httpx.AsyncClient) -> int:
        await service.refresh_due()
        return await deliver_due(http)

    def start(self) -> None:
        """Run in the background of the current event loop."""
        self._task = asyncio.create_task(self.run(), name="host-webhook-delivery")

    def request_stop(self) -> None:
        """Stop after the current iteration (signal handlers)."""
        self._stop.set()

    async def stop(self) -> None:
        """Finish the current deliveries, then stop."""
        self._stop.set()
        if self._task is not None:
            await self._task
