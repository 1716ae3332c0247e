"""Helpers for tests: a real HTTP webhook endpoint that verifies Stripe signatures.

https://docs.stripe.com/webhooks#verify-official-libraries
"""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Callable
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import stripe


class WebhookReceiver:
    """A tiny threaded HTTP server that checks `Stripe-Signature` with `stripe.Webhook.construct_event`.

    Verified events land in `events` (in arrival order); bad signatures in `rejected`. Set `fail_next`
    to answer the next N deliveries with 500, to exercise the emulator's retries.
    """

    def __init__(self, secret: str = "whsec_test_receiver_secret") -> None:
        self.secret = secret
        self.events: list[dict[str, Any]] = []
        self.rejected: list[str] = []
        self.fail_next = 0
        self.lock = threading.Lock()
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                payload = self.rfile.read(int(self.headers.get("Content-Length") or 0))
                status = 200
                with receiver.lock:
                    if receiver.fail_next > 0:
                        receiver.fail_next -= 1
                        status = 500
                if status == 200:
                    try:
                        stripe.Webhook.construct_event(
                            payload, self.headers.get("Stripe-Signature", ""), receiver.secret
                        )
                        with receiver.lock:
                            receiver.events.append(json.loads(payload))
                    except (stripe.SignatureVerificationError, ValueError) as exc:
                        with receiver.lock:
                            receiver.rejected.append(str(exc))
                        status = 400
                self.send_response(status)
                self.send_header("Content-Length", "2")
                self.end_headers()
                self.wfile.write(b"{}")

            def do_GET(self) -> None:
                # A landing page for success/return URLs in browser tests.
                body = f"<!doctype html><title>Landing</title><h1>Landing</h1><p>{self.path}</p>".encode()
                self.send_response(200)
                self.send_header("Content-Type", "text/html; charset=utf-8")
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def log_message(self, format: str, *args: Any) -> None:
                return

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.base_url = f"http://127.0.0.1:{self.server.server_address[1]}"
        self.url = f"{self.base_url}/webhooks/stripe"
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True, name="webhook-receiver")
        self.thread.start()

    def clear(self) -> None:
        """Forget received events."""
        with self.lock:
            self.events.clear()
            self.rejected.clear()
            self.fail_next = 0

    def types(self) -> list[str]:
        """Types of the verified events, in arrival order."""
        with self.lock:
            return [e["type"] for e in self.events]

    def wait_for(
        self, predicate: Callable[[list[dict[str, Any]]], bool], timeout: float = 10.0
    ) -> list[dict[str, Any]]:
        """Poll until `predicate(events)` holds; raise AssertionError with the received types otherwise."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            with self.lock:
                snapshot = list(self.events)
            if predicate(snapshot):
                return snapshot
            time.sleep(0.02)
        raise AssertionError(f"webhooks not received in {timeout}s; got {self.types()}")

    def wait_for_types(self, *types: str, timeout: float = 10.0) -> list[dict[str, Any]]:
        """Wait until every given event type has arrived at least once."""
        return self.wait_for(lambda evs: set(types) <= {e["type"] for e in evs}, timeout)

    def of_type(self, event_type: str) -> list[dict[str, Any]]:
        """Received events of one type."""
        with self.lock:
            return [e for e in self.events if e["type"] == event_type]

    def stop(self) -> None:
        """Shut the server down."""
        self.server.shutdown()
        self.server.server_close()
