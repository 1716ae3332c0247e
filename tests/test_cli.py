"""`litestar billing …` commands against the emulator and the real database."""

from __future__ import annotations

import asyncio
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import httpx
import pytest
from click.testing import CliRunner

from app.auth.tables import User
from app.billing.tables import Customer, Plan, Price, StripeEvent
from app.cli import billing
from tests.conftest import WEBHOOK_SECRET


@pytest.fixture
def cli_env(
    monkeypatch: pytest.MonkeyPatch, stripe_emulator: Any, emulator_control: httpx.Client, db: None, tmp_path: Path
) -> CliRunner:
    """The environment an operator would run the commands with (no app server running)."""
    for name, value in {
        "SESSION_SECRET": "c" * 40,
        "OIDC_ISSUER": "http://localhost:9400",
        "AUTH0_CLIENT_ID": "cli",
        "AUTH0_CLIENT_SECRET": "cli-secret",
        "STRIPE_SECRET_KEY": "sk_test_cli",
        "STRIPE_WEBHOOK_SECRET": WEBHOOK_SECRET,
        "STRIPE_API_BASE": stripe_emulator.url,
        "DATA_DIR": str(tmp_path),
    }.items():
        monkeypatch.setenv(name, value)
    return CliRunner()


async def run(runner: CliRunner, *args: str) -> str:
    """Invoke a command as an operator would; in a thread, since commands run their own event loop."""
    result = await asyncio.to_thread(runner.invoke, billing, list(args), catch_exceptions=False)
    assert result.exit_code == 0, result.output
    return result.output


async def test_plans_push_is_idempotent_and_syncs_locally(cli_env: CliRunner) -> None:
    first = await run(cli_env, "plans", "push")
    assert "created product pro" in first and "created price pro_yearly" in first
    second = await run(cli_env, "plans", "push")
    assert "nothing to change" in second
    assert "Synced 3 plans and 9 prices." in second


async def test_plans_push_moves_the_lookup_key_to_a_new_price(cli_env: CliRunner, tmp_path: Path) -> None:
    await run(cli_env, "plans", "push")
    catalog = (Path(__file__).parent.parent / "plans.toml").read_text().replace("monthly = 1900", "monthly = 2100")
    changed = tmp_path / "plans.toml"
    changed.write_text(catalog)
    output = await run(cli_env, "plans", "push", "--file", str(changed))
    assert "created price pro_monthly" in output and "archived price" in output
    price = await Price.objects().get(Price.lookup_key == "pro_monthly")
    assert price is not None and price.unit_amount_cents == 2100 and price.active
    assert await Price.count().where(Price.active == False) == 1  # noqa: E712


async def test_malformed_catalogue_is_a_clear_error(cli_env: CliRunner, tmp_path: Path) -> None:
    bad = tmp_path / "plans.toml"
    bad.write_text('[[plans]]\nkey = "x"\nname = "X"\nmonthly = 100\n')
    result = await asyncio.to_thread(cli_env.invoke, billing, ["plans", "push", "--file", str(bad)])
    assert result.exit_code != 0 and "needs a positive whole yearly amount" in result.output


async def test_reconcile_stores_and_applies_events_stripe_could_not_deliver(cli_env: CliRunner, gateway: Any) -> None:
    user = User(subject="lost-user", email="lost@example.com")
    await user.save()
    # No app is listening, so every delivery fails and Stripe marks the events undelivered.
    customer = await gateway.client.v1.customers.create_async(
        params={"email": "lost@example.com", "metadata": {"user_id": str(user.id)}}
    )
    deadline = time.monotonic() + 20
    while not [e async for e in gateway.events(delivery_success=False, type="customer.created")]:
        assert time.monotonic() < deadline, "the emulator never gave up delivering"
        await asyncio.sleep(0.2)
    assert await StripeEvent.count() == 0
    output = await run(cli_env, "events", "reconcile", "--hours", "1")
    assert "1 were missing and stored, 1 applied" in output
    row = await StripeEvent.objects().first()
    assert row is not None and row.type == "customer.created" and row.status == "processed"
    linked = await Customer.objects().get(Customer.stripe_customer_id == customer.id)
    assert linked is not None and linked.user == user.id and linked.email == "lost@example.com"
    again = await run(cli_env, "events", "reconcile", "--hours", "1")
    assert ", 0 were missing" in again


async def test_replay_applies_failed_events_again(cli_env: CliRunner) -> None:
    await run(cli_env, "plans", "push")
    await Plan.delete(force=True)
    await StripeEvent.insert(
        StripeEvent(
            stripe_event_id="evt_replay_me",
            type="product.updated",
            created=datetime.now(UTC),
            payload={"id": "evt_replay_me", "type": "product.updated", "data": {"object": {"id": "prod_x"}}},
            stripe_customer_id="catalog",
            status="failed",
            attempts=8,
            last_error="StripeUnavailable: Stripe did not answer.",
        )
    )
    output = await run(cli_env, "events", "replay")
    assert "Applied 1 event(s)." in output
    row = await StripeEvent.objects().first()
    assert row is not None and row.status == "processed"
    assert await Plan.count() == 3


async def test_portal_diff_prints_drift_and_export_writes_stripe_state(
    cli_env: CliRunner, gateway: Any, tmp_path: Path
) -> None:
    await run(cli_env, "plans", "push")
    await run(cli_env, "portal", "push")
    assert "No drift." in await run(cli_env, "portal", "diff")
    configs = [c async for c in gateway.portal_configurations()]
    review = next(c for c in configs if c["metadata"].get("workflow") == "billing_review")
    await gateway.update_portal_configuration(review["id"], {"business_profile": {"headline": "Changed in Stripe"}})
    result = await asyncio.to_thread(cli_env.invoke, billing, ["portal", "diff"])
    assert result.exit_code == 1
    assert "billing_review  business_profile.headline: file='Billing portal: manage your plan" in result.output
    assert "stripe='Changed in Stripe'" in result.output and "1 field(s) differ." in result.output
    exported = tmp_path / "export.toml"
    await run(cli_env, "portal", "export", "--output", str(exported))
    import tomllib

    data = tomllib.loads(exported.read_text())["configurations"]
    assert data[review["id"]]["business_profile"]["headline"] == "Changed in Stripe"
    assert data[review["id"]]["metadata"] == {"workflow": "billing_review"}
