"""Chaos benchmark of the event pipeline: does the local copy converge to Stripe's, whatever happens?

    uv run python scripts/bench_chaos.py [--changes 200] [--customers 10] [--outage 30]

Recreates the database `billing_chaos` on the PostgreSQL server of `DATABASE_URL` (default
`postgresql://postgres@127.0.0.1:5432/postgres`), starts the Stripe emulator and the app (with its
in-process event worker) on free ports, pushes the demo catalogue and subscribes `--customers`
customers. Then, with the emulator shuffling and duplicating webhook deliveries, it makes
`--changes` subscription changes (price, quantity, cancel at period end and back), and in the middle
kills every database connection of the app three times (`pg_terminate_backend`) and takes Stripe
down for `--outage` seconds (every API call answers 503). One customer is deleted at Stripe at the
end. It prints the mismatches between the local copy and Stripe 60 s after the last fault (goal: 0)
and how long the copy took to converge.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import sys
import tempfile
import time
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit, urlunsplit

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

BENCH_DB = "billing_chaos"
SECRET = "whsec_chaos_benchmark"


def with_database(url: str, name: str) -> str:
    return urlunsplit(urlsplit(url)._replace(path=f"/{name}"))


async def recreate_database(server_url: str) -> None:
    import asyncpg

    connection = await asyncpg.connect(with_database(server_url, "postgres"))
    try:
        await connection.execute(f'DROP DATABASE IF EXISTS "{BENCH_DB}" WITH (FORCE)')
        await connection.execute(f'CREATE DATABASE "{BENCH_DB}"')
    finally:
        await connection.close()


async def kill_app_connections(database_url: str) -> int:
    """Terminate every backend of the benchmark database (the app's pool); returns how many."""
    import asyncpg

    admin = await asyncpg.connect(database_url)
    try:
        rows = await admin.fetch(
            "SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE datname = $1 AND pid <> pg_backend_pid()",
            BENCH_DB,
        )
        return len(rows)
    finally:
        await admin.close()


async def mismatches(gateway: Any, subscription_ids: list[str], deleted_customer: str | None) -> list[str]:
    """Where the local copy differs from Stripe (one line per difference).

    The customer deleted at Stripe must have no live plan here: its row deleted with its subscription
    canceled, or no row at all when it was deleted before it was ever synced.
    """
    from app.billing.tables import Customer, Subscription

    found = []
    for sub_id in subscription_ids:
        remote = (await gateway.client.v1.subscriptions.retrieve_async(sub_id)).to_dict(recursive=True)
        item = remote["items"]["data"][0]
        want = (remote["status"], item["price"]["id"], item["quantity"], remote["cancel_at_period_end"])
        local = await Subscription.objects().get(Subscription.stripe_subscription_id == sub_id)
        have = None
        if local is not None:
            have = (local.status, local.stripe_price_id, local.quantity, local.cancel_at_period_end)
        never_synced = have is None and remote["customer"] == deleted_customer
        if have != want and not never_synced:
            found.append(f"{sub_id}: local {have} != Stripe {want}")
    if deleted_customer:
        row = await Customer.objects().get(Customer.stripe_customer_id == deleted_customer)
        if row is not None and not row.deleted:
            found.append(f"{deleted_customer}: deleted at Stripe, not locally")
    return found


async def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--changes", type=int, default=200)
    parser.add_argument("--customers", type=int, default=10)
    parser.add_argument("--outage", type=float, default=30.0)
    parser.add_argument("--database", default="billing_chaos", help="the database to recreate")
    args = parser.parse_args()
    global BENCH_DB
    BENCH_DB = args.database

    server_url = os.environ.get("DATABASE_URL") or "postgresql://postgres@127.0.0.1:5432/postgres"
    await recreate_database(server_url)
    database_url = with_database(server_url, BENCH_DB)
    os.environ["DATABASE_URL"] = database_url  # before piccolo_conf is imported

    from app.asgi import create_app
    from app.devstack import apply_migrations
    from app.settings import Settings
    from e2e.stripe_emulator import EmulatorConfig, WebhookTarget, run_in_thread
    from tests.support.servers import free_port, serve_in_loop

    await apply_migrations()
    app_port = free_port()
    emulator = run_in_thread(
        EmulatorConfig(
            port=0,
            webhooks=[WebhookTarget(f"http://127.0.0.1:{app_port}/webhooks/stripe", SECRET)],
            retry_schedule=[1, 2, 4, 8, 16, 32],
        )
    )
    settings = Settings.from_env(
        {
            "APP_BASE_URL": f"http://127.0.0.1:{app_port}",
            "SESSION_SECRET": "c" * 40,
            "DATA_DIR": tempfile.mkdtemp(prefix="billing-chaos-"),
            "OIDC_ISSUER": "http://127.0.0.1:9",
            "AUTH0_CLIENT_ID": "chaos",
            "AUTH0_CLIENT_SECRET": "chaos",
            "STRIPE_SECRET_KEY": "sk_test_chaos",
            "STRIPE_WEBHOOK_SECRET": SECRET,
            "STRIPE_API_BASE": emulator.url,
            "EVENT_WORKER": "in-process",
            "WORKER_POLL_SECONDS": "0.5",
            "LOG_LEVEL": "WARNING",
        }
    )
    async with serve_in_loop(create_app(settings), app_port):
        await run(args, emulator, settings, database_url)
    emulator.stop()


async def run(args: argparse.Namespace, emulator: Any, settings: Any, database_url: str) -> None:
    """The changes and faults against the running app, then the verdict."""
    import httpx

    from app.auth.tables import User
    from app.billing.sync import sync_catalog
    from app.billing.tables import StripeEvent
    from app.plans.catalog import load_catalog, push_catalog
    from app.stripe_gateway import StripeGateway

    gateway = StripeGateway(settings.stripe)
    control = httpx.AsyncClient(base_url=emulator.url)

    try:
        await push_catalog(gateway, load_catalog())
        await sync_catalog(gateway)
        prices = {p["lookup_key"]: p["id"] async for p in gateway.prices(active=True) if p.get("lookup_key")}
        subscription_ids: list[str] = []
        customer_ids: list[str] = []
        for n in range(args.customers):
            user = User(subject=f"chaos-{n}", email=f"chaos{n}@example.com", email_verified=True)
            await user.save()
            customer = await gateway.client.v1.customers.create_async(
                params={
                    "email": user.email,
                    "metadata": {"user_id": str(user.id)},
                    "payment_method": "pm_card_visa",
                    "invoice_settings": {"default_payment_method": "pm_card_visa"},
                }
            )
            sub = await gateway.client.v1.subscriptions.create_async(
                params={"customer": customer.id, "items": [{"price": prices["starter_monthly"]}]}
            )
            customer_ids.append(customer.id)
            subscription_ids.append(sub.id)
        (await control.post("/_emulator/chaos", json={"shuffle": True, "duplicate": True})).raise_for_status()
        cycle: list[dict[str, Any]] = [
            {"items": [{"price": prices["pro_monthly"]}], "proration_behavior": "none"},
            {"items": [{"quantity": 3}]},
            {"cancel_at_period_end": True},
            {"cancel_at_period_end": False},
            {"items": [{"price": prices["business_yearly"]}], "proration_behavior": "none"},
            {"items": [{"price": prices["starter_monthly"]}, {"quantity": 1}], "proration_behavior": "none"},
        ]
        kills_at = {args.changes // 4, args.changes // 2, 3 * args.changes // 4}
        outage_at = args.changes // 2
        killed = 0
        started = time.monotonic()
        for step in range(args.changes):
            if step in kills_at:
                killed += await kill_app_connections(database_url)
            if step == outage_at:
                (await control.post("/_emulator/settings", json={"api_outage": True})).raise_for_status()
                print(f"step {step}: Stripe down for {args.outage:.0f} s (the worker's syncs fail meanwhile)")
                await asyncio.sleep(args.outage)
                (await control.post("/_emulator/settings", json={"api_outage": False})).raise_for_status()
            sub_id = subscription_ids[step % len(subscription_ids)]
            params = dict(cycle[(step // len(subscription_ids)) % len(cycle)])
            if "items" in params:
                remote = await gateway.client.v1.subscriptions.retrieve_async(sub_id)
                item = {"id": remote["items"]["data"][0]["id"]}
                for part in params["items"]:
                    item.update(part)
                params["items"] = [item]
            await gateway.client.v1.subscriptions.update_async(sub_id, params=params)
        deleted_customer = customer_ids[-1]
        await gateway.client.v1.customers.delete_async(deleted_customer)
        last_fault = time.monotonic()
        print(
            f"{args.changes} changes across {args.customers} customers in {last_fault - started:.1f} s, "
            f"{killed} database connections killed in 3 rounds, customer {deleted_customer} deleted at Stripe"
        )

        converged_after = None
        while time.monotonic() - last_fault < 60:
            if not await mismatches(gateway, subscription_ids, deleted_customer):
                converged_after = converged_after or time.monotonic() - last_fault
            else:
                converged_after = None
            await asyncio.sleep(1)
        final = await mismatches(gateway, subscription_ids, deleted_customer)
        counts = {
            status: await StripeEvent.count().where(StripeEvent.status == status)
            for status in ("processed", "ignored", "pending", "processing", "failed", "dead")
        }
        print(f"events stored: {sum(counts.values())} ({', '.join(f'{k} {v}' for k, v in counts.items() if v)})")
        print(f"mismatches 60 s after the last fault: {len(final)} (goal: 0)")
        for line in final:
            print(f"  {line}")
        verdict = f"{converged_after:.1f} s" if converged_after is not None else "not within 60 s"
        print(f"converged after the last fault in: {verdict}")
    finally:
        await control.aclose()


if __name__ == "__main__":
    asyncio.run(main())
