"""Benchmark the payment-history page query: page 1 against a page 2,000 rows deep.

    uv run python scripts/bench_history.py [--runs 1000] [--size 10] [--depth 2000]

Drops and recreates the database `billing_bench` on the PostgreSQL server of `DATABASE_URL`
(default `postgresql://postgres@127.0.0.1:5432/postgres`), applies the migrations, seeds
1,000,000 payments (100,000 for one user, the rest spread over 900 other users, many sharing a
timestamp) with `INSERT … SELECT generate_series`, then times `app.history.service.fetch_page`
(the function the page calls) `--runs` times for page 1 and for the page after the cursor
`--depth` rows deep, and prints p50/p99 in milliseconds and the deep/page-1 ratio (target ≤ 1.2).
"""

from __future__ import annotations

import argparse
import asyncio
import os
import statistics
import sys
import time
from collections.abc import Awaitable, Callable
from pathlib import Path
from urllib.parse import urlsplit, urlunsplit

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

BENCH_DB = "billing_bench"
TOTAL_PAYMENTS = 1_000_000
MAIN_USER_PAYMENTS = 100_000
OTHER_USERS = 900


def with_database(url: str, name: str) -> str:
    """`url` pointing at database `name` instead."""
    parts = urlsplit(url)
    return urlunsplit(parts._replace(path=f"/{name}"))


async def recreate_database(server_url: str) -> None:
    """DROP (forcing other sessions off) and CREATE `billing_bench` on the server of `server_url`."""
    import asyncpg

    connection = await asyncpg.connect(with_database(server_url, "postgres"))
    try:
        await connection.execute(f'DROP DATABASE IF EXISTS "{BENCH_DB}" WITH (FORCE)')
        await connection.execute(f'CREATE DATABASE "{BENCH_DB}"')
    finally:
        await connection.close()


async def seed() -> int:
    """Users and 1,000,000 payments; returns the main user's id."""
    from piccolo_conf import DB

    # Only constants of this script are interpolated into the SQL below.
    await DB.run_ddl(
        'INSERT INTO "user" (subject, email, email_verified, name, roles, created_at, last_login_at) '  # noqa: S608
        "SELECT 'bench-' || g, 'bench' || g || '@example.com', true, 'Bench ' || g, ARRAY[]::varchar[], now(), now() "
        f"FROM generate_series(0, {OTHER_USERS}) AS g"
    )
    main_user = (await DB.run_ddl("SELECT id FROM \"user\" WHERE subject = 'bench-0'"))[0]["id"]
    # g ≤ 100,000 belong to the main user; the rest round-robin over the other users. Timestamps step
    # one minute every four payments, so runs of four share a created_at (the tie-breaking case).
    await DB.run_ddl(
        f"""
        INSERT INTO payment_transaction (
            user_id, stripe_payment_intent_id, stripe_charge_id, stripe_invoice_id, stripe_customer_id,
            amount_cents, amount_refunded_cents, currency, status, payment_method, payment_method_last4,
            description, failure_reason, metadata, hosted_invoice_url, invoice_pdf_url, receipt_url,
            paid_at, created_at, updated_at)
        SELECT CASE WHEN g <= {MAIN_USER_PAYMENTS} THEN {main_user} ELSE {main_user} + 1 + g % {OTHER_USERS} END,
               'pi_bench_' || g, 'ch_bench_' || g, 'in_bench_' || g, 'cus_bench',
               1000 + g % 5000, CASE WHEN g % 20 = 2 THEN 1000 + g % 5000 ELSE 0 END,
               CASE WHEN g % 7 = 0 THEN 'eur' ELSE 'usd' END,
               CASE g % 20 WHEN 0 THEN 'failed' WHEN 1 THEN 'pending' WHEN 2 THEN 'refunded' ELSE 'succeeded' END,
               'visa', '4242', 'Pro plan (monthly)', CASE WHEN g % 20 = 0 THEN 'Your card was declined.' END,
               jsonb_build_object(), 'https://invoice.example/' || g, 'https://invoice.example/' || g || '.pdf',
               'https://receipt.example/' || g,
               ts, ts, ts
        FROM generate_series(1, {TOTAL_PAYMENTS}) AS g,
             LATERAL (SELECT timestamptz '2026-11-23 00:00+00' - (g / 4) * interval '1 minute' AS ts) AS t
        """  # noqa: S608
    )
    await DB.run_ddl("VACUUM ANALYZE payment_transaction")
    return int(main_user)


def percentile(samples: list[float], q: float) -> float:
    """The `q` quantile (0–1) of `samples`, nearest-rank."""
    ordered = sorted(samples)
    return ordered[min(len(ordered) - 1, max(0, round(q * len(ordered)) - 1))]


async def time_interleaved(calls: list[Callable[[], Awaitable[object]]], runs: int) -> list[list[float]]:
    """Milliseconds per awaited call of each of `calls`, after 20 warm-up rounds.

    The calls take turns (in alternating order) so that drift in the machine's speed during the
    run weighs on all of them alike.
    """
    for _ in range(20):
        for call in calls:
            await call()
    samples: list[list[float]] = [[] for _ in calls]
    for run in range(runs):
        order = list(enumerate(calls))
        for index, call in order if run % 2 == 0 else reversed(order):
            start = time.perf_counter()
            await call()
            samples[index].append((time.perf_counter() - start) * 1000)
    return samples


async def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--runs", type=int, default=1000)
    parser.add_argument("--size", type=int, default=10)
    parser.add_argument("--depth", type=int, default=2000)
    args = parser.parse_args()

    server_url = os.environ.get("DATABASE_URL") or "postgresql://postgres@127.0.0.1:5432/postgres"
    await recreate_database(server_url)
    os.environ["DATABASE_URL"] = with_database(server_url, BENCH_DB)  # before piccolo_conf is imported

    from app.devstack import apply_migrations
    from app.history.service import HistoryFilters, Position, fetch_page
    from piccolo_conf import DB

    await apply_migrations()
    started = time.perf_counter()
    user_id = await seed()
    print(f"seeded {TOTAL_PAYMENTS:,} payments ({MAIN_USER_PAYMENTS:,} for user {user_id}) "
          f"in {time.perf_counter() - started:.1f} s")  # fmt: skip

    await DB.start_connection_pool(min_size=1, max_size=2)
    try:
        filters = HistoryFilters()
        # Reach the deep cursor the way a person would: "Next" page after page.
        after: Position | None = None
        for _ in range(args.depth // args.size):
            page = await fetch_page(user_id, filters, size=args.size, after=after)
            after = page.older_position
        assert after is not None
        deep = await fetch_page(user_id, filters, size=args.size, after=after)
        assert len(deep.rows) == args.size and deep.has_newer and deep.has_older

        first_ms, deep_ms = await time_interleaved(
            [
                lambda: fetch_page(user_id, filters, size=args.size),
                lambda: fetch_page(user_id, filters, size=args.size, after=after),
            ],
            args.runs,
        )
    finally:
        await DB.close_connection_pool()

    rows: list[tuple[str, list[float]]] = [("page 1", first_ms), (f"{args.depth:,} rows deep", deep_ms)]
    print(f"fetch_page(size={args.size}), {args.runs} runs each, PostgreSQL at {urlsplit(server_url).hostname}")
    for label, samples in rows:
        print(f"  {label:<16} p50 {statistics.median(samples):6.3f} ms   p99 {percentile(samples, 0.99):6.3f} ms")
    p50_ratio = statistics.median(deep_ms) / statistics.median(first_ms)
    p99_ratio = percentile(deep_ms, 0.99) / percentile(first_ms, 0.99)
    verdict = "OK" if p50_ratio <= 1.2 else "over target"
    print(f"  deep / page 1    p50 ×{p50_ratio:.2f}   p99 ×{p99_ratio:.2f}   (target ≤ 1.2: {verdict})")


if __name__ == "__main__":
    asyncio.run(main())
