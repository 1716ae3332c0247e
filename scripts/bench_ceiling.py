"""The "ceiling" of `scripts/bench_pages.py`: the same stack as the app doing the least work possible.

    DATABASE_URL=postgresql://… WEBHOOK_SECRET=whsec_… python scripts/bench_ceiling.py --port 8201

Litestar + asyncpg + Jinja, one process under the app's server (`ASGI_SERVER`: granian by default, or
uvicorn with uvloop and httptools), like the app:

- `GET /fortunes`: TechEmpower's "fortunes" test: one query (every row of `fortune`), one row added
  in memory, sorted, one Jinja render of an HTML table.
- `POST /webhooks/raw`: check a `Stripe-Signature` (HMAC-SHA256 of `t.body`, 300 s tolerance), read the
  event id, one `INSERT … ON CONFLICT DO NOTHING` of the raw body into `bench_raw_event`, answer
  `{"received": true}`.

`create_tables(connection)` makes and fills both tables (called by the benchmark before it starts this).
"""

from __future__ import annotations

import argparse
import hashlib
import hmac
import json
import os
import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

import asyncpg
import jinja2
from litestar import Litestar, MediaType, Request, Response, get, post

FORTUNES = [
    "fortune: No such file or directory",
    "A computer scientist is someone who fixes things that aren't broken.",
    "After enough decimal places, nobody gives a damn.",
    "A bad random number generator: 1, 1, 1, 1, 1, 4.33e+67, 1, 1, 1",
    "A computer program does what you tell it to do, not what you want it to do.",
    "Emacs is a nice operating system, but I prefer UNIX. — Tom Christaensen",
    "Any program that runs right is obsolete.",
    "A list is only as strong as its weakest link. — Donald Knuth",
    "Feature: A bug with seniority.",
    "Computers make very fast, very accurate mistakes.",
    '<script>alert("This should not be displayed in a browser alert box.");</script>',
    "フレームワークのベンチマーク",
]

TEMPLATE = jinja2.Environment(autoescape=True).from_string(
    "<!DOCTYPE html><html><head><title>Fortunes</title></head><body><table>"
    "<tr><th>id</th><th>message</th></tr>"
    "{% for id, message in fortunes %}<tr><td>{{ id }}</td><td>{{ message }}</td></tr>{% endfor %}"
    "</table></body></html>"
)


async def create_tables(connection: asyncpg.Connection) -> None:
    """`fortune` (12 rows) and an empty `bench_raw_event`, dropped first if they exist."""
    await connection.execute(
        "DROP TABLE IF EXISTS fortune; DROP TABLE IF EXISTS bench_raw_event;"
        "CREATE TABLE fortune (id integer PRIMARY KEY, message text NOT NULL);"
        "CREATE TABLE bench_raw_event (id serial PRIMARY KEY, stripe_event_id varchar(255) UNIQUE NOT NULL,"
        " payload jsonb NOT NULL, received_at timestamptz NOT NULL DEFAULT now())"
    )
    await connection.executemany(
        "INSERT INTO fortune (id, message) VALUES ($1, $2)", list(enumerate(FORTUNES, start=1))
    )


def create_app(database_url: str, webhook_secret: str, pool_size: int = 10) -> Litestar:
    """The ceiling app (see the module docstring)."""
    pool: asyncpg.Pool | None = None
    secret = webhook_secret.encode()

    @asynccontextmanager
    async def lifespan(_: Litestar) -> AsyncIterator[None]:
        nonlocal pool
        pool = await asyncpg.create_pool(database_url, min_size=1, max_size=pool_size)
        try:
            yield
        finally:
            await pool.close()

    @get("/fortunes", media_type=MediaType.HTML)
    async def fortunes() -> str:
        assert pool is not None
        rows = [tuple(r) for r in await pool.fetch("SELECT id, message FROM fortune")]
        rows.append((0, "Additional fortune added at request time."))
        rows.sort(key=lambda r: r[1])
        return TEMPLATE.render(fortunes=rows)

    @post("/webhooks/raw", status_code=200)
    async def raw_webhook(request: Request[Any, Any, Any]) -> Response[dict[str, Any]]:
        assert pool is not None
        body = await request.body()
        header = request.headers.get("stripe-signature") or ""
        parts = dict(p.split("=", 1) for p in header.split(",") if "=" in p)
        timestamp = parts.get("t", "")
        expected = hmac.new(secret, timestamp.encode() + b"." + body, hashlib.sha256).hexdigest()
        if (
            not timestamp.isdigit()
            or abs(time.time() - int(timestamp)) > 300
            or not hmac.compare_digest(expected, parts.get("v1", ""))
        ):
            return Response({"error": "invalid signature"}, status_code=400)
        event_id = json.loads(body)["id"]
        await pool.execute(
            "INSERT INTO bench_raw_event (stripe_event_id, payload) VALUES ($1, $2::jsonb)"
            " ON CONFLICT (stripe_event_id) DO NOTHING",
            event_id,
            body.decode(),
        )
        return Response({"received": True})

    return Litestar(route_handlers=[fortunes, raw_webhook], lifespan=[lifespan], openapi_config=None, debug=False)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, required=True)
    args = parser.parse_args()
    if os.environ.get("ASGI_SERVER", "granian") == "granian":  # the app's default (app/serve.py)
        # As app/serve.py runs the app under ASGI_SERVER=granian: one process, no access log.
        from granian import Granian
        from granian.constants import Interfaces

        Granian(
            "scripts.bench_ceiling:app_from_env",
            address=args.host,
            port=args.port,
            interface=Interfaces.ASGI,
            workers=1,
            factory=True,
            log_access=False,
        ).serve()
        return
    import uvicorn

    # The app's own settings in app/serve.py: uvloop and httptools (uvicorn's "auto"), no access log.
    uvicorn.run(app_from_env(), host=args.host, port=args.port, access_log=False, log_config=None, server_header=False)


def app_from_env() -> Litestar:
    """The ceiling app for `DATABASE_URL` and `WEBHOOK_SECRET` (the factory granian imports)."""
    return create_app(os.environ["DATABASE_URL"], os.environ["WEBHOOK_SECRET"])


if __name__ == "__main__":
    main()
