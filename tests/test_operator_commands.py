"""Operator commands: `webhook create`, `doctor`, `events list`, live-key confirmation, and a CLI
that answers `--help` without settings and starts quickly."""

from __future__ import annotations

import asyncio
import os
import re
import resource
import subprocess
import sys
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
import pytest
from click.testing import CliRunner, Result

from app.billing.tables import EventWorkerHeartbeat, StripeEvent
from app.cli import billing
from app.settings import PROJECT_ROOT
from app.stripe_gateway import API_VERSION
from app.webhooks.endpoint import ENABLED_EVENTS
from tests.conftest import WEBHOOK_SECRET

LITESTAR = str(Path(sys.executable).parent / "litestar")
BASE_URL = "https://billing.example.com"


@pytest.fixture
def operator(
    monkeypatch: pytest.MonkeyPatch, stripe_emulator: Any, emulator_control: httpx.Client, db: None, tmp_path: Path
) -> CliRunner:
    """The environment an operator runs the commands with, against the emulator (no app server)."""
    for name, value in {
        "APP_BASE_URL": BASE_URL,
        "SESSION_SECRET": "c" * 40,
        "OIDC_ISSUER": "http://localhost:9400",
        "AUTH0_CLIENT_ID": "cli",
        "AUTH0_CLIENT_SECRET": "cli-secret",
        "STRIPE_SECRET_KEY": "sk_test_ops",
        "STRIPE_WEBHOOK_SECRET": WEBHOOK_SECRET,
        "STRIPE_API_BASE": stripe_emulator.url,
        "DATA_DIR": str(tmp_path),
    }.items():
        monkeypatch.setenv(name, value)
    return CliRunner()


async def invoke(runner: CliRunner, *args: str, stdin: str | None = None) -> Result:
    """Run a command as an operator would; in a thread, since commands run their own event loop."""
    return await asyncio.to_thread(runner.invoke, billing, list(args), input=stdin, catch_exceptions=False)


def our_endpoints(emulator_control: httpx.Client) -> list[dict[str, Any]]:
    endpoints = emulator_control.get(
        "/v1/webhook_endpoints", headers={"Authorization": "Bearer sk_test_ops"}, params={"limit": 100}
    ).json()["data"]
    return [e for e in endpoints if e["url"] == f"{BASE_URL}/webhooks/stripe"]


async def test_webhook_create_makes_the_endpoint_once_with_the_handled_events(
    operator: CliRunner, emulator_control: httpx.Client
) -> None:
    dry = await invoke(operator, "webhook", "create", "--dry-run")
    assert dry.exit_code == 0 and dry.output.startswith("Would: no endpoint for")
    assert our_endpoints(emulator_control) == []

    created = await invoke(operator, "webhook", "create")
    assert created.exit_code == 0, created.output
    (endpoint,) = our_endpoints(emulator_control)
    assert sorted(endpoint["enabled_events"]) == ENABLED_EVENTS
    assert endpoint["api_version"] == API_VERSION
    secret_line = created.output.strip().splitlines()[-1]
    assert secret_line.startswith("whsec_"), created.output

    again = await invoke(operator, "webhook", "create")
    assert again.exit_code == 0 and "whsec_" not in again.output
    assert f"{endpoint['id']} at {BASE_URL}/webhooks/stripe" in again.output
    assert len(our_endpoints(emulator_control)) == 1


async def test_a_live_key_asks_before_writing(
    operator: CliRunner, emulator_control: httpx.Client, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("STRIPE_SECRET_KEY", "sk_live_ops")
    refused = await invoke(operator, "webhook", "create", stdin="n\n")
    assert refused.exit_code == 1 and "LIVE Stripe account" in refused.output and "Aborted" in refused.output
    assert "Stripe:" not in refused.output  # nothing was sent
    # The emulator knows no live keys: reaching it (and being refused) shows the command went on.
    accepted = await invoke(operator, "webhook", "create", stdin="y\n")
    assert "LIVE Stripe account" in accepted.output and "Invalid API Key" in accepted.output
    dry = await invoke(operator, "webhook", "create", "--dry-run")  # writes nothing: no question
    assert "LIVE" not in dry.output and "Invalid API Key" in dry.output
    assert our_endpoints(emulator_control) == []


async def test_doctor_names_each_problem_then_passes_once_the_deployment_is_complete(operator: CliRunner) -> None:
    before = await invoke(operator, "doctor")
    assert before.exit_code == 1
    lines = before.output.strip().splitlines()
    assert lines[0].startswith("ok   stripe key: test mode secret key …_ops")
    assert any(line.startswith("FAIL webhook endpoint: no endpoint for") for line in lines), before.output
    assert any(line.startswith("FAIL portal configurations: 0 of 5") for line in lines), before.output
    assert any(line.startswith("ok   migrations:") for line in lines), before.output
    assert any(line.startswith("FAIL event worker: no worker looped") for line in lines), before.output

    for command in (["plans", "push"], ["portal", "push"], ["webhook", "create"]):
        result = await invoke(operator, *command)
        assert result.exit_code == 0, result.output
    # A worker's heartbeat, as a running `litestar billing worker` writes it.
    await EventWorkerHeartbeat.insert(
        EventWorkerHeartbeat(worker_id="host:1:abc", hostname="host", pid=1, mode="standalone")
    )
    after = await invoke(operator, "doctor")
    assert after.exit_code == 0, after.output
    assert len(after.output.strip().splitlines()) == 5

    await StripeEvent.insert(stuck_event("evt_stuck", "pending", due_minutes_ago=30))
    stuck = await invoke(operator, "doctor")
    assert stuck.exit_code == 1 and re.search(
        r"FAIL event worker: 1 worker\(s\) alive; oldest due event 18\d\d s", stuck.output
    )


def stuck_event(event_id: str, status: str, due_minutes_ago: int = 0, error: str | None = None) -> StripeEvent:
    return StripeEvent(
        stripe_event_id=event_id,
        type="customer.updated",
        created=datetime.now(UTC),
        payload={"id": event_id, "type": "customer.updated", "data": {"object": {"id": "cus_1"}}},
        stripe_customer_id="cus_1",
        status=status,
        attempts=8 if status == "failed" else 0,
        last_error=error,
        next_attempt_at=datetime.now(UTC) - timedelta(minutes=due_minutes_ago),
    )


async def test_events_list_shows_failed_events(operator: CliRunner) -> None:
    assert "No failed events." in (await invoke(operator, "events", "list")).output
    await StripeEvent.insert(
        stuck_event("evt_failed_one", "failed", error="StripeUnavailable: Stripe did not answer."),
        stuck_event("evt_pending_one", "pending"),
    )
    result = await invoke(operator, "events", "list", "--status", "failed")
    assert result.exit_code == 0
    assert "evt_failed_one" in result.output and "Stripe did not answer" in result.output
    assert "evt_pending_one" not in result.output and "1 failed event(s)." in result.output


def child_cpu_seconds() -> float:
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return usage.ru_utime + usage.ru_stime


def test_help_works_without_settings_and_starts_quickly() -> None:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("STRIPE_", "AUTH0_", "OIDC_", "SESSION_"))}
    cpu_seconds = []
    for args in (["billing", "--help"], ["billing", "webhook", "create", "--help"], ["billing", "doctor", "--help"]):
        before = child_cpu_seconds()
        result = subprocess.run([LITESTAR, *args], cwd=PROJECT_ROOT, env=env, capture_output=True, text=True)
        cpu_seconds.append(child_cpu_seconds() - before)
        assert result.returncode == 0, result.stderr
        assert "Traceback" not in result.stderr and "Usage: litestar billing" in result.stdout
    # CPU time, not wall time: on an idle machine they are the same (about 1 s here), while a CI box
    # shared with other jobs stretches only the wall clock.
    assert max(cpu_seconds) < 2.0, cpu_seconds


def test_a_command_without_settings_names_what_is_missing() -> None:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("STRIPE_", "AUTH0_", "OIDC_", "SESSION_"))}
    result = subprocess.run([LITESTAR, "billing", "doctor"], cwd=PROJECT_ROOT, env=env, capture_output=True, text=True)
    assert result.returncode == 1
    assert "Traceback" not in result.stderr + result.stdout
    assert "STRIPE_SECRET_KEY is required" in result.stderr + result.stdout
