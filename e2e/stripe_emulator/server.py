"""Running the emulator: in the foreground (CLI) or in a background thread on a free port (tests)."""

from __future__ import annotations

import socket
import threading
import time
from dataclasses import dataclass

import uvicorn

from .app import EmulatorApp, create_app
from .config import EmulatorConfig


@dataclass
class RunningEmulator:
    """An emulator served by uvicorn in a daemon thread."""

    app: EmulatorApp
    server: uvicorn.Server
    thread: threading.Thread
    url: str

    def stop(self) -> None:
        """Ask uvicorn to exit and wait for the thread."""
        self.server.should_exit = True
        self.thread.join(timeout=10)


def run_in_thread(config: EmulatorConfig | None = None) -> RunningEmulator:
    """Start an emulator on a free port (port 0 in `config` or no config) and wait until it serves.

    The returned `url` is the API base for `StripeClient(base_addresses={"api": url})`.
    """
    config = config or EmulatorConfig(port=0)
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind((config.host, config.port))
    config.port = sock.getsockname()[1]
    app = create_app(config)
    server = uvicorn.Server(uvicorn.Config(app, log_level="warning", lifespan="on", access_log=False))
    thread = threading.Thread(target=server.run, kwargs={"sockets": [sock]}, daemon=True, name="stripe-emulator")
    thread.start()
    deadline = time.monotonic() + 10
    while not server.started:
        if time.monotonic() > deadline or not thread.is_alive():
            raise RuntimeError("the Stripe emulator did not start")
        time.sleep(0.01)
    return RunningEmulator(app, server, thread, f"http://{config.host}:{config.port}")


def serve(config: EmulatorConfig) -> None:
    """Serve in the foreground until interrupted (`python -m e2e.stripe_emulator`)."""
    uvicorn.run(create_app(config), host=config.host, port=config.port, log_level="info", access_log=False)
