"""How the production entry scales from 1 to 2 web processes on this machine.

    uv run python scripts/bench_scale.py [--seconds 10] [--clients 16] [--events 2000]

Drops and recreates the database `billing_bench_scale` on the PostgreSQL server of `DATABASE_URL`
(default `postgresql://postgres@127.0.0.1:5432/postgres`), applies the migrations with
`scripts/serve --migrate-only`, seeds one signed-in person (a user with a Stripe customer, and a
server-side session in Redis, `REDIS_URL`, default db 7), then for `WEB_CONCURRENCY` 1 and 2
starts `scripts/serve --no-migrate` (uvicorn, `EVENT_WORKER=off`, sessions in Redis) and measures,
with `--clients` concurrent keep-alive connections from this process:

- `GET /account` as that person for `--seconds`: requests per second and p50/p99 latency;
- webhook ingest: `--events` distinct signed `customer.updated` events `POST`ed to
  `/webhooks/stripe` (verified, stored, acknowledged; nothing is applied): events per second.

It prints both runs side by side with the 2/1 ratio. The load generator runs on the same
machine, so on a 2-core box it takes CPU from the servers: the ratio is a floor, not a ceiling.
"""

from __future__ import annotations

import argparse
import asyncio
import hashlib
import hmac
import json
import os
import secrets
import statistics
import subprocess
import sys
import time
from pathlib import Path
from urllib.parse import urlsplit, urlunsplit

import asyncpg
import httpx
import redis

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

BENCH_DB = "billing_bench_scale"
WEBHOOK_SECRET = "whsec_bench_scale"
SESSION_NAMESPACE = "billing-sessions"


def with_database(url: str, name: str) -> str:
    return urlunsplit(urlsplit(url)._replace(path=f"/{name}"))


def free_port() -> int:
    import socket

    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


async def prepare_database(server_url: str) -> str:
    admin = await asyncpg.connect(with_database(server_url, "postgres"))
    try:
        await admin.execute(f'DROP DATABASE IF EXISTS "{BENCH_DB}" WITH (FORCE)')
        await admin.execute(f'CREATE DATABASE "{BENCH_DB}"')
    finally:
        await admin.close()
    return with_database(server_url, BENCH_DB)


async def seed_person(database_url: str) -> int:
    """A user with a Stripe customer (no plan yet), as the account page shows them."""
    os.environ["DATABASE_URL"] = database_url  # piccolo_conf reads it at import
    from app.auth.tables import User
    from app.billing.tables import Customer

    user = User(subject="bench", email="bench@example.com", email_verified=True, name="Bench Person")
    await user.save()
    await Customer(user=user.id, stripe_customer_id="cus_bench", email="bench@example.com").save()
    return int(user.id)


def seed_session(redis_url: str, user_id: int) -> str:
    """A signed-in server-side session in Redis, stored the way the app stores them."""
    session_id = secrets.token_hex(32)
    data = json.dumps({"user_id": user_id, "user_name": "Bench Person"}).encode()
    redis.Redis.from_url(redis_url).set(f"{SESSION_NAMESPACE}:{session_id}", data, ex=3600)
    return session_id


def signed(event: dict[str, object]) -> tuple[bytes, str]:
    body = json.dumps(event).encode()
    timestamp = int(time.time())
    digest = hmac.new(WEBHOOK_SECRET.encode(), f"{timestamp}.".encode() + body, hashlib.sha256).hexdigest()
    return body, f"t={timestamp},v1={digest}"


async def run_load(base_url: str, clients: int, seconds: float, session_id: str) -> tuple[float, float, float]:
    """`GET /account` from `clients` connections for `seconds`: (requests/s, p50 ms, p99 ms)."""
    latencies: list[float] = []
    deadline = time.perf_counter() + seconds
    limits = httpx.Limits(max_connections=clients, max_keepalive_connections=clients)
    async with httpx.AsyncClient(base_url=base_url, limits=limits, timeout=30) as http:
        http.cookies.set("billing_session", session_id)

        async def one_client() -> None:
            while time.perf_counter() < deadline:
                started = time.perf_counter()
                response = await http.get("/account")
                latencies.append(time.perf_counter() - started)
                if response.status_code != 200 or "Bench Person" not in response.text:
                    raise RuntimeError(f"/account answered {response.status_code}")

        started = time.perf_counter()
        await asyncio.gather(*(one_client() for _ in range(clients)))
        elapsed = time.perf_counter() - started
    ordered = sorted(latencies)
    p99 = ordered[min(len(ordered) - 1, int(len(ordered) * 0.99))]
    return len(latencies) / elapsed, statistics.median(ordered) * 1000, p99 * 1000


async def run_ingest(base_url: str, clients: int, events: int, tag: str) -> float:
    """POST `events` distinct signed events with `clients` connections: events/s."""
    bodies = [
        signed(
            {
                "id": f"evt_bench_{tag}_{i}",
                "object": "event",
                "type": "customer.updated",
                "created": int(time.time()),
                "livemode": False,
                "data": {"object": {"id": f"cus_bench_{i % 50}", "object": "customer"}},
            }
        )
        for i in range(events)
    ]
    queue: asyncio.Queue[tuple[bytes, str]] = asyncio.Queue()
    for item in bodies:
        queue.put_nowait(item)
    limits = httpx.Limits(max_connections=clients, max_keepalive_connections=clients)
    async with httpx.AsyncClient(base_url=base_url, limits=limits, timeout=30) as http:

        async def one_client() -> None:
            while not queue.empty():
                body, signature = queue.get_nowait()
                headers = {"stripe-signature": signature, "content-type": "application/json"}
                response = await http.post("/webhooks/stripe", content=body, headers=headers)
                if response.status_code != 200:
                    raise RuntimeError(f"webhook answered {response.status_code}: {response.text}")

        started = time.perf_counter()
        await asyncio.gather(*(one_client() for _ in range(clients)))
        return events / (time.perf_counter() - started)


def start_server(env: dict[str, str], processes: int, port: int, log: Path) -> subprocess.Popen[bytes]:
    env = {**env, "WEB_CONCURRENCY": str(processes), "PORT": str(port)}
    with open(log, "wb") as out:
        command = [str(ROOT / "scripts" / "serve"), "--no-migrate"]
        return subprocess.Popen(command, cwd=ROOT, env=env, stdout=out, stderr=out)  # noqa: S603 (our own script)


def wait_ready(url: str, server: subprocess.Popen[bytes], timeout: float = 120) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if server.poll() is not None:
            raise RuntimeError(f"the server exited with {server.returncode}")
        try:
            if httpx.get(url, timeout=2).status_code == 200:
                return
        except httpx.HTTPError:
            pass
        time.sleep(0.2)
    raise RuntimeError(f"{url} did not answer")


async def measure(env: dict[str, str], processes: int, args: argparse.Namespace, session_id: str) -> dict[str, float]:
    port = free_port()
    base_url = f"http://127.0.0.1:{port}"
    server = start_server(env, processes, port, Path(env["DATA_DIR"]) / f"serve-{processes}.log")
    try:
        await asyncio.to_thread(wait_ready, f"{base_url}/healthz", server)
        # Every worker process must have started and warmed its pool before timing.
        await run_load(base_url, args.clients, 2.0, session_id)
        rps, p50, p99 = await run_load(base_url, args.clients, args.seconds, session_id)
        events = await run_ingest(base_url, args.clients, args.events, f"{processes}_{secrets.token_hex(3)}")
    finally:
        server.terminate()
        server.wait(timeout=30)
    return {"rps": rps, "p50": p50, "p99": p99, "events": events}


async def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--seconds", type=float, default=10.0)
    parser.add_argument("--clients", type=int, default=16)
    parser.add_argument("--events", type=int, default=2000)
    args = parser.parse_args()

    server_url = os.environ.get("DATABASE_URL", "postgresql://postgres@127.0.0.1:5432/postgres")
    redis_url = os.environ.get("REDIS_URL", "redis://127.0.0.1:6379/7")
    database_url = await prepare_database(server_url)
    data_dir = ROOT / ".data" / "bench_scale"
    data_dir.mkdir(parents=True, exist_ok=True)
    env = {k: v for k, v in os.environ.items() if not k.startswith(("AUTH0_", "OIDC_", "STRIPE_", "SESSION_"))}
    env.update(
        APP_BASE_URL="http://127.0.0.1:8000",
        DATABASE_URL=database_url,
        REDIS_URL=redis_url,
        SESSION_SECRET=secrets.token_urlsafe(32),
        OIDC_ISSUER="https://bench.example/",
        AUTH0_CLIENT_ID="bench",
        AUTH0_CLIENT_SECRET="bench-secret",
        STRIPE_SECRET_KEY="sk_test_bench",
        STRIPE_WEBHOOK_SECRET=WEBHOOK_SECRET,
        STRIPE_API_BASE="http://127.0.0.1:9",
        EVENT_WORKER="off",
        HOST="127.0.0.1",
        LOG_LEVEL="WARNING",
        DATA_DIR=str(data_dir),
    )
    migrate = [str(ROOT / "scripts" / "serve"), "--migrate-only"]
    await asyncio.to_thread(subprocess.run, migrate, cwd=ROOT, env=env, check=True, capture_output=True)
    session_id = seed_session(redis_url, await seed_person(database_url))

    results = {n: await measure(env, n, args, session_id) for n in (1, 2)}
    one, two = results[1], results[2]
    print(f"{os.cpu_count()} CPUs, {args.clients} clients, {args.seconds:.0f} s per run, {args.events} events")
    print(f"{'':28}{'1 web process':>16}{'2 web processes':>18}{'2 / 1':>8}")
    rows = [
        ("/account requests/s", "rps", "{:.0f}"),
        ("/account p50 ms", "p50", "{:.1f}"),
        ("/account p99 ms", "p99", "{:.1f}"),
        ("webhook ingest events/s", "events", "{:.0f}"),
    ]
    for label, key, fmt in rows:
        print(f"{label:28}{fmt.format(one[key]):>16}{fmt.format(two[key]):>18}{two[key] / one[key]:>8.2f}")


if __name__ == "__main__":
    asyncio.run(main())
