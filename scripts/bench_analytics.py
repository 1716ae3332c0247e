"""Benchmark the portal analytics page's figures over 1,000,000 portal sessions.

    uv run python scripts/bench_analytics.py [--runs 50] [--database billing_bench_analytics]

Drops and recreates `--database` on the PostgreSQL server of `DATABASE_URL` (default
`postgresql://postgres@127.0.0.1:5432/postgres`), applies the migrations, seeds 5,000 people,
1,000,000 portal sessions spread evenly over the last 365 days (five workflows, 80 % returned after
0–10 minutes, 30 % changed something) and 20,000 canceled subscriptions with Stripe's
cancellation details, then times what `/admin/analytics` computes for the 30- and 90-day presets:
`app.admin.analytics_service.period_figures` (seven aggregate queries on the pool, run side by side)
plus the four SVG charts, and the whole page (`GET /admin/analytics?days=N` through the app in
process: session, role guard, figures, template) for a signed-in admin. Prints p50/p99 in
milliseconds against the 300 ms p50 target.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import statistics
import sys
import tempfile
import time
from collections.abc import Awaitable, Callable
from pathlib import Path
from urllib.parse import urlsplit

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from scripts.benchdb import recreate_database, with_database

SESSIONS = 1_000_000
USERS = 5_000
CANCELED = 20_000
DAYS = 365
WORKFLOWS = ("payment_update", "subscription_management", "cancellation_process", "billing_review", "profile_update")
REASONS = ("too_expensive", "missing_features", "switched_service", "unused", "other")


async def seed() -> None:
    """People, customers, a catalogue, 1,000,000 portal sessions and 20,000 cancellations."""
    from piccolo_conf import DB

    workflows = "ARRAY[" + ",".join(f"'{w}'" for w in WORKFLOWS) + "]"
    reasons = "ARRAY[" + ",".join(f"'{r}'" for r in REASONS) + "]"
    # Only constants of this script are interpolated into the SQL below.
    await DB.run_ddl(
        'INSERT INTO "user" (subject, email, email_verified, name, roles, created_at, last_login_at) '  # noqa: S608
        "SELECT 'bench-' || g, 'bench' || g || '@example.com', true, 'Bench ' || g, ARRAY[]::varchar[], now(), now() "
        f"FROM generate_series(1, {USERS}) AS g"
    )
    await DB.run_ddl(
        "INSERT INTO customer (user_id, stripe_customer_id, deleted, created_at) "
        "SELECT id, 'cus_bench_' || id, false, now() FROM \"user\""
    )
    await DB.run_ddl(
        "INSERT INTO plan (key, stripe_product_id, name, description, features, sort_order, active, synced_at) VALUES "
        " ('starter', 'prod_s', 'Starter', '', '[]', 1, true, now()), "
        "('pro', 'prod_p', 'Pro', '', '[]', 2, true, now()), "
        "('business', 'prod_b', 'Business', '', '[]', 3, true, now())"
    )
    await DB.run_ddl(
        "INSERT INTO price (stripe_price_id, plan_id, currency, unit_amount_cents, type, interval, interval_count, "
        "active, synced_at) "
        "SELECT 'price_' || p.key, p.id, 'usd', 1000, 'recurring', 'month', 1, true, now() FROM plan p"
    )
    await DB.run_ddl(
        f"""
        INSERT INTO portal_session (user_id, workflow, stripe_session_id, before, outcome, created_at, returned_at)
        SELECT u.min_id + g % {USERS}, ({workflows})[1 + g % 5], 'bps_bench_' || g, '{{}}'::jsonb,
               CASE WHEN g % 10 < 3 THEN 'changed' WHEN g % 10 < 8 THEN 'no_changes' END,
               ts, CASE WHEN g % 10 < 8 THEN ts + (g % 600) * interval '1 second' END
        FROM generate_series(1, {SESSIONS}) AS g,
             (SELECT min(id) AS min_id FROM "user") AS u,
             LATERAL (SELECT now() - (g::float / {SESSIONS} * {DAYS}) * interval '1 day' AS ts) AS t
        """  # noqa: S608
    )
    await DB.run_ddl(
        f"""
        INSERT INTO subscription (stripe_subscription_id, customer_id, user_id, status, price_id, stripe_price_id,
            quantity, cancel_at_period_end, canceled_at, cancellation_reason, cancellation_feedback, stripe_updated_at,
            created_at)
        SELECT 'sub_bench_' || g, c.id, c.user_id, 'canceled', pr.id, pr.stripe_price_id, 1, false,
               now() - (g::float / {CANCELED} * {DAYS}) * interval '1 day', 'cancellation_requested',
               ({reasons})[1 + g % 5], now(), now()
        FROM generate_series(1, {CANCELED}) AS g
        JOIN customer c ON c.id = (SELECT min(id) FROM customer) + g % {USERS}
        JOIN price pr ON pr.id = (SELECT min(id) FROM price) + g % 3
        """  # noqa: S608
    )
    await DB.run_ddl("VACUUM ANALYZE")


def percentile(samples: list[float], q: float) -> float:
    """The `q` quantile (0–1) of `samples`, nearest-rank."""
    ordered = sorted(samples)
    return ordered[min(len(ordered) - 1, max(0, round(q * len(ordered)) - 1))]


async def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--runs", type=int, default=50)
    parser.add_argument("--database", default="billing_bench_analytics")
    args = parser.parse_args()

    server_url = os.environ.get("DATABASE_URL") or "postgresql://postgres@127.0.0.1:5432/postgres"
    await recreate_database(server_url, args.database)
    os.environ["DATABASE_URL"] = with_database(server_url, args.database)  # before piccolo_conf is imported

    from app.admin.analytics_service import period_figures, period_for
    from app.admin.charts import bar_chart, column_chart
    from app.devstack import apply_migrations
    from piccolo_conf import DB

    await apply_migrations()
    started = time.perf_counter()
    await seed()
    print(
        f"seeded {SESSIONS:,} portal sessions and {CANCELED:,} cancellations in {time.perf_counter() - started:.1f} s"
    )

    async def page(days: int) -> None:
        figures = await period_figures(period_for(days, None, None, "Europe/Paris"))
        bar_chart("w", figures.by_workflow, "workflow", "sessions")
        column_chart("d", figures.by_day, "day", "sessions")
        bar_chart("r", figures.cancellations_by_reason, "reason", "cancellations")
        bar_chart("p", figures.cancellations_by_plan, "plan", "cancellations")

    async def timed(call: Callable[[], Awaitable[object]]) -> list[float]:
        for _ in range(3):
            await call()
        samples = []
        for _ in range(args.runs):
            t0 = time.perf_counter()
            await call()
            samples.append((time.perf_counter() - t0) * 1000)
        return samples

    results: dict[str, list[float]] = {}
    await DB.start_connection_pool(min_size=7, max_size=7)
    try:
        for days in (30, 90):
            results[f"figures, {days} days"] = await timed(lambda days=days: page(days))  # type: ignore[misc]
        sample = await period_figures(period_for(30, None, None, "Europe/Paris"))
    finally:
        await DB.close_connection_pool()

    # The whole page through the app (its own pool, opened by its lifespan), as a signed-in admin.
    from litestar.testing import AsyncTestClient

    from app.asgi import create_app
    from app.settings import Settings
    from app.web.sessions import session_config

    settings = Settings.from_env(
        {
            "SESSION_SECRET": "b" * 40,
            "DATA_DIR": str(Path(tempfile.mkdtemp())),
            "OIDC_ISSUER": "http://127.0.0.1:9",
            "AUTH0_CLIENT_ID": "bench",
            "AUTH0_CLIENT_SECRET": "bench",
            "STRIPE_SECRET_KEY": "sk_test_bench",
            "STRIPE_WEBHOOK_SECRET": "whsec_bench",
            "EVENT_WORKER": "off",
        }
    )
    admin = await DB._run_in_new_connection(
        'INSERT INTO "user" (subject, email, email_verified, roles, created_at, last_login_at) '
        "VALUES ('bench-admin', 'admin@example.com', true, ARRAY['admin']::varchar[], now(), now()) RETURNING id"
    )
    app = create_app(settings)
    async with AsyncTestClient(app=app, session_config=session_config(settings.app)) as client:
        await client.set_session_data({"user_id": admin[0]["id"], "roles": ["admin"]})

        async def http_page(days: int) -> None:
            response = await client.get(f"/admin/analytics?days={days}")
            assert response.status_code == 200 and "Sessions per workflow" in response.text, response.status_code

        for days in (30, 90):
            results[f"page, {days} days"] = await timed(lambda days=days: http_page(days))  # type: ignore[misc]

    print(f"portal analytics, {args.runs} runs each, PostgreSQL at {urlsplit(server_url).hostname}")
    print(f"  (30 days: {sample.sessions:,} sessions, {sample.unique_customers:,} customers)")
    for label, samples in results.items():
        p50, p99 = statistics.median(samples), percentile(samples, 0.99)
        verdict = "OK" if p50 < 300 else "over target"
        print(f"  {label:<17} p50 {p50:7.1f} ms   p99 {p99:7.1f} ms   (target p50 < 300 ms: {verdict})")


if __name__ == "__main__":
    asyncio.run(main())
