"""A stand-in for the host product: a real HTTP server that records the webhooks it receives."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

HOST_SECRET = "whsec_" + "aG9zdC1wcm9kdWN0LXdlYmhvb2stc2VjcmV0LTMyYnl0ZXM="  # base64 of 32 bytes


@dataclass
class Received:
    headers: dict[str, str]
    body: bytes


@dataclass
class HostReceiver:
    """Records every POST; `status` is what it answers (set 500 to make deliveries fail)."""

    url: str = ""
    status: int = 200
    received: list[Received] = field(default_factory=list)
    lock: threading.Lock = field(default_factory=threading.Lock)

    def take(self) -> list[Received]:
        """Everything received since the last call."""
        with self.lock:
            got, self.received = self.received, []
        return got


@contextmanager
def host_receiver() -> Iterator[HostReceiver]:
    receiver = HostReceiver()

    class Handler(BaseHTTPRequestHandler):
        def do_POST(self) -> None:
            body = self.rfile.read(int(self.headers.get("content-length") or 0))
            with receiver.lock:
                if receiver.status < 300:
                    receiver.received.append(Received({k.lower(): v for k, v in self.headers.items()}, body))
            self.send_response(receiver.status)
            self.send_header("content-length", "0")
            self.end_headers()

        def log_message(self, format: str, *args: Any) -> None:
            return

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    receiver.url = f"http://127.0.0.1:{server.server_address[1]}/hooks/billing"
    try:
        yield receiver
    finally:
        server.shutdown()
        thread.join(timeout=5)
