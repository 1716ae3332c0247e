"""What `POST /portal/sessions` adds to the Stripe call it makes.

    uv run python scripts/bench_portal_sessions.py [--requests 400] [--database NAME]

Starts the Stripe emulator and the app (`python -m app.serve`, one uvicorn process, development
settings: production refuses `STRIPE_API_BASE`), recreates the database `--database` (default
`billing_bench_portal`) on the server of `DATABASE_URL`, pushes the demo catalogue and portal
configurations, and signs in `--requests` people, each with a Stripe customer (the endpoint is rate
limited to 10 sessions a minute per person, so each request is another person's).

Then, one request at a time and interleaved: the endpoint (form post with the CSRF token, answered by
a 303 to the portal), and the same Stripe call made directly with the same SDK client the app uses
(`billing_portal.sessions.create` with the same customer, configuration, return URL and flow). Prints
p50 and p99 of both and the difference: the endpoint's own cost (session, CSRF, rate limit, the one
statement it reads before the call, the row it writes after). Target (issue #13): < 10 ms at p99.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import signal
import statistics
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from scripts.bench_pages import free_port, recreate_database, wait_until_up, with_database  # noqa: E402


def percentile(samples: list[float], q: float) -> float:
    ordered = sorted(samples)
    return ordered[min(len(ordered) - 1, max(0, round(q * len(ordered)) - 1))]


async def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--requests", type=int, default=400)
    parser.add_argument("--database", default="billing_bench_portal")
    args = parser.parse_args()

    server_url = os.environ.get("DATABASE_URL") or "postgresql://postgres@127.0.0.1:5432/postgres"
    await recreate_database(server_url, args.database)
    app_port, emulator_port = free_port(), free_port()
    base = f"http://127.0.0.1:{app_port}"
    env = {
        **os.environ,
        "DATABASE_URL": with_database(server_url, args.database),
        "APP_BASE_URL": base,
        "HOST": "127.0.0.1",
        "PORT": str(app_port),
        "WEB_CONCURRENCY": "1",
        "SESSION_SECRET": "p" * 40,
        "OIDC_ISSUER": "http://127.0.0.1:9/",
        "AUTH0_CLIENT_ID": "bench",
        "AUTH0_CLIENT_SECRET": "bench",
        "STRIPE_SECRET_KEY": "sk_test_bench",
        "STRIPE_WEBHOOK_SECRET": "whsec_bench",
        "STRIPE_API_BASE": f"http://127.0.0.1:{emulator_port}",
        "EVENT_WORKER": "off",
        "DATA_DIR": str(ROOT / ".data" / "bench_portal"),
        "PYTHONPATH": str(ROOT),
    }
    os.environ.update(env)  # before piccolo_conf and the settings are read
    (ROOT / ".data" / "bench_portal").mkdir(parents=True, exist_ok=True)

    from app.auth.tables import User
    from app.billing.tables import Customer
    from app.devstack import apply_migrations, push_demo_catalog
    from app.portal.tables import PortalConfiguration
    from app.settings import Settings
    from app.stripe_gateway import StripeGateway
    from app.web.sessions import _SAVED_AT as SAVED_AT
    from app.web.sessions import session_store

    emulator = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "e2e.stripe_emulator", "--port", str(emulator_port),
        cwd=ROOT, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
    )  # fmt: skip
    app = None
    try:
        await wait_until_up(f"http://127.0.0.1:{emulator_port}/v1/customers", emulator)
        await apply_migrations()
        await push_demo_catalog()
        settings = Settings.from_env()
        gateway = StripeGateway(settings.stripe)
        store = session_store(settings.app)
        people: list[tuple[str, str]] = []  # (session id, Stripe customer id)
        for n in range(args.requests):
            remote = await gateway.create_customer(
                email=f"portal{n}@example.com", name=f"Portal {n}", metadata={}, idempotency_key=f"bench-portal-{n}"
            )
            user = User(subject=f"portal-{n}", email=f"portal{n}@example.com", email_verified=True, name=f"Portal {n}")
            await User.insert(user)
            await Customer.insert(Customer(user=user.id, stripe_customer_id=remote["id"], email=remote.get("email")))
            session_id = f"benchportal{n:021d}"
            # As sign-in leaves it: with the time of its last write, so a request that changes nothing
            # does not write it again (`RotatingSessionBackend.store_in_message`).
            signed_in = {"user_id": user.id, "roles": [], SAVED_AT: int(time.time())}
            await store.set(session_id, json.dumps(signed_in).encode(), expires_in=3600)
            people.append((session_id, remote["id"]))
        configuration = await PortalConfiguration.objects().get(PortalConfiguration.workflow == "payment_update")
        assert configuration is not None

        # BENCH_PROFILE=out.txt runs the app under pyinstrument (a dev dependency) and writes its profile there.
        profile = (
            ["-m", "pyinstrument", "-r", "text", "-o", os.environ["BENCH_PROFILE"]]
            if "BENCH_PROFILE" in os.environ
            else []
        )
        app = await asyncio.create_subprocess_exec(
            sys.executable, *profile, "-m", "app.serve", "--no-migrate",
            cwd=ROOT, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
        )  # fmt: skip
        await wait_until_up(f"{base}/healthz", app)
        import httpx

        endpoint_ms: list[float] = []
        stripe_ms: list[float] = []
        async with httpx.AsyncClient(base_url=base, timeout=30) as client:
            first = await client.get("/plans")
            csrf = first.cookies.get("billing_csrf") or client.cookies.get("billing_csrf")
            for n, (session_id, customer_id) in enumerate(people):
                cookies = {"billing_session": session_id, "billing_csrf": csrf}
                client.cookies.clear()
                started = time.perf_counter()
                answer = await client.post(
                    "/portal/sessions",
                    data={"workflow": "payment_update", "_csrf_token": csrf},
                    cookies=cookies,
                    follow_redirects=False,
                )
                elapsed = (time.perf_counter() - started) * 1000
                if answer.status_code != 303 or not answer.headers.get("location", "").startswith("http"):
                    raise RuntimeError(f"POST /portal/sessions: {answer.status_code} {answer.headers}")
                back = f"{base}/portal/return?ps={n + 10_000}"
                params = {
                    "customer": customer_id,
                    "return_url": back,
                    "configuration": configuration.stripe_configuration_id,
                    "flow_data": {
                        "type": "payment_method_update",
                        "after_completion": {"type": "redirect", "redirect": {"return_url": back}},
                    },
                }
                started = time.perf_counter()
                await gateway.create_portal_session(params)
                direct = (time.perf_counter() - started) * 1000
                if n >= 10:  # the first ones warm up connections and caches on both sides
                    endpoint_ms.append(elapsed)
                    stripe_ms.append(direct)
    finally:
        for process in (app, emulator):
            if process is not None and process.returncode is None:
                process.send_signal(signal.SIGINT)  # uvicorn (and a profiler around it) shut down cleanly
                await asyncio.wait_for(process.wait(), timeout=20)

    count = len(endpoint_ms)
    print(
        f"{count} requests, one at a time, interleaved (load average {os.getloadavg()[0]:.2f} on {os.cpu_count()} CPUs)"
    )
    for label, samples in (("POST /portal/sessions", endpoint_ms), ("the Stripe call alone", stripe_ms)):
        print(f"  {label:<24} p50 {statistics.median(samples):6.1f} ms   p99 {percentile(samples, 0.99):6.1f} ms")
    added_p50 = statistics.median(endpoint_ms) - statistics.median(stripe_ms)
    added_p99 = percentile(endpoint_ms, 0.99) - percentile(stripe_ms, 0.99)
    verdict = "OK" if added_p99 < 10 else "over target"
    print(
        f"  added by the endpoint    p50 {added_p50:6.1f} ms   p99 {added_p99:6.1f} ms   "
        f"(target < 10 ms at p99: {verdict})"
    )


if __name__ == "__main__":
    asyncio.run(main())
