"""Benchmark the host API's state endpoint on 100,000 customers.

    uv run python scripts/bench_state.py [--workers 1] [--server granian|uvicorn] [--redis-url URL]
                                         [--hello] [--rounds 3] [--seconds 10] [--load wrk|python]

Drops and recreates the database `billing_bench_state` on the PostgreSQL server of `DATABASE_URL`
(default `postgresql://postgres@127.0.0.1:5432/postgres`; `--no-seed` reuses it), applies the
migrations, seeds 100,000 people, each with a customer and a published state of four entitlements
(`INSERT … SELECT generate_series`), creates a host API key, and times the endpoint's query alone
(`app.entitlements.queries.customer_state`). Then it serves the app as production does
(`scripts/serve`, `APP_ENV=production`, JSON access log at INFO, `WEB_CONCURRENCY=--workers`,
`ASGI_SERVER=--server`, `REDIS_URL` when given) and sends `GET /api/v1/customers/{subject}/state` for
random people with 32 (`--concurrency`) keep-alive connections: by `wrk` (C, one thread: the load
generator takes little of the machine) when `/usr/bin/wrk` exists, else a minimal Python client.
`--hello` interleaves each round with the same load on a bare Litestar app (`scripts/bench_hello.py`)
under the same server, the floor on the same machine. Prints p50/p99/max latency in milliseconds,
requests/s and the load average for each round. Target: p99 under 10 ms.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import random
import socket
import statistics
import sys
import time
from pathlib import Path
from urllib.parse import urlsplit

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from scripts.benchdb import recreate_database, with_database  # noqa: E402

BENCH_DB = "billing_bench_state"
PEOPLE = 100_000


async def seed() -> None:
    """100,000 people with a customer and a published state (constants only are interpolated)."""
    from piccolo_conf import DB

    await DB.run_ddl(
        'INSERT INTO "user" (subject, email, email_verified, name, roles, created_at, last_login_at) '  # noqa: S608
        "SELECT 'person-' || g, 'person' || g || '@example.com', true, 'Person ' || g, ARRAY[]::varchar[], "
        "now(), now() "
        f"FROM generate_series(1, {PEOPLE}) AS g"
    )
    await DB.run_ddl(
        "INSERT INTO customer (user_id, stripe_customer_id, email, deleted, created_at) "
        "SELECT id, 'cus_bench_' || id, email, false, now() FROM \"user\""
    )
    features = ["custom_domain", "priority_support", "projects_unlimited", "storage_100gb"]
    entitlements = ", ".join(
        f"jsonb_build_object('feature', '{f}', 'name', '{f}', 'source', 'subscription', "
        "'source_id', 'sub_bench_' || u.id, 'price', 'price_pro_monthly', "
        "'description', 'from subscription sub_bench_' || u.id || ' on price_pro_monthly', 'until', null)"
        for f in features
    )
    await DB.run_ddl(
        "INSERT INTO customer_state "  # noqa: S608
        "(customer_id, user_id, state, fingerprint, stripe_entitlements, version, updated_at) "
        "SELECT c.id, u.id, jsonb_build_object("
        "'object', 'customer_state', 'external_id', u.subject, 'email', u.email, "
        "'stripe_customer_id', c.stripe_customer_id, "
        "'plan', jsonb_build_object('key', 'pro', 'name', 'Pro', 'price', 'price_pro_monthly', 'interval', 'month', "
        "'subscription', 'sub_bench_' || u.id), "
        "'status', 'active', 'premium', true, 'renews_at', '2027-01-01T00:00:00Z', 'cancels_at', null, "
        f"'entitlements', jsonb_build_array({entitlements}), 'version', 1, 'updated_at', '2026-12-01T00:00:00Z'), "
        "md5(u.subject), '[]'::jsonb, 1, now() "
        'FROM "user" u JOIN customer c ON c.user_id = u.id'
    )
    await DB.run_ddl('VACUUM ANALYZE "user"')
    await DB.run_ddl("VACUUM ANALYZE customer_state")


def percentile(samples: list[float], q: float) -> float:
    """The `q` quantile (0–1) of `samples`, nearest-rank."""
    ordered = sorted(samples)
    return ordered[min(len(ordered) - 1, max(0, round(q * len(ordered)) - 1))]


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


async def load(base_url: str, key: str, requests: int, concurrency: int) -> tuple[list[float], float]:
    """Send `requests` GETs over `concurrency` keep-alive connections; per-request ms and wall time in s.

    A minimal HTTP/1.1 client on asyncio streams, so that the load generator (on the same machine)
    takes as little CPU from the server as possible.
    """
    parts = urlsplit(base_url)
    host, port = parts.hostname or "127.0.0.1", parts.port or 80
    samples: list[float] = []
    remaining = [requests]

    async def connection(count: int | None) -> None:
        reader, writer = await asyncio.open_connection(host, port)
        try:
            while (count is None and remaining[0] > 0) or (count is not None and count > 0):
                if count is None:
                    remaining[0] -= 1
                else:
                    count -= 1
                subject = f"person-{random.randint(1, PEOPLE)}"  # noqa: S311
                request = (
                    f"GET /api/v1/customers/{subject}/state HTTP/1.1\r\nHost: {host}\r\n"
                    f"Authorization: Bearer {key}\r\n\r\n"
                )
                start = time.perf_counter()
                writer.write(request.encode())
                head = await reader.readuntil(b"\r\n\r\n")
                status = int(head.split(b" ", 2)[1])
                length = next(
                    int(line.split(b":", 1)[1])
                    for line in head.split(b"\r\n")
                    if line.lower().startswith(b"content-length:")
                )
                await reader.readexactly(length)
                if count is None:
                    samples.append((time.perf_counter() - start) * 1000)
                if status != 200:
                    raise RuntimeError(f"HTTP {status}")
        finally:
            writer.close()

    await asyncio.gather(*(connection(10) for _ in range(concurrency)))  # warm-up
    started = time.perf_counter()
    await asyncio.gather(*(connection(None) for _ in range(concurrency)))
    return samples, time.perf_counter() - started


WRK_SCRIPT = """
-- Random people, the bench key; one request per call.
local key = os.getenv("BENCH_KEY")
local people = tonumber(os.getenv("BENCH_PEOPLE"))
math.randomseed(os.time())
request = function()
  return wrk.format("GET", "/api/v1/customers/person-" .. math.random(1, people) .. "/state",
    {["Authorization"] = "Bearer " .. key})
end
done = function(summary, latency, requests)
  io.write(string.format("WRK %d %d %.3f %.3f %.3f %d %d\\n", summary.requests, summary.duration,
    latency:percentile(50) / 1000, latency:percentile(99) / 1000, latency.max / 1000,
    summary.errors.status,
    summary.errors.connect + summary.errors.read + summary.errors.write + summary.errors.timeout))
end
"""


async def load_wrk(base_url: str, key: str, seconds: int, concurrency: int) -> dict[str, float]:
    """Run wrk (one thread, `concurrency` keep-alive connections) for `seconds`; its figures in ms."""
    script = ROOT / ".data" / "bench" / "state.lua"
    script.parent.mkdir(parents=True, exist_ok=True)
    script.write_text(WRK_SCRIPT)
    env = {**os.environ, "BENCH_KEY": key, "BENCH_PEOPLE": str(PEOPLE)}
    for duration in (2, seconds):  # warm-up, then the measured run
        process = await asyncio.create_subprocess_exec(
            WRK, "-t1", f"-c{concurrency}", f"-d{duration}s", "--latency", "-s", str(script), base_url,
            stdout=asyncio.subprocess.PIPE, env=env,
        )  # fmt: skip
        out, _ = await process.communicate()
    line = next(x for x in out.decode().splitlines() if x.startswith("WRK "))
    requests, micros, p50, p99, worst, bad_status, socket_errors = line.split()[1:]
    if int(bad_status) or int(socket_errors):
        raise RuntimeError(f"wrk saw {bad_status} non-2xx answers and {socket_errors} socket errors")
    return {
        "requests": int(requests),
        "rps": int(requests) / (int(micros) / 1e6),
        "p50": float(p50),
        "p99": float(p99),
        "max": float(worst),
    }


def server_env(database_url: str, port: int, workers: int) -> dict[str, str]:
    """What a production deployment sets (`APP_ENV=production`: JSON logs at INFO, every check on)."""
    env = {
        **os.environ,
        "APP_ENV": "production",
        "APP_BASE_URL": "https://billing.bench.example",
        "HOST": "127.0.0.1",
        "PORT": str(port),
        "WEB_CONCURRENCY": str(workers),
        "DATABASE_URL": database_url,
        "SESSION_SECRET": "".join(random.choices("abcdefghijklmnopqrstuvwxyz0123456789", k=48)),  # noqa: S311
        "OIDC_ISSUER": "https://id.bench.example/",
        "AUTH0_CLIENT_ID": "bench",
        "AUTH0_CLIENT_SECRET": "bench-" + "x" * 20,
        "STRIPE_SECRET_KEY": "sk_test_bench_" + "x" * 20,
        "STRIPE_WEBHOOK_SECRET": "whsec_bench",
        "EVENT_WORKER": "off",
        "HOST_API_RATE_LIMIT": "100000000",
        "LOG_LEVEL": "INFO",
        "DATA_DIR": str(ROOT / ".data" / "bench"),
    }
    env.pop("STRIPE_API_BASE", None)
    return env


async def serve(command: list[str], env: dict[str, str], port: int, log: Path) -> asyncio.subprocess.Process:
    """Start `command`, logging to `log`, and wait until it answers on `port`."""
    import httpx

    server = await asyncio.create_subprocess_exec(
        *command, cwd=ROOT, env=env, stdout=log.open("ab"), stderr=asyncio.subprocess.STDOUT
    )
    deadline = time.monotonic() + 60
    async with httpx.AsyncClient(timeout=1) as probe:
        while True:
            try:
                await probe.get(f"http://127.0.0.1:{port}/")
                return server
            except httpx.HTTPError:
                if time.monotonic() > deadline or server.returncode is not None:
                    raise RuntimeError(f"the server did not start; see {log}") from None
                await asyncio.sleep(0.2)


async def measure(base_url: str, key: str, args: argparse.Namespace) -> dict[str, float]:
    """One measured run, by wrk when present, else the Python client."""
    if args.load == "wrk":
        return await load_wrk(base_url, key, args.seconds, args.concurrency)
    samples, wall = await load(base_url, key, args.requests, args.concurrency)
    return {
        "requests": len(samples),
        "rps": len(samples) / wall,
        "p50": statistics.median(samples),
        "p99": percentile(samples, 0.99),
        "max": max(samples),
    }


WRK = "/usr/bin/wrk"
DEFAULT_LOAD = "wrk" if Path(WRK).exists() else "python"


async def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--requests", type=int, default=5000, help="with --load python")
    parser.add_argument("--seconds", type=int, default=10, help="with --load wrk")
    parser.add_argument("--concurrency", type=int, default=32)
    parser.add_argument("--workers", type=int, default=1, help="WEB_CONCURRENCY: web processes")
    parser.add_argument(
        "--rounds", type=int, default=3, help="measured runs (the app and, with --hello, hello-world interleaved)"
    )
    parser.add_argument("--load", choices=("wrk", "python"), default=DEFAULT_LOAD)
    parser.add_argument(
        "--hello", action="store_true", help="also measure a hello-world Litestar endpoint the same way"
    )
    parser.add_argument(
        "--server", choices=("granian", "uvicorn"), default="granian", help="ASGI_SERVER (production default: granian)"
    )
    parser.add_argument(
        "--redis-url",
        default=os.environ.get("REDIS_URL"),
        help="REDIS_URL (production needs it with several processes)",
    )
    parser.add_argument("--no-seed", action="store_true", help="reuse the bench database of the last run")
    args = parser.parse_args()

    server_url = os.environ.get("DATABASE_URL") or "postgresql://postgres@127.0.0.1:5432/postgres"
    database_url = with_database(server_url, BENCH_DB)
    if not args.no_seed:
        await recreate_database(server_url, BENCH_DB)
    os.environ["DATABASE_URL"] = database_url  # before piccolo_conf is imported

    from app.devstack import apply_migrations
    from app.entitlements.api_keys import create_key
    from app.entitlements.queries import customer_state
    from piccolo_conf import DB

    await apply_migrations()
    if not args.no_seed:
        started = time.perf_counter()
        await seed()
        print(f"seeded {PEOPLE:,} people with a published state in {time.perf_counter() - started:.1f} s")
    _, key = await create_key("bench")

    await DB.start_connection_pool(min_size=1, max_size=2)
    try:
        query_ms = []
        for _ in range(2000):
            subject = f"person-{random.randint(1, PEOPLE)}"  # noqa: S311
            start = time.perf_counter()
            assert await customer_state(subject) is not None
            query_ms.append((time.perf_counter() - start) * 1000)
    finally:
        await DB.close_connection_pool()
    print(f"customer_state() query alone, 2,000 runs: p50 {statistics.median(query_ms):.2f} ms   "
          f"p99 {percentile(query_ms, 0.99):.2f} ms")  # fmt: skip

    log = ROOT / ".data" / "bench" / "server.log"
    log.parent.mkdir(parents=True, exist_ok=True)
    port, hello_port = free_port(), free_port()
    env = {**server_env(database_url, port, args.workers), "ASGI_SERVER": args.server}
    env.pop("REDIS_URL", None)
    if args.redis_url:
        env["REDIS_URL"] = args.redis_url
    app = await serve([sys.executable, "-m", "app.serve", "--no-migrate"], env, port, log)
    hello = None
    if args.hello:
        # Under the same server as the app, so the floor differs from the app only in the app's own work.
        hello_command = (
            [sys.executable, "-m", "granian", "--interface", "asgi", "--host", "127.0.0.1", "--port", str(hello_port),
             "--workers", str(args.workers), "--no-access-log", "scripts.bench_hello:app"]
            if args.server == "granian"
            else [sys.executable, "-m", "uvicorn", "scripts.bench_hello:app", "--port", str(hello_port), "--workers",
                  str(args.workers), "--log-level", "warning", "--no-access-log"]
        )  # fmt: skip
        hello = await serve(hello_command, {**os.environ, "BENCH_PEOPLE": str(PEOPLE)}, hello_port, log)
    how = f"{args.concurrency} concurrent, {args.workers} {args.server} process(es), load by {args.load}"
    how += ", Redis" if args.redis_url else ""
    try:
        for round_ in range(1, args.rounds + 1):
            got = await measure(f"http://127.0.0.1:{port}", key, args)
            print(f"round {round_}  GET /api/v1/customers/{{id}}/state ({how}): p50 {got['p50']:.2f} ms   "
                  f"p99 {got['p99']:.2f} ms   max {got['max']:.1f} ms   {got['rps']:,.0f} requests/s   "
                  f"(target p99 < 10 ms: {'OK' if got['p99'] < 10 else 'over target'})")  # fmt: skip
            if hello is not None:
                base = await measure(f"http://127.0.0.1:{hello_port}", key, args)
                print(f"round {round_}  hello-world Litestar GET, same load:           p50 {base['p50']:.2f} ms   "
                      f"p99 {base['p99']:.2f} ms   max {base['max']:.1f} ms   {base['rps']:,.0f} requests/s   "
                      f"(state/hello p99 {got['p99'] / base['p99']:.2f}, "
                      f"throughput {got['rps'] / base['rps']:.2f})")  # fmt: skip
            print(f"         load average {os.getloadavg()[0]:.1f} on {os.cpu_count()} CPUs")
    finally:
        for process in (app, hello):
            if process is not None:
                process.terminate()
                await asyncio.wait_for(process.wait(), timeout=20)


if __name__ == "__main__":
    asyncio.run(main())
