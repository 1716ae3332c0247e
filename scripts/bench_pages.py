"""Pages and webhook ingest against a "fortunes" ceiling on the same stack, interleaved.

    uv run python scripts/bench_pages.py [--duration 6] [--rounds 3] [--connections 32] [--database NAME]

1. Drops and recreates the database `--database` (default `billing_bench_pages`) on the PostgreSQL
   server of `DATABASE_URL`, applies the migrations and seeds a catalogue (3 plans, monthly, yearly
   and lifetime prices, 6 features), 5,000 other people (a customer, an active subscription, 10
   payments and 3 entitlements each) and the signed-in person the pages are measured for: a card on
   file, an active Pro subscription with its next charge, 10 payments with invoice links and 4
   entitlements. Her session is written into the app's session store (Redis when `REDIS_URL` is set,
   else the file store under `.data/bench_pages`), as sign-in would.
2. Starts the app with its production entry point (`python -m app.serve`: granian, or uvicorn with
   `ASGI_SERVER=uvicorn`, one process, `EVENT_WORKER=off`, `LOG_LEVEL` INFO as in production), and the
   ceiling (`scripts/bench_ceiling.py`: Litestar + asyncpg + Jinja under the same server, one query and
   one render for `/fortunes`; an HMAC check and one INSERT for `/webhooks/raw`), also one process.
3. Interleaves `--rounds` rounds of `--duration` seconds of load with `--connections` keep-alive
   connections (`wrk -t2` when installed, else a Python load generator) over `GET /account`,
   `GET /plans`, `GET /billing/history`, `GET /portal`, `GET /fortunes`, `POST /webhooks/stripe`
   and `POST /webhooks/raw`. Webhook requests are signed events with unique ids, generated just
   before their run (Stripe's 300 s tolerance).
4. Prints req/s, p50 and p99 per endpoint and round, then the median of the rounds with each ratio
   (page ÷ fortunes; webhook ÷ raw HMAC + INSERT) and, for webhooks, the events acknowledged with
   a 200 against the rows stored ("lost" must be 0).

Targets (issue #13): every page ≥ 0.4× fortunes with p99 < 100 ms; webhook ≥ 0.8× raw, 0 lost.
"""

from __future__ import annotations

import argparse
import asyncio
import hashlib
import hmac
import json
import os
import secrets
import shutil
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import urlsplit

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from scripts.benchdb import recreate_database, with_database  # noqa: E402

OTHER_PEOPLE = 5_000
WEBHOOK_SECRET = "whsec_benchpages0123456789"
SESSION_ID = "bench" + "0" * 27
PAGES = ("/account", "/plans", "/billing/history", "/portal")
# The body of every benchmark webhook: a real-shaped event; `%s` is replaced by a unique event id.
EVENT_TEMPLATE = json.dumps(
    {
        "id": "%s",
        "object": "event",
        "api_version": "2026-10-28.endive",
        "created": 1764547200,
        "livemode": False,
        "pending_webhooks": 1,
        "request": {"id": None, "idempotency_key": None},
        "type": "customer.subscription.updated",
        "data": {
            "object": {
                "id": "sub_bench_1",
                "object": "subscription",
                "customer": "cus_bench_other_1",
                "status": "active",
                "cancel_at_period_end": False,
                "currency": "usd",
                "items": {
                    "object": "list",
                    "data": [
                        {
                            "id": "si_bench_1",
                            "object": "subscription_item",
                            "current_period_start": 1764547200,
                            "current_period_end": 1767225600,
                            "price": {"id": "price_bench_pro_month", "object": "price", "unit_amount": 2900},
                            "quantity": 1,
                        }
                    ],
                },
                "metadata": {},
            },
            "previous_attributes": {"cancel_at_period_end": True},
        },
    },
    separators=(",", ":"),
)


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


SEED_SQL = f"""  -- only constants are interpolated

INSERT INTO plan (key, stripe_product_id, name, description, features, sort_order, active, synced_at) VALUES
  ('basic', 'prod_bench_basic', 'Basic', 'For one person', '["1 project", "5 GB storage"]', 1, true, now()),
  ('pro', 'prod_bench_pro', 'Pro', 'For small teams', '["Unlimited projects", "100 GB storage", "Custom domain"]', 2,
   true, now()),
  ('team', 'prod_bench_team', 'Team', 'For companies',
   '["Everything in Pro", "1 TB storage", "SSO", "Priority support"]', 3, true, now());
INSERT INTO price (stripe_price_id, plan_id, lookup_key, currency, unit_amount_cents, type, interval, interval_count,
                   active, synced_at)
SELECT 'price_bench_' || p.key || '_' || k.kind, p.id, p.key || '_' || k.lookup, 'usd', k.factor * p.sort_order * 900,
       k.type, k.interval, 1, true, now()
FROM plan p CROSS JOIN (VALUES ('month', 'monthly', 1, 'recurring', 'month'),
                               ('year', 'yearly', 10, 'recurring', 'year'),
                               ('lifetime', 'lifetime', 30, 'one_time', NULL))
  AS k(kind, lookup, factor, type, interval);
INSERT INTO feature (lookup_key, name, stripe_feature_id, active) VALUES
  ('projects_unlimited', 'Unlimited projects', 'feat_bench_1', true),
  ('storage_100gb', '100 GB storage', 'feat_bench_2', true),
  ('custom_domain', 'Custom domain', 'feat_bench_3', true), ('storage_1tb', '1 TB storage', 'feat_bench_4', true),
  ('sso', 'Single sign-on', 'feat_bench_5', true), ('priority_support', 'Priority support', 'feat_bench_6', true);
INSERT INTO plan_feature (plan_id, feature_lookup_key, stripe_product_feature_id)
SELECT p.id, f.key, 'prodft_bench_' || p.key || '_' || f.key
FROM plan p JOIN (VALUES ('basic', 'projects_unlimited'), ('pro', 'projects_unlimited'), ('pro', 'storage_100gb'),
                        ('pro', 'custom_domain'), ('team', 'projects_unlimited'), ('team', 'storage_1tb'),
                        ('team', 'custom_domain'), ('team', 'sso'), ('team', 'priority_support')) AS f(plan, key)
  ON f.plan = p.key;
INSERT INTO "user" (subject, email, email_verified, name, roles, created_at, last_login_at)
SELECT 'other-' || g, 'other' || g || '@example.com', true, 'Other ' || g, ARRAY[]::varchar[], now(), now()
FROM generate_series(1, {OTHER_PEOPLE}) AS g;
INSERT INTO "user" (subject, email, email_verified, name, roles, created_at, last_login_at)
VALUES ('bench-dana', 'dana@example.com', true, 'Dana Bench', ARRAY[]::varchar[], now() - interval '400 days', now());
INSERT INTO customer (user_id, stripe_customer_id, email, name, card_brand, card_last4, card_exp_month, card_exp_year,
                      default_payment_method_id, deleted, created_at, synced_at)
SELECT id, CASE WHEN subject = 'bench-dana' THEN 'cus_bench_dana' ELSE 'cus_bench_' || subject END, email, name,
       'visa', '4242', 12, 2030, 'pm_bench_' || id, false, now(), now()
FROM "user";
INSERT INTO subscription (stripe_subscription_id, customer_id, user_id, status, price_id, stripe_price_id, quantity,
                          current_period_start, current_period_end, cancel_at_period_end, stripe_created,
                          stripe_updated_at, created_at, next_charge_amount_cents, next_charge_currency, next_charge_at)
SELECT 'sub_bench_' || c.id, c.id, c.user_id, 'active', pr.id, pr.stripe_price_id, 1, now() - interval '10 days',
       now() + interval '20 days', false, now() - interval '300 days', now(), now(), pr.unit_amount_cents, 'usd',
       now() + interval '20 days'
FROM customer c JOIN price pr ON pr.stripe_price_id = 'price_bench_pro_month';
INSERT INTO payment_transaction (user_id, subscription_id, stripe_payment_intent_id, stripe_charge_id,
       stripe_invoice_id, stripe_customer_id, stripe_price_id, amount_cents, amount_refunded_cents, currency, status,
       payment_method,
       payment_method_last4, description, metadata, hosted_invoice_url, invoice_pdf_url, receipt_url, paid_at,
       created_at, updated_at)
SELECT s.user_id, s.id, 'pi_bench_' || s.id || '_' || g, 'ch_bench_' || s.id || '_' || g,
       'in_bench_' || s.id || '_' || g,
       c.stripe_customer_id, s.stripe_price_id, 1800, 0, 'usd', CASE WHEN g = 3 THEN 'failed' ELSE 'succeeded' END,
       'visa', '4242', 'Subscription update', '{{}}',
       'https://invoice.stripe.com/i/bench_' || s.id || '_' || g,
       'https://pay.stripe.com/invoice/bench_' || s.id || '_' || g || '/pdf',
       'https://pay.stripe.com/receipts/bench_' || s.id || '_' || g, now() - g * interval '30 days',
       now() - g * interval '30 days', now()
FROM subscription s JOIN customer c ON c.id = s.customer_id CROSS JOIN generate_series(1, 10) AS g;
INSERT INTO entitlement (customer_id, user_id, feature, source, source_id, price_id, description, until, created_at)
SELECT s.customer_id, s.user_id, pf.feature_lookup_key, 'subscription', s.stripe_subscription_id, s.stripe_price_id,
       'from subscription ' || s.stripe_subscription_id || ' on ' || s.stripe_price_id, NULL, now()
FROM subscription s JOIN price pr ON pr.id = s.price_id JOIN plan_feature pf ON pf.plan_id = pr.plan_id;
INSERT INTO entitlement (customer_id, user_id, feature, source, source_id, description, until, created_at)
SELECT c.id, c.user_id, 'priority_support', 'grant', 'grant_bench', 'granted by an operator',
       now() + interval '60 days', now()
FROM customer c WHERE c.stripe_customer_id = 'cus_bench_dana';
"""  # noqa: S608


async def seed(database_url: str) -> int:
    """Seed the catalogue and the people (see the module docstring); returns the signed-in person's user id."""
    import asyncpg

    from scripts.bench_ceiling import create_tables

    connection = await asyncpg.connect(database_url)
    try:
        await connection.execute(SEED_SQL)
        await create_tables(connection)
        await connection.execute("VACUUM ANALYZE")
        return int(await connection.fetchval("SELECT id FROM \"user\" WHERE subject = 'bench-dana'"))
    finally:
        await connection.close()


async def write_session(env: dict[str, str], user_id: int) -> None:
    """Store the signed-in session under `SESSION_ID` in the app's own session store, as sign-in does."""
    os.environ.update(env)
    from app.settings import Settings
    from app.web.sessions import session_store

    store = session_store(Settings.from_env().app)
    await store.set(SESSION_ID, json.dumps({"user_id": user_id, "roles": []}).encode(), expires_in=3600)


async def wait_until_up(url: str, process: asyncio.subprocess.Process, seconds: float = 60) -> None:
    import httpx

    deadline = time.monotonic() + seconds
    async with httpx.AsyncClient(timeout=2) as client:
        while True:
            if process.returncode is not None:
                raise RuntimeError(f"{url}: the server exited with {process.returncode}")
            try:
                await client.get(url)
                return
            except httpx.HTTPError:
                if time.monotonic() > deadline:
                    raise
                await asyncio.sleep(0.2)


def signed_events(prefix: str, count: int, secret: str) -> list[tuple[str, str]]:
    """`count` (event id, `Stripe-Signature`) pairs for `EVENT_TEMPLATE`, signed now."""
    timestamp = int(time.time())
    out = []
    for i in range(count):
        event_id = f"evt_{prefix}_{i:07d}"
        body = EVENT_TEMPLATE.replace("%s", event_id)
        digest = hmac.new(secret.encode(), f"{timestamp}.{body}".encode(), hashlib.sha256).hexdigest()
        out.append((event_id, f"t={timestamp},v1={digest}"))
    return out


# --------------------------------------------------------------------------- load generators

WRK_DONE = r"""
function done(summary, latency, requests)
  local acked, other, wrapped = 0, 0, 0
  for _, t in ipairs(threads) do
    acked = acked + (t:get("acked") or 0); other = other + (t:get("other") or 0)
    wrapped = wrapped + (t:get("wrapped") or 0)
  end
  local e = summary.errors
  io.write(string.format('BENCHJSON {"requests": %d, "duration_us": %d, "p50_us": %d, "p99_us": %d, ' ..
    '"errors": %d, "status_errors": %d, "acked": %d, "other": %d, "wrapped": %d}\n',
    summary.requests, summary.duration, latency:percentile(50), latency:percentile(99),
    e.connect + e.read + e.write + e.timeout, e.status, acked, other, wrapped))
end
"""

WRK_GET = (
    r"""
threads = {}
function setup(thread) table.insert(threads, thread) end
"""
    + WRK_DONE
)

WRK_WEBHOOK = (
    r"""
threads = {}
function setup(thread)
  thread:set("tid", #threads)
  table.insert(threads, thread)
end
function init(args)
  local file, nthreads, target = args[1], tonumber(args[2]), args[3]
  template = args[4]
  endpoint = target
  local lines = {}
  for line in io.lines(file) do lines[#lines + 1] = line end
  local per = math.floor(#lines / nthreads)
  ids, sigs = {}, {}
  for i = tid * per + 1, (tid + 1) * per do
    local id, sig = lines[i]:match("^(%S+) (%S+)$")
    ids[#ids + 1] = id; sigs[#sigs + 1] = sig
  end
  idx = 1; acked = 0; other = 0; wrapped = 0
end
function request()
  local id, sig = ids[idx], sigs[idx]
  idx = idx + 1
  if idx > #ids then idx = 1; wrapped = wrapped + 1 end
  local body = template:gsub("%%s", id, 1)
  return wrk.format("POST", endpoint, {["Content-Type"] = "application/json", ["Stripe-Signature"] = sig}, body)
end
function response(status, headers, body)
  if status == 200 then acked = acked + 1 else other = other + 1 end
end
"""
    + WRK_DONE
)


@dataclass
class Result:
    """One run of load against one endpoint."""

    requests: int
    seconds: float
    p50_ms: float
    p99_ms: float
    errors: int
    acked: int = 0
    wrapped: bool = False

    @property
    def rate(self) -> float:
        return self.requests / self.seconds


def run_wrk(url: str, duration: float, connections: int, script: Path, headers: list[str], args: list[str]) -> Result:
    command = ["wrk", "-t2", f"-c{connections}", f"-d{max(1, round(duration))}s", "--timeout", "10s", "-s", str(script)]
    for header in headers:
        command += ["-H", header]
    command += [url, *(["--", *args] if args else [])]
    output = subprocess.run(command, capture_output=True, text=True, check=True).stdout  # noqa: S603
    line = next(line for line in output.splitlines() if line.startswith("BENCHJSON "))
    data = json.loads(line.removeprefix("BENCHJSON "))
    return Result(
        requests=data["requests"],
        seconds=data["duration_us"] / 1e6,
        p50_ms=data["p50_us"] / 1000,
        p99_ms=data["p99_us"] / 1000,
        errors=data["errors"] + data["status_errors"] + data["other"],
        acked=data["acked"],
        wrapped=data["wrapped"] > 0,
    )


async def run_python(
    url: str, duration: float, connections: int, headers: list[str], events: list[tuple[str, str]] | None
) -> Result:
    """The fallback load generator: `connections` keep-alive HTTP/1.1 connections on asyncio streams."""
    parts = urlsplit(url)
    host, port, path = parts.hostname or "127.0.0.1", parts.port or 80, parts.path
    extra = "".join(f"{h}\r\n" for h in headers)
    samples: list[float] = []
    errors = [0]
    acked = [0]
    queue = iter(events or [])
    stop_at = time.perf_counter() + duration

    def build() -> bytes | None:
        if events is None:
            return f"GET {path} HTTP/1.1\r\nHost: {host}\r\n{extra}\r\n".encode()
        pair = next(queue, None)
        if pair is None:
            return None
        body = EVENT_TEMPLATE.replace("%s", pair[0]).encode()
        head = (
            f"POST {path} HTTP/1.1\r\nHost: {host}\r\nContent-Type: application/json\r\n"
            f"Stripe-Signature: {pair[1]}\r\nContent-Length: {len(body)}\r\n\r\n"
        )
        return head.encode() + body

    async def connection() -> None:
        reader, writer = await asyncio.open_connection(host, port)
        try:
            while time.perf_counter() < stop_at and (request := build()) is not None:
                start = time.perf_counter()
                writer.write(request)
                head = await reader.readuntil(b"\r\n\r\n")
                status = int(head.split(b" ", 2)[1])
                length = next(
                    (int(h.split(b":", 1)[1]) for h in head.split(b"\r\n") if h.lower().startswith(b"content-length:")),
                    0,
                )
                await reader.readexactly(length)
                samples.append((time.perf_counter() - start) * 1000)
                if status == 200:
                    acked[0] += 1
                else:
                    errors[0] += 1
        finally:
            writer.close()

    started = time.perf_counter()
    await asyncio.gather(*(connection() for _ in range(connections)))
    wall = time.perf_counter() - started
    ordered = sorted(samples) or [0.0]
    return Result(
        requests=len(samples),
        seconds=wall,
        p50_ms=ordered[len(ordered) // 2],
        p99_ms=ordered[min(len(ordered) - 1, int(len(ordered) * 0.99))],
        errors=errors[0],
        acked=acked[0],
    )


# --------------------------------------------------------------------------- the run


@dataclass
class Endpoint:
    label: str
    url: str
    webhook: bool = False
    cookie: bool = False


async def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--duration", type=float, default=6, help="seconds of load per endpoint and round")
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--connections", type=int, default=32)
    parser.add_argument("--database", default="billing_bench_pages")
    parser.add_argument("--app-port", type=int, default=0, help="default: a free port")
    parser.add_argument("--ceiling-port", type=int, default=0, help="default: a free port")
    parser.add_argument("--python-load", action="store_true", help="use the Python load generator even if wrk exists")
    parser.add_argument("--only", default="", help="comma-separated labels to measure (default: all)")
    args = parser.parse_args()
    use_wrk = shutil.which("wrk") is not None and not args.python_load

    server_url = os.environ.get("DATABASE_URL") or "postgresql://postgres@127.0.0.1:5432/postgres"
    await recreate_database(server_url, args.database)
    database_url = with_database(server_url, args.database)
    app_port = args.app_port or free_port()
    ceiling_port = args.ceiling_port or free_port()
    data_dir = ROOT / ".data" / "bench_pages"
    data_dir.mkdir(parents=True, exist_ok=True)
    env = {
        **os.environ,
        "DATABASE_URL": database_url,
        # Production settings (JSON log lines, HSTS, Secure cookies): the app sits behind a TLS proxy.
        "APP_ENV": "production",
        "APP_BASE_URL": "https://billing.bench.example",
        "HOST": "127.0.0.1",
        "PORT": str(app_port),
        "WEB_CONCURRENCY": "1",
        "SESSION_SECRET": secrets.token_urlsafe(32),
        "OIDC_ISSUER": "https://login.bench.example/",
        "AUTH0_CLIENT_ID": "bench",
        "AUTH0_CLIENT_SECRET": "bench",
        "STRIPE_SECRET_KEY": "sk_test_bench",
        "STRIPE_WEBHOOK_SECRET": WEBHOOK_SECRET,
        "EVENT_WORKER": "off",
        "LOG_LEVEL": os.environ.get("LOG_LEVEL", "INFO"),
        "DATA_DIR": str(data_dir),
        "WEBHOOK_SECRET": WEBHOOK_SECRET,
        "PYTHONPATH": str(ROOT),
    }
    os.environ["DATABASE_URL"] = database_url  # before piccolo_conf is imported
    from app.devstack import apply_migrations

    await apply_migrations()
    started = time.perf_counter()
    user_id = await seed(database_url)
    print(f"seeded {OTHER_PEOPLE + 1:,} people (10 payments each) in {time.perf_counter() - started:.1f} s")
    await write_session(env, user_id)
    store = "Redis" if env.get("REDIS_URL") else "file"

    logs = tempfile.TemporaryDirectory(prefix="bench-pages-")
    app_log = (Path(logs.name) / "app.log").open("wb")
    app = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "app.serve", "--no-migrate", cwd=ROOT, env=env, stdout=app_log, stderr=app_log
    )
    ceiling = await asyncio.create_subprocess_exec(
        sys.executable, str(ROOT / "scripts" / "bench_ceiling.py"), "--port", str(ceiling_port),
        cwd=ROOT, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
    )  # fmt: skip
    import httpx

    try:
        await wait_until_up(f"http://127.0.0.1:{app_port}/healthz", app)
        await wait_until_up(f"http://127.0.0.1:{ceiling_port}/fortunes", ceiling)
        base, top = f"http://127.0.0.1:{app_port}", f"http://127.0.0.1:{ceiling_port}"
        async with httpx.AsyncClient(headers={"Cookie": f"billing_session={SESSION_ID}"}) as client:
            # A browser sends the CSRF cookie it got on its first page back with every later request.
            first = await client.get(base + "/account")
            csrf = next(c.split(";")[0] for c in first.headers.get_list("set-cookie") if c.startswith("billing_csrf="))
            cookie = f"Cookie: billing_session={SESSION_ID}; {csrf}"
            client.headers["Cookie"] = cookie.removeprefix("Cookie: ")
            for path, expected in zip(
                PAGES, ("Dana Bench", "Current plan", "Subscription update", "Manage billing"), strict=True
            ):
                answer = await client.get(base + path)
                if answer.status_code != 200 or expected not in answer.text:
                    raise RuntimeError(f"GET {path}: {answer.status_code}, not the signed-in page")
        endpoints = [
            *(Endpoint(f"GET {p}", base + p, cookie=True) for p in PAGES),
            Endpoint("GET /fortunes (ceiling)", top + "/fortunes"),
            Endpoint("POST /webhooks/stripe", base + "/webhooks/stripe", webhook=True),
            Endpoint("POST /webhooks/raw (ceiling)", top + "/webhooks/raw", webhook=True),
        ]
        if args.only:
            wanted = [w.strip() for w in args.only.split(",")]
            endpoints = [e for e in endpoints if any(w in e.label for w in wanted)]
        tmp = Path(logs.name)
        get_script, webhook_script = tmp / "get.lua", tmp / "webhook.lua"
        get_script.write_text(WRK_GET)
        webhook_script.write_text(WRK_WEBHOOK)
        per_run = int(max(4000, 4000 * args.duration))  # more than either endpoint can take in a run

        async def measure(endpoint: Endpoint, duration: float, prefix: str) -> Result:
            headers = [cookie] if endpoint.cookie else []
            events = signed_events(prefix, per_run, WEBHOOK_SECRET) if endpoint.webhook else None
            if not use_wrk:
                return await run_python(endpoint.url, duration, args.connections, headers, events)
            extra: list[str] = []
            if events is not None:
                file = tmp / f"{prefix}.txt"
                file.write_text("".join(f"{i} {s}\n" for i, s in events))
                extra = [str(file), "2", urlsplit(endpoint.url).path, EVENT_TEMPLATE]
            script = webhook_script if endpoint.webhook else get_script
            return await asyncio.to_thread(run_wrk, endpoint.url, duration, args.connections, script, headers, extra)

        print(f"load: {'wrk -t2' if use_wrk else 'Python load generator'}, {args.connections} connections, "
              f"{args.duration:g} s per run, {args.rounds} interleaved rounds; sessions in the {store} store; "
              f"load average before: {os.getloadavg()[0]:.2f} on {os.cpu_count()} CPUs")  # fmt: skip
        for index, endpoint in enumerate(endpoints):  # warm-up: caches, prepared statements, pools
            await measure(endpoint, 2, f"warm{index}")
        results: dict[str, list[Result]] = {e.label: [] for e in endpoints}
        prefixes: dict[str, list[str]] = {e.label: [] for e in endpoints}
        for round_number in range(1, args.rounds + 1):
            for index, endpoint in enumerate(endpoints):
                prefix = f"r{round_number}e{index}"
                result = await measure(endpoint, args.duration, prefix)
                results[endpoint.label].append(result)
                prefixes[endpoint.label].append(prefix)
                print(f"  round {round_number}  {endpoint.label:<30} {result.rate:>8,.0f} req/s   "
                      f"p50 {result.p50_ms:7.1f} ms   p99 {result.p99_ms:7.1f} ms   "
                      f"errors {result.errors}")  # fmt: skip
        load_after = os.getloadavg()[0]
    finally:
        for process in (app, ceiling):
            if process.returncode is None:
                process.terminate()
                await asyncio.wait_for(process.wait(), timeout=20)
        app_log.close()

    import asyncpg

    connection = await asyncpg.connect(database_url)
    try:
        stored: dict[str, int] = {}
        for label, table in (
            ("POST /webhooks/stripe", "stripe_event"),
            ("POST /webhooks/raw (ceiling)", "bench_raw_event"),
        ):
            for prefix in prefixes.get(label, []):
                stored[prefix] = await connection.fetchval(
                    f"SELECT count(*) FROM {table} WHERE stripe_event_id LIKE $1",  # noqa: S608 (constant table names)
                    f"evt_{prefix}_%",
                )
    finally:
        await connection.close()

    def median(label: str, attribute: str) -> float:
        return statistics.median(getattr(r, attribute) for r in results[label])

    print(f"\nMedian of {args.rounds} rounds ({args.connections} connections, one server process each):")
    print(f"{'endpoint':<31}{'req/s':>9}{'p50 ms':>9}{'p99 ms':>9}  ratio")
    ceiling_of = {"GET": "GET /fortunes (ceiling)", "POST": "POST /webhooks/raw (ceiling)"}
    for label in results:
        ratio = ""
        reference = ceiling_of[label.split()[0]]
        if reference in results and label != reference:
            ratio = f"{median(label, 'rate') / median(reference, 'rate'):.2f}× {reference.split()[1]}"
        print(f"{label:<31}{median(label, 'rate'):>9,.0f}{median(label, 'p50_ms'):>9.1f}"
              f"{median(label, 'p99_ms'):>9.1f}  {ratio}")  # fmt: skip
    for label in ("POST /webhooks/stripe", "POST /webhooks/raw (ceiling)"):
        if label not in results:
            continue
        acked = sum(r.acked for r in results[label])
        rows = sum(stored[p] for p in prefixes[label])
        wrapped = (
            " (some ids were sent twice: acknowledged includes duplicates)"
            if any(r.wrapped for r in results[label])
            else ""
        )
        print(
            f"{label}: {acked:,} events acknowledged with 200, {rows:,} rows stored, "
            f"lost {max(acked - rows, 0)}{wrapped}"
        )
    print(f"load average after: {load_after:.2f} on {os.cpu_count()} CPUs")


if __name__ == "__main__":
    asyncio.run(main())
