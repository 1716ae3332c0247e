"""The event pipeline never freezes: leased events, read-then-write syncs, self-healing workers,
a truthful health check, deleted customers, malformed events and the sync's guards.

Real parts throughout: the app over HTTP, the Stripe emulator, PostgreSQL (backends terminated with
`pg_terminate_backend`), and `litestar billing worker` as a separate process.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import os
import signal
import subprocess
import sys
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import asyncpg
import httpx
import pytest

from app.asgi import create_app
from app.billing.sync import apply_customer, read_customer
from app.billing.tables import Customer, StripeEvent, Subscription
from app.settings import Settings, WorkerSettings
from app.webhooks.service import backoff, drain, process_next, replay
from tests.conftest import WEBHOOK_SECRET
from tests.support.billing import buy, settle, signed_in_user
from tests.support.servers import serve_in_loop
from tests.support.stripe import event_body, sign

Client = httpx.AsyncClient
ROOT = Path(__file__).resolve().parent.parent


async def eventually(check: Callable[[], Awaitable[bool]], seconds: float, what: str) -> float:
    """Poll `check` until it is true; returns how long it took. Fails the test after `seconds`."""
    start = time.monotonic()
    while not await check():
        if time.monotonic() - start > seconds:
            raise AssertionError(f"{what} did not happen within {seconds} s")
        await asyncio.sleep(0.1)
    return time.monotonic() - start


async def post_event(client: Client, event: dict[str, Any]) -> httpx.Response:
    body = event_body(event)
    return await client.post(
        "/webhooks/stripe",
        content=body,
        headers={"Stripe-Signature": sign(body, WEBHOOK_SECRET), "Content-Type": "application/json"},
    )


def customer_event(customer_id: str, event_id: str, **extra: Any) -> dict[str, Any]:
    return {
        "id": event_id,
        "object": "event",
        "api_version": "2026-10-28.endive",
        "created": int(time.time()),
        "livemode": False,
        "type": "customer.updated",
        "data": {"object": {"id": customer_id, "object": "customer"}},
        **extra,
    }


async def raw_connection() -> asyncpg.Connection:
    return await asyncpg.connect(os.environ["DATABASE_URL"])


async def terminate_backend_waiting_for(customer_id: str, seconds: float = 15) -> int:
    """Wait until some backend blocks on `customer_id`'s sync lock, then kill that backend."""
    admin = await raw_connection()
    try:
        deadline = time.monotonic() + seconds
        while True:
            pids = await admin.fetch(
                "SELECT pid FROM pg_stat_activity WHERE wait_event_type = 'Lock' "
                "AND query LIKE '%pg_advisory_xact_lock%' AND pid <> pg_backend_pid()"
            )
            if pids:
                await admin.execute("SELECT pg_terminate_backend($1)", pids[0]["pid"])
                return int(pids[0]["pid"])
            assert time.monotonic() < deadline, "no worker ever waited for the customer's lock"
            await asyncio.sleep(0.05)
    finally:
        await admin.close()


# --- a worker whose database connection dies mid-sync -----------------------------------------


@pytest.fixture
def worker_settings(billing_settings: Settings) -> Settings:
    """The app with its in-process worker on, polling quickly."""
    return dataclasses.replace(
        billing_settings,
        app=dataclasses.replace(billing_settings.app, event_worker=True),
        worker=WorkerSettings(poll_seconds=0.2, reconcile_minutes=0),
    )


@contextlib.asynccontextmanager
async def serve_with_catalogue(settings: Settings, port: int) -> AsyncIterator[tuple[Client, Any]]:
    """The app (`settings`) on `port` with the demo catalogue in Stripe and locally; yields a client and the app."""
    from app.billing.sync import sync_catalog
    from app.plans.catalog import load_catalog, push_catalog
    from app.stripe_gateway import StripeGateway

    gateway = StripeGateway(settings.stripe)
    app = create_app(settings)
    async with serve_in_loop(app, port) as url, Client(base_url=url, timeout=30) as client:
        await push_catalog(gateway, load_catalog())
        await sync_catalog(gateway)
        await settle(settings.stripe.api_base or "")
        yield client, app


async def _subscriber(client: Client, oidc_provider: Any, gateway: Any, subject: str) -> Customer:
    await signed_in_user(client, oidc_provider, subject)
    await buy(client, "pro_monthly")
    customer = await Customer.objects().first()
    assert customer is not None
    return customer


async def _kill_mid_sync_then_apply_next(client: Client, gateway: Any, customer: Customer) -> float:
    """Block the sync on the customer's lock, kill the blocked backend, then time the next change."""
    holder = await raw_connection()
    try:
        await holder.execute("SELECT pg_advisory_lock(hashtextextended($1, 0))", customer.stripe_customer_id)
        await gateway.client.v1.customers.update_async(customer.stripe_customer_id, params={"name": "First Change"})
        await terminate_backend_waiting_for(customer.stripe_customer_id)
        await holder.execute("SELECT pg_advisory_unlock_all()")
    finally:
        await holder.close()
    started = time.monotonic()
    await gateway.client.v1.customers.update_async(
        customer.stripe_customer_id, params={"email": "after-the-kill@example.com"}
    )

    async def applied() -> bool:
        row = await Customer.objects().get(Customer.id == customer.id)
        return row is not None and row.email == "after-the-kill@example.com" and row.name == "First Change"

    await eventually(applied, 10, "the next event being applied")
    return time.monotonic() - started


async def test_in_process_worker_survives_its_connection_being_killed_mid_sync(
    worker_settings: Settings, app_port: int, db: None, emulator_control: Any, oidc_provider: Any, gateway: Any
) -> None:
    async with serve_with_catalogue(worker_settings, app_port) as (client, _):
        customer = await _subscriber(client, oidc_provider, gateway, "kill-in-process")
        took = await _kill_mid_sync_then_apply_next(client, gateway, customer)
        assert took < 10
        health = (await client.get("/healthz")).json()
        assert health["worker"]["running"] is True and health["status"] == "ok", health


@pytest.fixture
def worker_env(billing_settings: Settings, tmp_path: Path) -> dict[str, str]:
    """The environment of a standalone `litestar billing worker` next to the app under test."""
    return {
        **os.environ,
        "SESSION_SECRET": "w" * 40,
        "DATA_DIR": str(tmp_path),
        "OIDC_ISSUER": billing_settings.oidc.issuer,
        "AUTH0_CLIENT_ID": billing_settings.oidc.client_id,
        "AUTH0_CLIENT_SECRET": billing_settings.oidc.client_secret,
        "STRIPE_SECRET_KEY": billing_settings.stripe.secret_key,
        "STRIPE_WEBHOOK_SECRET": WEBHOOK_SECRET,
        "STRIPE_API_BASE": billing_settings.stripe.api_base or "",
        "WORKER_POLL_SECONDS": "0.2",
        "EVENT_RECONCILE_MINUTES": "0",
    }


def litestar_cli(*args: str) -> list[str]:
    return [sys.executable, "-m", "litestar", "--app", "app.asgi:create_app", "billing", *args]


async def test_standalone_worker_survives_its_connection_being_killed_mid_sync(
    billing_app_url: str, billing_client: Client, oidc_provider: Any, gateway: Any, worker_env: dict[str, str]
) -> None:
    customer = await _subscriber(billing_client, oidc_provider, gateway, "kill-standalone")
    await settle(gateway.settings.api_base)
    await drain(gateway)
    process = subprocess.Popen(litestar_cli("worker"), cwd=ROOT, env=worker_env)  # noqa: ASYNC220
    try:
        check = await asyncio.to_thread(
            subprocess.run, litestar_cli("worker", "--check"), cwd=ROOT, env=worker_env, capture_output=True, text=True
        )
        took = await _kill_mid_sync_then_apply_next(billing_client, gateway, customer)
        assert took < 10
        assert process.poll() is None, "the worker process is still the same one"

        async def healthy() -> bool:
            result = await asyncio.to_thread(
                subprocess.run, litestar_cli("worker", "--check"), cwd=ROOT, env=worker_env, capture_output=True
            )
            return result.returncode == 0

        await eventually(healthy, 15, "`worker --check` answering healthy")
    finally:
        process.send_signal(signal.SIGTERM)
        await asyncio.to_thread(process.wait, 20)
    assert check.returncode in (0, 1)  # at start the first heartbeat may not be written yet
    after = await asyncio.to_thread(
        subprocess.run, litestar_cli("worker", "--check"), cwd=ROOT, env=worker_env, capture_output=True, text=True
    )
    assert after.returncode == 1 and "no worker on this host" in after.stdout, "a stopped worker is reported"


# --- slow Stripe: pages keep answering, the pool is never exhausted ----------------------------


async def test_pages_answer_while_the_worker_waits_on_a_slow_stripe(
    worker_settings: Settings, app_port: int, db: None, emulator_control: Any, oidc_provider: Any, gateway: Any
) -> None:
    small_pool = dataclasses.replace(
        worker_settings,
        database=dataclasses.replace(worker_settings.database, pool_size=2),
        worker=WorkerSettings(poll_seconds=0.2, concurrency=4, reconcile_minutes=0),
    )
    async with serve_with_catalogue(small_pool, app_port) as (client, _):
        customer = await _subscriber(client, oidc_provider, gateway, "slow-stripe")
        await settle(gateway.settings.api_base)
        emulator_control.post("/_emulator/settings", json={"api_latency_ms": 1500}).raise_for_status()
        for n in range(8):  # eight customers' events: four syncs at a time, each waiting ~1.5 s per call
            await post_event(client, customer_event(f"cus_slow_{n}", f"evt_slow_{n}"))
        await post_event(client, customer_event(customer.stripe_customer_id, "evt_slow_me"))

        async def worker_busy() -> bool:
            return (await client.get("/healthz")).json()["worker"]["in_flight"] >= 2

        await eventually(worker_busy, 10, "the worker waiting on Stripe")
        started = time.monotonic()
        pages = await asyncio.gather(*[client.get("/account") for _ in range(20)])
        elapsed = time.monotonic() - started
        assert all(p.status_code == 200 for p in pages)
        assert elapsed < 1.5, f"20 pages took {elapsed:.2f} s while syncs waited 1.5 s per Stripe call"
        assert (await client.get("/healthz")).json()["worker"]["in_flight"] >= 1, "syncs were still waiting"
        emulator_control.post("/_emulator/settings", json={"api_latency_ms": 0}).raise_for_status()


# --- health that tells the truth ----------------------------------------------------------------


async def test_healthz_turns_503_when_the_worker_stops_and_200_when_it_runs(
    worker_settings: Settings, app_port: int, db: None, emulator_control: Any
) -> None:
    async with serve_with_catalogue(worker_settings, app_port) as (client, app):
        running = await client.get("/healthz")
        assert running.status_code == 200 and running.json()["worker"]["running"] is True
        worker = app.state.worker
        await worker.stop()
        stopped = await client.get("/healthz")
        assert stopped.status_code == 503
        assert "event worker stopped" in stopped.json()["problems"]
        worker.start()
        await eventually(lambda: _status_is(client, 200), 5, "health back to 200")


async def _status_is(client: Client, code: int) -> bool:
    return (await client.get("/healthz")).status_code == code


async def test_healthz_turns_503_when_due_events_wait_too_long(billing_client: Client) -> None:
    await post_event(billing_client, customer_event("cus_waiting", "evt_waiting"))
    assert (await billing_client.get("/healthz")).status_code == 200
    await StripeEvent.update({StripeEvent.next_attempt_at: datetime.now(UTC) - timedelta(minutes=10)}, force=True)
    response = await billing_client.get("/healthz")
    assert response.status_code == 503
    body = response.json()
    assert body["events"]["due"] == 1 and body["events"]["oldest_due_seconds"] >= 600
    assert body["problems"] == [f"an event has been due for {body['events']['oldest_due_seconds']:.0f} s"]


# --- retries: backoff up to an hour, dead after the horizon, replayable ------------------------


def test_backoff_doubles_from_five_seconds_up_to_an_hour() -> None:
    assert [backoff(n).total_seconds() for n in (1, 2, 3, 4)] == [5, 10, 20, 40]
    assert backoff(11) == timedelta(hours=1) and backoff(500) == timedelta(hours=1)


async def test_stripe_outage_keeps_retrying_for_the_horizon_then_dead_then_replayable(
    billing_client: Client, emulator_control: Any, gateway: Any
) -> None:
    await post_event(billing_client, customer_event("cus_outage", "evt_outage"))
    emulator_control.post("/_emulator/settings", json={"api_outage": True}).raise_for_status()
    settings = WorkerSettings(retry_hours=72)
    fast = dataclasses.replace(gateway.settings, max_retries=0)
    from app.stripe_gateway import StripeGateway

    down = StripeGateway(fast)
    now = datetime.now(UTC)
    for attempt in range(1, 13):  # twelve failures: the backoff reaches its one-hour cap
        assert await process_next(down, now=now, settings=settings) == 1
        row = await StripeEvent.objects().first()
        assert row is not None and row.status == "failed" and row.attempts == attempt
        assert row.next_attempt_at - now == backoff(attempt)
        now = row.next_attempt_at
    assert row.next_attempt_at - now <= timedelta(hours=1)
    three_days_later = row.received_at + timedelta(hours=72, seconds=1)
    assert await process_next(down, now=three_days_later, settings=settings) == 1
    row = await StripeEvent.objects().first()
    assert row is not None and row.status == "dead" and "StripeUnavailable" in (row.last_error or "")
    assert (await billing_client.get("/healthz")).json()["events"]["dead"] == 1
    emulator_control.post("/_emulator/settings", json={"api_outage": False}).raise_for_status()
    assert await replay() == 1
    assert await drain(gateway) == 1
    row = await StripeEvent.objects().first()
    assert row is not None and row.status in ("processed", "ignored")


async def test_a_lapsed_lease_is_taken_back_by_another_worker(billing_client: Client, gateway: Any) -> None:
    from app.webhooks.service import claim_next

    await post_event(billing_client, customer_event("cus_orphan", "evt_orphan"))
    claim = await claim_next("worker-that-dies", lease_seconds=60)
    assert claim is not None and claim.key == "cus_orphan"
    assert await claim_next("second-worker", lease_seconds=60) is None, "a live lease is not taken"
    later = datetime.now(UTC) + timedelta(seconds=61)
    taken = await claim_next("second-worker", lease_seconds=60, now=later)
    assert taken is not None and taken.ids == claim.ids
    row = await StripeEvent.objects().first()
    assert row is not None and row.leased_by == "second-worker" and row.attempts == 2


# --- the worker runs the delivery_success=false reconciliation by itself ------------------------


async def test_worker_reconciles_undelivered_events_by_itself(
    worker_settings: Settings, app_port: int, db: None, emulator_control: Any, gateway: Any
) -> None:
    from app.auth.tables import User

    user = User(subject="lost-in-transit")
    await user.save()
    # No app listens yet: every delivery fails and Stripe marks the event undelivered.
    created = await gateway.client.v1.customers.create_async(params={"metadata": {"user_id": str(user.id)}})
    # A price event carries decimal strings (`unit_amount_decimal`), which the SDK reads as Decimal.
    await gateway.client.v1.prices.create_async(
        params={"currency": "usd", "unit_amount": 1234, "product_data": {"name": "Lost price"}}
    )
    deadline = time.monotonic() + 20
    while len([e async for e in gateway.events(delivery_success=False)]) < 3:
        assert time.monotonic() < deadline, "the emulator never gave up delivering"
        await asyncio.sleep(0.2)
    await settle(gateway.settings.api_base)  # no retry left in flight: only the reconciliation can bring them
    reconciling = dataclasses.replace(worker_settings, worker=WorkerSettings(poll_seconds=0.2, reconcile_minutes=5))
    async with serve_in_loop(create_app(reconciling), app_port):

        async def linked() -> bool:
            return await Customer.exists().where(Customer.stripe_customer_id == created.id)

        await eventually(linked, 10, "the undelivered event being stored and applied")
        assert await StripeEvent.exists().where(StripeEvent.type == "price.created")
    rows = await StripeEvent.raw("SELECT next_run_at - last_run_at AS gap FROM scheduled_task")
    assert rows and rows[0]["gap"] == timedelta(minutes=5), "one run, the next one in five minutes"


# --- deleted customers ---------------------------------------------------------------------------


async def test_customer_deleted_at_stripe_ends_with_no_live_plan(
    billing_client: Client, oidc_provider: Any, stripe_emulator: Any, gateway: Any
) -> None:
    customer = await _subscriber(billing_client, oidc_provider, gateway, "deleted-at-stripe")
    await settle(stripe_emulator.url)
    await drain(gateway)
    assert "Manage Subscription" in (await billing_client.get("/account")).text
    await gateway.client.v1.customers.delete_async(customer.stripe_customer_id)
    await settle(stripe_emulator.url)
    assert await drain(gateway) > 0
    statuses = await StripeEvent.select(StripeEvent.status, StripeEvent.type).where(
        StripeEvent.type.is_in(["customer.deleted", "customer.subscription.deleted"])
    )
    assert statuses and all(row["status"] == "processed" for row in statuses), statuses
    row = await Customer.objects().get(Customer.id == customer.id)
    assert row is not None and row.deleted
    subscription = await Subscription.objects().first()
    assert subscription is not None and subscription.status == "canceled"
    account = await billing_client.get("/account")
    assert "Manage Subscription" not in account.text


async def test_retrieving_a_deleted_customer_answers_the_documented_stub(gateway: Any, emulator_control: Any) -> None:
    created = await gateway.client.v1.customers.create_async(params={"email": "gone@example.com"})
    await gateway.client.v1.customers.delete_async(created.id)
    plain = (await gateway.client.v1.customers.retrieve_async(created.id)).to_dict()
    expanded = await gateway.retrieve_customer(created.id)
    assert plain == {"id": created.id, "object": "customer", "deleted": True}
    assert expanded == plain


# --- malformed but signed events -------------------------------------------------------------------


MALFORMED = {
    "over-long id": {"id": "evt_" + "x" * 300},
    "id without evt_": {"id": "cus_123"},
    "over-long type": {"type": "customer." + "updated" * 30},
    "over-long api_version": {"api_version": "2026-10-28." + "x" * 80},
    "created as text": {"created": "yesterday"},
    "created as a float": {"created": 1.5},
    "created past year 9999": {"created": 10**13},
    "livemode as text": {"livemode": "false"},
    "data as a list": {"data": [1, 2]},
    "data.object as text": {"data": {"object": "cus_123"}},
    "customer id with a space": {"data": {"object": {"id": "cus_ x", "object": "customer"}}},
    "NUL in a name": {"data": {"object": {"id": "cus_ok", "object": "customer", "name": "a\u0000b"}}},
    "over-long customer id": {"data": {"object": {"id": "cus_" + "y" * 300, "object": "customer"}}},
}


@pytest.mark.parametrize("name", list(MALFORMED))
async def test_malformed_but_signed_events_get_a_precise_400_and_nothing_is_stored(
    billing_client: Client, name: str
) -> None:
    event = customer_event("cus_ok", "evt_malformed") | MALFORMED[name]
    response = await post_event(billing_client, event)
    assert response.status_code == 400, response.text
    assert response.json()["error"].startswith("malformed event: ")
    assert await StripeEvent.count() == 0


async def test_the_raw_body_is_stored_as_received(billing_client: Client) -> None:
    event = customer_event("cus_raw", "evt_raw") | {"data": {"object": {"id": "cus_raw", "note": "Zoë ✓"}}}
    assert (await post_event(billing_client, event)).status_code == 200
    row = await StripeEvent.objects().first().output(load_json=True)
    assert row is not None and row.payload["data"]["object"]["note"] == "Zoë ✓"


# --- the sync's guards: each has a test that fails without it ------------------------------------


async def _subscribed_and_settled(client: Client, oidc_provider: Any, gateway: Any, subject: str) -> Customer:
    customer = await _subscriber(client, oidc_provider, gateway, subject)
    await settle(gateway.settings.api_base)
    await drain(gateway)
    return customer


async def test_an_older_read_never_overwrites_a_newer_one(
    billing_client: Client, oidc_provider: Any, gateway: Any
) -> None:
    customer = await _subscribed_and_settled(billing_client, oidc_provider, gateway, "older-read")
    older = await read_customer(gateway, customer.stripe_customer_id)
    await gateway.client.v1.customers.update_async(customer.stripe_customer_id, params={"email": "new@example.com"})
    newer = await read_customer(gateway, customer.stripe_customer_id)
    assert newer.read_at > older.read_at
    await apply_customer(newer)
    stale = await apply_customer(older)
    assert stale.stale
    row = await Customer.objects().get(Customer.id == customer.id)
    assert row is not None and row.email == "new@example.com"


async def test_a_canceled_subscription_is_never_revived_by_a_lagging_read(
    billing_client: Client, oidc_provider: Any, gateway: Any
) -> None:
    customer = await _subscribed_and_settled(billing_client, oidc_provider, gateway, "lagging-read")
    active = await read_customer(gateway, customer.stripe_customer_id)
    sub = await Subscription.objects().first()
    assert sub is not None
    await gateway.client.v1.subscriptions.cancel_async(sub.stripe_subscription_id)
    await apply_customer(await read_customer(gateway, customer.stripe_customer_id))
    # A later read whose subscription list still lags behind the cancellation.
    lagging = dataclasses.replace(active, read_at=datetime.now(UTC))
    await apply_customer(lagging)
    refreshed = await Subscription.objects().get(Subscription.id == sub.id)
    assert refreshed is not None and refreshed.status == "canceled"
    assert "Manage Subscription" not in (await billing_client.get("/account")).text


async def test_no_transaction_is_open_while_stripe_is_read(
    billing_client: Client, oidc_provider: Any, gateway: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Every Stripe call of a sync happens outside any database transaction."""
    from piccolo_conf import DB

    customer = await _subscribed_and_settled(billing_client, oidc_provider, gateway, "no-tx")
    seen: list[str] = []
    original = gateway._call

    async def watching(what: str, call: Any) -> Any:
        seen.append(f"{what}:{'in-transaction' if DB.current_transaction.get() else 'free'}")
        return await original(what, call)

    monkeypatch.setattr(gateway, "_call", watching)
    await post_event(billing_client, customer_event(customer.stripe_customer_id, "evt_no_tx"))
    assert await drain(gateway) == 1
    assert seen and all(entry.endswith(":free") for entry in seen), seen


async def test_lost_connection_in_a_transaction_leaves_the_task_clean(db: None) -> None:
    """The Piccolo pitfall: after a failed rollback the next transaction must get a fresh connection."""
    from app.db import transaction
    from piccolo_conf import DB

    await DB.start_connection_pool(min_size=1, max_size=2)
    try:
        with pytest.raises((asyncpg.PostgresError, asyncpg.InterfaceError, OSError)):
            async with transaction():
                pid = (await Customer.raw("SELECT pg_backend_pid() AS pid"))[0]["pid"]
                admin = await raw_connection()
                await admin.execute("SELECT pg_terminate_backend($1)", pid)
                await admin.close()
                await Customer.raw("SELECT 1")
        assert DB.current_transaction.get() is None
        async with transaction():
            assert (await Customer.raw("SELECT 1 AS one"))[0]["one"] == 1
    finally:
        await DB.close_connection_pool()


@pytest.mark.parametrize("body", [b"not json", b"[1, 2]", b'"evt_1"'])
async def test_signed_bodies_that_are_not_json_objects_get_a_precise_400(billing_client: Client, body: bytes) -> None:
    response = await billing_client.post(
        "/webhooks/stripe", content=body, headers={"Stripe-Signature": sign(body, WEBHOOK_SECRET)}
    )
    assert response.status_code == 400 and response.json()["error"].startswith("malformed event: the body is not")
    assert await StripeEvent.count() == 0


async def test_a_claim_that_never_reached_its_worker_is_put_back_at_the_next_heartbeat(billing_client: Client) -> None:
    from app.webhooks.service import claim_next
    from app.webhooks.worker import release_orphaned_leases

    await post_event(billing_client, customer_event("cus_lost_claim", "evt_lost_claim"))
    await post_event(billing_client, customer_event("cus_kept_claim", "evt_kept_claim"))
    lost = await claim_next("worker-a", lease_seconds=120)
    kept = await claim_next("worker-a", lease_seconds=120)
    assert lost is not None and kept is not None
    # The worker only knows about `kept` (the answer to the first claim was lost with its connection).
    assert await release_orphaned_leases("worker-a", kept.ids) == 1
    rows = {r.stripe_event_id: r for r in await StripeEvent.objects()}
    assert rows["evt_lost_claim"].status == "pending" and rows["evt_lost_claim"].attempts == 0
    assert rows["evt_kept_claim"].status == "processing" and rows["evt_kept_claim"].leased_by == "worker-a"


async def test_the_pool_resets_a_released_connection_only_by_rolling_back_an_open_transaction(db: None) -> None:
    """No reset round trip after an ordinary query; an abandoned transaction is rolled back."""
    from app.db import start_pool
    from piccolo_conf import DB

    await start_pool(1)
    admin = await raw_connection()
    try:
        assert DB.pool is not None
        async with DB.pool.acquire() as connection:
            pid = await connection.fetchval("SELECT pg_backend_pid()")
            await connection.fetchval("SELECT 42")

        async def last_statement() -> tuple[str, str]:
            row = await admin.fetchrow("SELECT query, state FROM pg_stat_activity WHERE pid = $1", pid)
            assert row is not None
            return str(row["query"]), str(row["state"])

        assert await last_statement() == ("SELECT 42", "idle"), "nothing ran after the query"
        async with DB.pool.acquire() as connection:
            await connection.execute("BEGIN")
            await connection.fetchval("SELECT 43")
        assert await last_statement() == ("ROLLBACK", "idle"), "the open transaction was rolled back"
    finally:
        await admin.close()
        await DB.close_connection_pool()
