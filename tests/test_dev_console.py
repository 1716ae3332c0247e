"""`make run` reports a taken port before it starts anything."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
from pathlib import Path

from app.settings import PROJECT_ROOT
from tests.support.servers import free_port


def listening_socket() -> socket.socket:
    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    sock.listen()
    return sock


def test_a_taken_port_is_reported_before_anything_starts(tmp_path: Path) -> None:
    with listening_socket() as app_port, listening_socket() as emulator_port:
        port, stripe_port = app_port.getsockname()[1], emulator_port.getsockname()[1]
        env = {k: v for k, v in os.environ.items() if not k.startswith(("STRIPE_", "AUTH0_", "OIDC_", "DATABASE_"))}
        env.update(
            DATA_DIR=str(tmp_path / "data"),
            PORT=str(port),
            OIDC_PORT=str(free_port()),
            STRIPE_EMULATOR_PORT=str(stripe_port),
        )
        command = [sys.executable, "-m", "app.devstack"]
        result = subprocess.run(command, cwd=PROJECT_ROOT, env=env, capture_output=True, text=True, timeout=60)
    assert result.returncode == 1
    assert f"Already in use: PORT={port}, STRIPE_EMULATOR_PORT={stripe_port}" in result.stderr
    assert result.stdout == "" and "Traceback" not in result.stderr
    assert not (tmp_path / "data").exists(), "nothing was started or created"
