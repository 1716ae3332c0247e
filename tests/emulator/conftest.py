"""Fixtures for the emulator's own tests: one emulator in a background thread on a free port.

The emulator is shared by the session and reset before each test (`POST /_emulator/reset`); the webhook
receiver is registered like the app's endpoint would be with `--webhook-url/--webhook-secret`.
"""

from __future__ import annotations

import os
import time
from collections.abc import Iterator
from dataclasses import dataclass

import httpx
import pytest
import stripe

from e2e.stripe_emulator import EmulatorConfig, RunningEmulator, WebhookTarget, run_in_thread
from e2e.stripe_emulator.testing import WebhookReceiver

API_KEY = "sk_test_emulator_contract"


@pytest.fixture(scope="session")
def webhook_receiver() -> Iterator[WebhookReceiver]:
    receiver = WebhookReceiver()
    yield receiver
    receiver.stop()


@pytest.fixture(scope="session")
def emulator(webhook_receiver: WebhookReceiver) -> Iterator[RunningEmulator]:
    config = EmulatorConfig(
        port=0,
        webhooks=[WebhookTarget(webhook_receiver.url, webhook_receiver.secret)],
        retry_schedule=[0.2, 0.4],
        webhook_timeout=2.0,
    )
    running = run_in_thread(config)
    yield running
    running.stop()


@pytest.fixture
def control(emulator: RunningEmulator, webhook_receiver: WebhookReceiver) -> Iterator[httpx.Client]:
    """An HTTP client on the emulator, after resetting its state and the receiver."""
    with httpx.Client(base_url=emulator.url, timeout=10) as http:
        http.post("/_emulator/reset").raise_for_status()
        # A delivery already in flight when the reset came must land before the receiver forgets.
        deadline = time.monotonic() + 10
        while not http.get("/_emulator/deliveries").json()["idle"] and time.monotonic() < deadline:
            time.sleep(0.01)
        webhook_receiver.clear()
        yield http
        http.post("/_emulator/settings", json={"dunning_final_status": "canceled"})


@pytest.fixture
def stripe_client(emulator: RunningEmulator, control: httpx.Client) -> stripe.StripeClient:
    """The ordinary `stripe` SDK pointed at the (freshly reset) emulator."""
    return stripe.StripeClient(API_KEY, base_addresses={"api": emulator.url}, max_network_retries=0)


@dataclass
class Target:
    """Where a contract scenario runs: the emulator, or real Stripe test mode."""

    name: str
    client: stripe.StripeClient
    is_emulator: bool


REAL_KEY = os.environ.get("STRIPE_CONTRACT_SECRET_KEY", "")


@pytest.fixture(params=["emulator", "stripe-test-mode"])
def target(request: pytest.FixtureRequest) -> Target:
    """Each contract scenario runs against the emulator and, given a key, against real Stripe test mode."""
    if request.param == "emulator":
        client: stripe.StripeClient = request.getfixturevalue("stripe_client")
        return Target("emulator", client, True)
    if not REAL_KEY.startswith("sk_test_"):
        pytest.skip("real Stripe contract run skipped: set STRIPE_CONTRACT_SECRET_KEY=sk_test_... to run it")
    return Target("stripe-test-mode", stripe.StripeClient(REAL_KEY, max_network_retries=2), False)
