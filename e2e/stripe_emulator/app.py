"""The ASGI application: `/v1` API, hosted pages and `/_emulator` control endpoints."""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import time
from collections import Counter
from pathlib import Path
from typing import Any

from .api import Api
from .config import EmulatorConfig
from .entitlements import Entitlements
from .errors import StripeError
from .hosted import HostedPages
from .sessions import StripeEmulator
from .store import API_VERSION
from .webhooks import Dispatcher

log = logging.getLogger("stripe_emulator")
Scope = dict[str, Any]


class EmulatorApp:
    """One emulator instance as an ASGI app (create it with `create_app`)."""

    def __init__(self, config: EmulatorConfig) -> None:
        self.config = config
        self.emulator = StripeEmulator(config)
        self.dispatcher = Dispatcher(self.emulator, config.retry_schedule, config.webhook_timeout)
        self.api = Api(self.emulator, self.dispatcher)
        self.api.resources["entitlements"] = Entitlements(self.emulator)
        self.pages = HostedPages(self.emulator)
        self._started = False
        # /v1 requests received per wall-clock second (Unix seconds): what Stripe's rate limiter would see.
        self.requests_per_second: Counter[int] = Counter()
        self._saver: asyncio.Task[None] | None = None
        self._ticker: asyncio.Task[None] | None = None
        if config.state_file and Path(config.state_file).exists():
            self.emulator.restore(json.loads(Path(config.state_file).read_text()))
            log.info("state loaded from %s", config.state_file)
        self._register_cli_endpoints()

    def _register_cli_endpoints(self) -> None:
        for we in self.emulator.all("webhook_endpoint"):
            if self.emulator.side(we["id"]).get("cli"):
                self.emulator.remove(we["id"])
        for target in self.config.webhooks:
            we = self.emulator.create_webhook_endpoint(
                {"url": target.url, "enabled_events": ["*"], "description": "Registered by --webhook-url"},
                secret=target.secret,
            )
            self.emulator.side(we["id"])["cli"] = True

    # --- lifecycle ---------------------------------------------------------------------------
    async def startup(self) -> None:
        """Start webhook delivery and the state-file writer."""
        if self._started:
            return
        self._started = True
        await self.dispatcher.start()
        self._ticker = asyncio.create_task(self._tick_loop())
        if self.config.state_file:
            self._saver = asyncio.create_task(self._save_loop())

    async def shutdown(self) -> None:
        """Stop delivering and write the state file one last time."""
        for task in (self._saver, self._ticker):
            if task is not None:
                task.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await task
        await self.dispatcher.stop()
        if self.config.state_file:
            self.emulator.save(self.config.state_file)

    async def _tick_loop(self) -> None:
        # Real time passes too: renewals, retries and expiries that fall due without a clock advance still run.
        while True:
            await asyncio.sleep(1.0)
            try:
                self.emulator.advance_clock(None, self.emulator.now())
            except Exception:
                log.exception("processing due subscriptions failed")

    async def _save_loop(self) -> None:
        assert self.config.state_file
        while True:
            await asyncio.sleep(0.5)
            if self.emulator.dirty:
                self.emulator.save(self.config.state_file)

    # --- ASGI --------------------------------------------------------------------------------
    async def __call__(self, scope: Scope, receive: Any, send: Any) -> None:
        if scope["type"] == "lifespan":
            while True:
                message = await receive()
                if message["type"] == "lifespan.startup":
                    await self.startup()
                    await send({"type": "lifespan.startup.complete"})
                elif message["type"] == "lifespan.shutdown":
                    await self.shutdown()
                    await send({"type": "lifespan.shutdown.complete"})
                    return
        if scope["type"] != "http":
            return
        if not self._started:
            await self.startup()
        body = b""
        while True:
            message = await receive()
            body += message.get("body", b"")
            if not message.get("more_body"):
                break
        method: str = scope["method"]
        path: str = scope["path"]
        query = scope.get("query_string", b"").decode("latin-1")
        headers = {k.decode("latin-1").lower(): v.decode("latin-1") for k, v in scope["headers"]}
        if path.startswith("/v1/"):
            self.requests_per_second[int(time.time())] += 1
            if self.config.api_latency_seconds:
                await asyncio.sleep(self.config.api_latency_seconds)
            if self.config.api_outage:
                outage = {"error": {"type": "api_error", "message": "The emulator is simulating a Stripe outage."}}
                await _send(send, 503, json.dumps(outage).encode(), [(b"content-type", b"application/json")])
                return
            r = self.api.handle(method, path, query, headers, body)
            await _send(send, r.status, r.body, r.headers)
            return
        if path.startswith("/_emulator/"):
            status, payload = self.control(method, path, body)
            if path == "/_emulator/reset":
                await self.dispatcher.settle()
            await _send(send, status, json.dumps(payload).encode(), [(b"content-type", b"application/json")])
            return
        try:
            page = self.pages.handle(method, path, query, body, accept_language=headers.get("accept-language"))
        except StripeError as err:
            await _send(send, err.status, json.dumps(err.body()).encode(), [(b"content-type", b"application/json")])
            return
        if page is None:
            await _send(send, 404, b"Not found", [(b"content-type", b"text/plain")])
            return
        hdrs = [(b"content-type", page.content_type.encode())] + [(k.encode(), v.encode()) for k, v in page.headers]
        await _send(send, page.status, page.body, hdrs)

    # --- /_emulator control endpoints ---------------------------------------------------------
    def control(self, method: str, path: str, body: bytes) -> tuple[int, Any]:
        """Test controls: health, reset, clock, chaos, flush, deliveries, settings."""
        try:
            data = json.loads(body) if body else {}
        except ValueError:
            return 400, {"error": "body must be JSON"}
        em = self.emulator
        if path == "/_emulator/health":
            return 200, {"status": "ok", "api_version": API_VERSION, "now": em.now()}
        if path == "/_emulator/reset" and method == "POST":
            em.clear()
            self.dispatcher.reset()
            self.api.idempotency.clear()
            self.config.api_latency_seconds = 0.0
            self.config.api_outage = False
            self.requests_per_second.clear()
            self._register_cli_endpoints()
            return 200, {"reset": True}
        if path == "/_emulator/clock":
            return 200, {"now": em.now(), "offset": em.clock_offset}
        if path == "/_emulator/clock/advance" and method == "POST":
            if "to" in data:
                target = int(data["to"])
            else:
                target = em.now() + int(data.get("seconds", 0))
            if target < em.now():
                return 400, {"error": "the clock only moves forward"}
            em.advance_clock(None, target)
            return 200, {"now": em.now(), "offset": em.clock_offset}
        if path == "/_emulator/chaos" and method == "POST":
            chaos = self.dispatcher.chaos
            for key in ("shuffle", "duplicate", "hold"):
                if key in data:
                    setattr(chaos, key, bool(data[key]))
            if "delay_seconds" in data:
                chaos.delay_seconds = float(data["delay_seconds"])
            if not chaos.hold:
                self.dispatcher.flush()
            return 200, chaos.__dict__
        if path == "/_emulator/flush" and method == "POST":
            self.dispatcher.chaos.hold = False
            self.dispatcher.flush()
            return 200, {"flushed": True}
        if path == "/_emulator/deliveries":
            return 200, {
                "data": self.dispatcher.deliveries,
                "pending": len(self.dispatcher.jobs),
                "idle": self.dispatcher.idle(),
            }
        if path == "/_emulator/requests" and method == "GET":
            counts = sorted(self.requests_per_second.items())
            return 200, {
                "total": sum(n for _, n in counts),
                "peak_per_second": max((n for _, n in counts), default=0),
                "per_second": [[second, n] for second, n in counts],
            }
        if path == "/_emulator/requests/clear" and method == "POST":
            self.requests_per_second.clear()
            return 200, {"cleared": True}
        if path == "/_emulator/settings" and method == "POST":
            if data.get("dunning_final_status") in ("canceled", "unpaid"):
                self.config.dunning_final_status = data["dunning_final_status"]
            if isinstance(data.get("dunning_retry_days"), list):
                self.config.dunning_retry_days = [int(x) for x in data["dunning_retry_days"]]
            if isinstance(data.get("retry_schedule"), list):
                self.dispatcher.retry_schedule[:] = [float(x) for x in data["retry_schedule"]]
            if "api_latency_ms" in data:
                self.config.api_latency_seconds = max(float(data["api_latency_ms"]), 0.0) / 1000
            if "api_outage" in data:
                self.config.api_outage = bool(data["api_outage"])
            return 200, {
                "api_latency_ms": self.config.api_latency_seconds * 1000,
                "api_outage": self.config.api_outage,
                "dunning_final_status": self.config.dunning_final_status,
                "dunning_retry_days": self.config.dunning_retry_days,
                "retry_schedule": self.dispatcher.retry_schedule,
            }
        return 404, {"error": f"unknown control endpoint {method} {path}"}


async def _send(send: Any, status: int, body: bytes, headers: list[tuple[bytes, bytes]]) -> None:
    await send(
        {
            "type": "http.response.start",
            "status": status,
            "headers": [*headers, (b"content-length", str(len(body)).encode())],
        }
    )
    await send({"type": "http.response.body", "body": body})


def create_app(config: EmulatorConfig | None = None) -> EmulatorApp:
    """Build an emulator ASGI app (`EmulatorConfig()` defaults when no config is given)."""
    return EmulatorApp(config or EmulatorConfig())
