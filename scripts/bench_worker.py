"""Worker benchmark: one event worker process against a renewal burst, at Stripe-like latency.

    uv run python scripts/bench_worker.py [--customers 1000] [--latency-ms 50] [--budget 80] [--concurrency 16]

Recreates the database `--database` (default `billing_bench_worker`) on the PostgreSQL server of
`DATABASE_URL` (default `postgresql://postgres@127.0.0.1:5432/postgres`) and starts the Stripe
emulator as its own process. It pushes the demo catalogue, seeds `--customers` people, each with a
Stripe customer (a Visa card) and a subscription, and syncs them into the local copy. Then, at
Stripe: 90 % renew (the emulator's clock moves 32 days: a new period, an invoice, a PaymentIntent
and a charge each), 10 % move from Starter yearly to Pro yearly (new features). From the events
Stripe emitted it takes two per customer, as a renewal burst brings them:
`customer.subscription.updated` and one of `invoice.paid`, `invoice.payment_succeeded`,
`payment_intent.succeeded` (renewals) or `entitlements.active_entitlement_summary.updated` (plan
changes). It posts the events, signed and shuffled, to the app's `POST /webhooks/stripe` (the app
runs in this process with `EVENT_WORKER=off`); then, with `--latency-ms` added to every Stripe
answer, it starts ONE `litestar billing worker` process (`STRIPE_RATE_LIMIT=--budget`,
`WORKER_CONCURRENCY=--concurrency`) and times it from its first heartbeat until every event is
applied (`--post-while-running`: the events arrive while the worker runs).

It prints events applied per second, distinct-customer syncs per second, Stripe requests per event
and per sync, the peak Stripe request rate (counted per wall-clock second by the emulator, not by
the worker), the budget, and the number lost: events not applied, and customers whose local copy
(subscription, payments, entitlements) differs from the emulator's at the end.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import os
import random
import subprocess
import sys
import tempfile
import time
from collections import defaultdict
from collections.abc import Awaitable, Callable, Iterator
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from scripts.benchdb import recreate_database, with_database  # noqa: E402

SECRET = "whsec_worker_benchmark"
DAY = 86400
RENEWAL_PAIRS = ("invoice.paid", "invoice.payment_succeeded", "payment_intent.succeeded")
SUMMARY = "entitlements.active_entitlement_summary.updated"


async def bounded(limit: int, jobs: list[Callable[[], Awaitable[Any]]]) -> list[Any]:
    """Run `jobs` with at most `limit` at a time; results in order."""
    gate = asyncio.Semaphore(limit)

    async def one(job: Callable[[], Awaitable[Any]]) -> Any:
        async with gate:
            return await job()

    return await asyncio.gather(*(one(job) for job in jobs))


@contextlib.contextmanager
def process(args: list[str], env: dict[str, str], log: Path) -> Iterator[subprocess.Popen[bytes]]:
    """A child process with its output in `log`, stopped (SIGTERM, then SIGKILL) at the end."""
    with log.open("wb") as out:
        child = subprocess.Popen(args, env=env, stdout=out, stderr=subprocess.STDOUT, cwd=ROOT)  # noqa: S603 (our own commands)
        try:
            yield child
        finally:
            child.terminate()
            try:
                child.wait(timeout=15)
            except subprocess.TimeoutExpired:
                child.kill()
                child.wait()


async def wait_until(check: Callable[[], Awaitable[bool]], seconds: float, what: str) -> None:
    deadline = time.monotonic() + seconds
    while not await check():
        if time.monotonic() > deadline:
            raise SystemExit(f"{what} did not happen within {seconds:.0f} s")
        await asyncio.sleep(0.2)


async def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--customers", type=int, default=1000)
    parser.add_argument("--latency-ms", type=float, default=50.0, help="added to every Stripe API answer")
    parser.add_argument("--budget", type=float, default=80.0, help="STRIPE_RATE_LIMIT of the worker (requests/s)")
    parser.add_argument("--concurrency", type=int, default=16, help="WORKER_CONCURRENCY of the worker")
    parser.add_argument("--database", default="billing_bench_worker")
    parser.add_argument("--emulator-port", type=int, default=0, help="default: a free port")
    parser.add_argument("--app-port", type=int, default=0, help="default: a free port")
    parser.add_argument("--seed", type=int, default=13)
    parser.add_argument(
        "--post-while-running",
        action="store_true",
        help="post the events while the worker runs (default: queue the whole burst, then start the worker)",
    )
    args = parser.parse_args()

    server_url = os.environ.get("DATABASE_URL") or "postgresql://postgres@127.0.0.1:5432/postgres"
    await recreate_database(server_url, args.database)
    database_url = with_database(server_url, args.database)
    os.environ["DATABASE_URL"] = database_url  # before piccolo_conf is imported

    from app.devstack import apply_migrations
    from tests.support.servers import free_port

    await apply_migrations()
    emulator_port = args.emulator_port or free_port()
    app_port = args.app_port or free_port()
    emulator_url = f"http://127.0.0.1:{emulator_port}"
    logs = Path(tempfile.mkdtemp(prefix="bench-worker-"))
    env = {
        **os.environ,
        "DATABASE_URL": database_url,
        "APP_BASE_URL": f"http://127.0.0.1:{app_port}",
        "SESSION_SECRET": "w" * 40,
        "DATA_DIR": str(logs),
        "OIDC_ISSUER": "http://127.0.0.1:9",
        "AUTH0_CLIENT_ID": "bench",
        "AUTH0_CLIENT_SECRET": "bench",
        "STRIPE_SECRET_KEY": "sk_test_bench_worker",
        "STRIPE_WEBHOOK_SECRET": SECRET,
        "STRIPE_API_BASE": emulator_url,
        "STRIPE_RATE_LIMIT": str(args.budget),
        "WORKER_CONCURRENCY": str(args.concurrency),
        "WORKER_POLL_SECONDS": "0.2",
        "EVENT_WORKER": "off",
        "EVENT_RECONCILE_MINUTES": "0",
        "LOG_LEVEL": "WARNING",
    }
    emulator_args = [sys.executable, "-m", "e2e.stripe_emulator", "--port", str(emulator_port)]
    with process(emulator_args, env, logs / "emulator.log"):
        await run(args, env, emulator_url, app_port, logs)


async def run(args: argparse.Namespace, env: dict[str, str], emulator_url: str, app_port: int, logs: Path) -> None:
    import httpx

    from app.asgi import create_app
    from app.settings import Settings
    from tests.support.servers import serve_in_loop

    settings = Settings.from_env(env)
    control = httpx.AsyncClient(base_url=emulator_url, timeout=120)
    await wait_until(lambda: _healthy(control), 30, "the emulator answering")
    async with serve_in_loop(create_app(settings), app_port):
        burst = await seed(args, settings, control)
        uptime = os.getloadavg()
        (await control.post("/_emulator/settings", json={"api_latency_ms": args.latency_ms})).raise_for_status()
        (await control.post("/_emulator/requests/clear")).raise_for_status()
        worker_args = [sys.executable, "-m", "litestar", "billing", "worker"]
        if not args.post_while_running:
            await post_events(burst, app_port, args.seed)  # the burst is queued before the worker starts
        with process(worker_args, env, logs / "worker.log"):
            started = await wait_for(_worker_alive, 60, "the worker's first heartbeat")
            if args.post_while_running:
                await post_events(burst, app_port, args.seed)
            elapsed = await wait_for(all_applied, 900, "every event being applied") - started
        counted = (await control.get("/_emulator/requests")).json()
        (await control.post("/_emulator/settings", json={"api_latency_ms": 0})).raise_for_status()
        await report(args, burst, elapsed, counted, settings, uptime)
    await control.aclose()
    print(f"logs: {logs}")


async def _healthy(control: Any) -> bool:
    try:
        return (await control.get("/_emulator/health")).status_code == 200
    except Exception:  # not listening yet
        return False


async def seed(args: argparse.Namespace, settings: Any, control: Any) -> list[dict[str, Any]]:
    """Customers and subscriptions at Stripe and in the local copy; then the renewals and plan
    changes at Stripe; returns the events to deliver (two per customer)."""
    from app.auth.tables import User
    from app.billing.sync import sync_catalog, sync_customer
    from app.plans.catalog import load_catalog, push_catalog
    from app.stripe_gateway import StripeGateway

    gateway = StripeGateway(settings.stripe)
    started = time.monotonic()
    await push_catalog(gateway, load_catalog())
    await sync_catalog(gateway)
    prices = {p["lookup_key"]: p["id"] async for p in gateway.prices(active=True) if p.get("lookup_key")}
    changing = {n for n in range(args.customers) if n % 10 == 9}

    async def one(n: int) -> tuple[str, str]:
        user = User(subject=f"bench-{n}", email=f"bench{n}@example.com", email_verified=True)
        await user.save()
        customer = await gateway.client.v1.customers.create_async(
            params={
                "email": user.email,
                "metadata": {"user_id": str(user.id)},
                "payment_method": "pm_card_visa",
                "invoice_settings": {"default_payment_method": "pm_card_visa"},
            }
        )
        price = prices["starter_yearly" if n in changing else "starter_monthly"]
        sub = await gateway.client.v1.subscriptions.create_async(
            params={"customer": customer.id, "items": [{"price": price}]}
        )
        await sync_customer(gateway, customer.id)
        return customer.id, sub.id

    seeded = await bounded(8, [lambda n=n: one(n) for n in range(args.customers)])
    print(
        f"seeded {len(seeded)} customers with subscriptions at Stripe and locally in {time.monotonic() - started:.0f} s"
    )
    await asyncio.sleep(1.1)  # the changes begin after every seeding read (the high-water marks)
    since = int((await control.get("/_emulator/clock")).json()["now"])
    for n in sorted(changing):
        sub_id = seeded[n][1]
        remote = await gateway.client.v1.subscriptions.retrieve_async(sub_id)
        await gateway.client.v1.subscriptions.update_async(
            sub_id,
            params={
                "items": [{"id": remote["items"]["data"][0]["id"], "price": prices["pro_yearly"]}],
                "proration_behavior": "none",
            },
        )
    (await control.post("/_emulator/clock/advance", json={"seconds": 32 * DAY})).raise_for_status()
    by_customer: dict[str, dict[str, list[dict[str, Any]]]] = defaultdict(lambda: defaultdict(list))
    async for event in all_events(gateway, since):
        obj = event["data"]["object"]
        customer_id = obj.get("customer") if obj.get("object") != "customer" else obj.get("id")
        if isinstance(customer_id, str):
            by_customer[customer_id][event["type"]].append(event)
    burst = []
    for n, (customer_id, _) in enumerate(seeded):
        kinds = by_customer[customer_id]
        second = SUMMARY if n in changing else RENEWAL_PAIRS[n % len(RENEWAL_PAIRS)]
        for kind in ("customer.subscription.updated", second):
            if not kinds[kind]:
                raise SystemExit(f"{customer_id}: Stripe emitted no {kind}; emitted {sorted(kinds)}")
            burst.append(kinds[kind][0])  # newest first: the last one of its type
    renewals = args.customers - len(changing)
    print(f"at Stripe: {renewals} renewals, {len(changing)} plan changes; {len(burst)} events to deliver")
    return burst


async def all_events(gateway: Any, since: int) -> Any:
    """Every event created at or after `since` (Unix seconds), newest first, all pages."""
    params: dict[str, Any] = {"created": {"gte": since}, "limit": 100}
    while True:
        page = (await gateway.client.v1.events.list_async(params=params)).to_dict(recursive=True)
        for event in page["data"]:
            yield event
        if not page["has_more"] or not page["data"]:
            return
        params["starting_after"] = page["data"][-1]["id"]


async def post_events(burst: list[dict[str, Any]], app_port: int, seed: int) -> None:
    """Post the events, signed and shuffled, 16 at a time, to the app's webhook endpoint."""
    import httpx

    from tests.support.stripe import event_body, sign

    random.Random(seed).shuffle(burst)  # noqa: S311 (an order of delivery, not a secret)
    async with httpx.AsyncClient(base_url=f"http://127.0.0.1:{app_port}", timeout=30) as http:

        async def post(event: dict[str, Any]) -> None:
            body = event_body(event)
            response = await http.post(
                "/webhooks/stripe",
                content=body,
                headers={"Stripe-Signature": sign(body, SECRET), "Content-Type": "application/json"},
            )
            response.raise_for_status()

        started = time.monotonic()
        await bounded(16, [lambda e=e: post(e) for e in burst])
        posted = time.monotonic() - started
        print(f"posted {len(burst)} events in {posted:.1f} s ({len(burst) / posted:.0f}/s)")


async def all_applied() -> bool:
    from app.billing.tables import StripeEvent

    return await StripeEvent.count().where(StripeEvent.status.is_in(["pending", "processing", "failed"])) == 0


async def wait_for(check: Callable[[], Awaitable[bool]], seconds: float, what: str) -> float:
    """Poll `check` every 50 ms; returns the monotonic time it first held."""
    deadline = time.monotonic() + seconds
    while not await check():
        if time.monotonic() > deadline:
            raise SystemExit(f"{what} did not happen within {seconds:.0f} s")
        await asyncio.sleep(0.05)
    return time.monotonic()


async def _worker_alive() -> bool:
    from app.billing.tables import EventWorkerHeartbeat

    return bool(await EventWorkerHeartbeat.count())


async def report(
    args: argparse.Namespace,
    burst: list[dict[str, Any]],
    elapsed: float,
    counted: dict[str, Any],
    settings: Any,
    load: tuple[float, float, float],
) -> None:
    from app.billing.tables import StripeEvent

    statuses = await StripeEvent.raw("SELECT status, count(*) AS n FROM stripe_event GROUP BY status")
    by_status = {row["status"]: int(row["n"]) for row in statuses}
    syncs = await StripeEvent.raw(
        "SELECT count(DISTINCT (stripe_customer_id, processed_at)) AS n, count(DISTINCT stripe_customer_id) AS c "
        "FROM stripe_event WHERE status = 'processed'"
    )
    sync_count, customers = int(syncs[0]["n"]), int(syncs[0]["c"])
    requests = int(counted["total"])
    mismatched = await compare(settings)
    applied = by_status.get("processed", 0)
    lost_events = len(burst) - applied
    print(f"load average before the run: {load[0]:.2f} {load[1]:.2f} {load[2]:.2f} (2 cores)")
    print(
        f"worker: 1 process, WORKER_CONCURRENCY={args.concurrency}, "
        f"Stripe latency {args.latency_ms:.0f} ms, budget STRIPE_RATE_LIMIT={args.budget:.0f} requests/s"
    )
    print(f"events applied:          {applied} of {len(burst)} in {elapsed:.1f} s = {applied / elapsed:.1f} events/s")
    print(
        f"syncs:                   {sync_count} ({customers} distinct customers) = "
        f"{customers / elapsed:.1f} distinct-customer syncs/s"
    )
    print(
        f"Stripe requests:         {requests} = {requests / len(burst):.2f} per event, "
        f"{requests / max(sync_count, 1):.2f} per sync"
    )
    print(
        f"peak Stripe request rate (per second, at the emulator): {counted['peak_per_second']} "
        f"(budget {args.budget:.0f}; {'within' if counted['peak_per_second'] <= args.budget else 'ABOVE'})"
    )
    print(f"lost: {lost_events} events not applied, {len(mismatched)} customers differ from Stripe")
    for line in mismatched[:10]:
        print(f"  {line}")


async def compare(settings: Any) -> list[str]:
    """Customers whose local copy differs from the emulator (subscription, payments, entitlements)."""
    import json

    from app.billing.tables import Customer, PaymentTransaction, Subscription
    from app.entitlements.tables import CustomerState
    from app.stripe_gateway import StripeGateway

    gateway = StripeGateway(settings.stripe)
    customers = await Customer.select(Customer.id, Customer.user.as_alias("owner"), Customer.stripe_customer_id)

    async def check(row: dict[str, Any]) -> str | None:
        cid = row["stripe_customer_id"]
        subs = [s async for s in gateway.subscriptions_of(cid)]
        intents = [p async for p in gateway.payment_intents_of(cid)]
        features = sorted([e["lookup_key"] async for e in gateway.active_entitlements(cid)])
        local_subs = await Subscription.objects().where(Subscription.customer == row["id"])
        local_payments = await PaymentTransaction.objects().where(PaymentTransaction.stripe_customer_id == cid)
        state = await CustomerState.select(CustomerState.stripe_entitlements).where(CustomerState.user == row["owner"])
        stored = state[0]["stripe_entitlements"] if state else []
        stored = json.loads(stored) if isinstance(stored, str) else stored
        want_subs = sorted(
            (s["id"], s["status"], s["items"]["data"][0]["price"]["id"], s["items"]["data"][0]["current_period_end"])
            for s in subs
        )
        have_subs = sorted(
            (s.stripe_subscription_id, s.status, s.stripe_price_id, int(s.current_period_end.timestamp()))
            for s in local_subs
        )
        want_payments = sorted((p["id"], p["status"] == "succeeded") for p in intents)
        have_payments = sorted((p.stripe_payment_intent_id, p.status == "succeeded") for p in local_payments)
        have_features = sorted(e["lookup_key"] for e in stored or [])
        problems = []
        if want_subs != have_subs:
            problems.append(f"subscriptions {have_subs} != {want_subs}")
        if want_payments != have_payments:
            problems.append(f"payments {have_payments} != {want_payments}")
        if features != have_features:
            problems.append(f"entitlements {have_features} != {features}")
        return f"{cid}: {'; '.join(problems)}" if problems else None

    found = await bounded(16, [lambda r=r: check(r) for r in customers])
    return [line for line in found if line]


if __name__ == "__main__":
    asyncio.run(main())
