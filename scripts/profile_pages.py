"""What a page costs in CPU, in-process: no HTTP server, no load generator, one request at a time.

    uv run python scripts/profile_pages.py [--seed] [--requests 500] [--profile] [--floor] [--bypass] [PATH ...]

Builds the app with `create_app()` under the production settings `scripts/bench_pages.py` uses
(file sessions under `.data/profile_pages`, `APP_ENV=production`), runs its lifespan, and drives
each page (default: `/account`, `/plans`, `/billing/history`, `/portal`) straight through the ASGI
app as the signed-in person of `bench_pages`. `--seed` first recreates the database
`billing_profile_pages` on the server of `DATABASE_URL` with `bench_pages`' data (needed once).

Prints, per page, requests per second (wall clock, including each PostgreSQL round trip) and the
CPU time per request: the mean, and the best of batches of 50 (less disturbed by other work on a
shared machine; compare versions by interleaving runs), on uvloop as the servers run the app.
`--profile` also writes a cProfile listing (sorted by own time) to `.data/profile_pages/cprofile.txt`.
`--floor` also measures, first, two routes added for the run that show what the framework alone
costs a signed-in page: `/_floor/word` (the login guard, then a one-word answer: Litestar's request
cycle with the session, CSRF, the access line and the security headers) and `/_floor/layout` (the
same with an empty page in the site's layout, `base.html`). `--bypass` also measures, last,
`/_bypass/account`: the account page served by a bare ASGI function inside the request-id and
access-log layer, doing only what the page needs (the session file read, the person's one query,
the same template and context) without Litestar's routing, middleware, guard, dependency injection
or response objects: how much of a page Litestar's request cycle takes (a measurement only; the
app has no such route).
"""

from __future__ import annotations

import argparse
import cProfile
import io
import os
import pstats
import sys
import time
from pathlib import Path
from typing import Any

import uvloop
from litestar import get
from litestar.response import Template

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from scripts import bench_pages  # noqa: E402

DATABASE = "billing_profile_pages"
BATCH = 50


async def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("paths", nargs="*", default=list(bench_pages.PAGES))
    parser.add_argument("--seed", action="store_true", help="recreate and seed the database first")
    parser.add_argument("--requests", type=int, default=500, help="requests per page (a multiple of 50)")
    parser.add_argument("--profile", action="store_true", help="write a cProfile listing")
    parser.add_argument("--floor", action="store_true", help="also measure the framework's floor (see above)")
    parser.add_argument("--bypass", action="store_true", help="also measure the account page without Litestar's cycle")
    parser.add_argument("--dump", type=Path, help="write each page's HTML (plain, HTMX, German) to this folder")
    args = parser.parse_args()

    server_url = os.environ.get("DATABASE_URL") or "postgresql://postgres@127.0.0.1:5432/postgres"
    database_url = bench_pages.with_database(server_url, DATABASE)
    data_dir = ROOT / ".data" / "profile_pages"
    (data_dir / "sessions").mkdir(parents=True, exist_ok=True)
    env = {
        "DATABASE_URL": database_url,
        "APP_ENV": "production",
        "APP_BASE_URL": "https://billing.bench.example",
        "SESSION_SECRET": "profile-pages-k3J9sQ2vLm8Xp4Zt7Wc1Ry6Ub0Na5Hd2Fe",
        "OIDC_ISSUER": "https://login.bench.example/",
        "AUTH0_CLIENT_ID": "bench",
        "AUTH0_CLIENT_SECRET": "bench",
        "STRIPE_SECRET_KEY": "sk_test_bench",
        "STRIPE_WEBHOOK_SECRET": bench_pages.WEBHOOK_SECRET,
        "EVENT_WORKER": "off",
        "LOG_LEVEL": "INFO",
        "DATA_DIR": str(data_dir),
    }
    os.environ.update(env)
    os.environ.pop("REDIS_URL", None)
    import asyncpg

    if args.seed:
        await bench_pages.recreate_database(server_url, DATABASE)
        from app.devstack import apply_migrations

        await apply_migrations()
        await bench_pages.seed(database_url)
    connection = await asyncpg.connect(database_url)
    try:
        user_id = int(await connection.fetchval("SELECT id FROM \"user\" WHERE subject = 'bench-dana'"))
    finally:
        await connection.close()
    await bench_pages.write_session(env, user_id)

    import logging

    from app.asgi import create_app

    app = create_app()
    paths = list(args.paths)
    if args.floor:
        paths = [*add_floor_routes(app), *paths]
    if args.bypass:
        paths = [*paths, add_bypass(app)]
    for handler in logging.getLogger().handlers:  # each access-log line is still made, then dropped
        if isinstance(handler, logging.StreamHandler):
            handler.setStream(open(os.devnull, "w"))  # noqa: ASYNC230 (once, before any request)
    cookie = f"billing_session={bench_pages.SESSION_ID}".encode()
    csrf_cookie = b""

    async def get(path: str, extra: tuple[tuple[bytes, bytes], ...] = (), body: list[bytes] | None = None) -> int:
        scope = {
            "type": "http", "asgi": {"version": "3.0"}, "http_version": "1.1", "method": "GET",
            "scheme": "http", "path": path, "raw_path": path.encode(), "query_string": b"", "root_path": "",
            "headers": [(b"host", b"billing.bench.example"), (b"cookie", cookie + csrf_cookie), *extra],
            "client": ("127.0.0.1", 50000), "server": ("127.0.0.1", 80), "state": {},
        }  # fmt: skip
        statuses: list[int] = []

        async def receive() -> dict[str, object]:
            return {"type": "http.request", "body": b"", "more_body": False}

        async def send(message: dict[str, object]) -> None:
            nonlocal csrf_cookie
            if message["type"] == "http.response.start":
                statuses.append(int(message["status"]))  # type: ignore[call-overload]
                for name, value in message["headers"]:  # type: ignore[attr-defined]
                    if name == b"set-cookie" and value.startswith(b"billing_csrf=") and not csrf_cookie:
                        csrf_cookie = b"; " + value.split(b";")[0]
            elif body is not None and message["type"] == "http.response.body":
                body.append(message.get("body", b""))  # type: ignore[arg-type]

        await app(scope, receive, send)  # type: ignore[arg-type]
        return statuses[0]

    async with app.lifespan():
        # As bench_pages does: a browser sends back the CSRF cookie it got on its first page.
        await get(args.paths[0])
        if args.dump:
            args.dump.mkdir(parents=True, exist_ok=True)
            token = csrf_cookie.split(b"=", 1)[1]
            variants = {"plain": (), "htmx": ((b"hx-request", b"true"),), "de": ((b"accept-language", b"de"),)}
            for path in args.paths:
                for variant, extra in variants.items():
                    chunks: list[bytes] = []
                    status = await get(path, extra, chunks)
                    html = b"".join(chunks).replace(token, b"CSRF-TOKEN")
                    name = path.strip("/").replace("/", "_") + f".{variant}.html"
                    (args.dump / name).write_bytes(f"{status}\n".encode() + html)
            print(f"HTML written to {args.dump}")
        for path in paths:  # warm-up: templates compiled, caches and pool filled
            for _ in range(20):
                if (status := await get(path)) != 200:
                    raise RuntimeError(f"GET {path}: {status}")
        profiler = cProfile.Profile() if args.profile else None
        if profiler:
            profiler.enable()
        for path in paths:
            started, cpu_started, best = time.perf_counter(), time.process_time(), float("inf")
            for _ in range(max(1, args.requests // BATCH)):
                batch_started = time.process_time()
                for _ in range(BATCH):
                    await get(path)
                best = min(best, (time.process_time() - batch_started) / BATCH)
            count = max(1, args.requests // BATCH) * BATCH
            wall, cpu = time.perf_counter() - started, time.process_time() - cpu_started
            print(f"{path:<20} {count / wall:7.0f} req/s   CPU per request: mean {cpu / count * 1000:5.2f} ms, "
                  f"best batch {best * 1000:5.2f} ms")  # fmt: skip
        if profiler:
            profiler.disable()
            out = io.StringIO()
            pstats.Stats(profiler, stream=out).sort_stats(os.environ.get("PROFILE_SORT", "tottime")).print_stats(
                int(os.environ.get("PROFILE_N", "60"))
            )
            (data_dir / "cprofile.txt").write_text(out.getvalue())
            print(f"cProfile listing: {data_dir / 'cprofile.txt'}")


FLOOR_LAYOUT = '{% extends "base.html" %}{% block content %}<p>.</p>{% endblock %}'


def add_floor_routes(app: Any) -> list[str]:
    """Register `/_floor/word` and `/_floor/layout` on `app` (for `--floor`); returns their paths.

    The layout page's template is served from memory, ahead of the app's template folder."""
    from jinja2 import ChoiceLoader, DictLoader

    from app.web.guards import requires_login

    environment = app.template_engine.engine
    environment.loader = ChoiceLoader([DictLoader({"_floor/layout.html": FLOOR_LAYOUT}), environment.loader])

    @get("/_floor/word", guards=[requires_login], cache=False, sync_to_thread=False)
    def word() -> str:
        return "ok"

    @get("/_floor/layout", guards=[requires_login], cache=False, sync_to_thread=False)
    def layout() -> Template:
        return Template(template_name="_floor/layout.html")

    app.register(word)
    app.register(layout)
    return ["/_floor/word", "/_floor/layout"]


def add_bypass(app: Any) -> str:
    """Put `/_bypass/account` (see `--bypass`) in front of the app, inside its request-id and
    access-log layer; returns its path. It answers only a request carrying both the session and the
    CSRF cookie (what `bench_pages` sends after its first page) and has no error handling."""
    import html

    import msgspec
    from litestar._parsers import parse_cookie_string
    from litestar.utils.scope.state import ScopeState

    from app.accounts.controller import account_context
    from app.billing.service import person_summary
    from app.web.i18n import remember_user_language

    outer = app.asgi_handler  # RequestContextMiddleware (app.web.security.wrap_app)
    inner, store, template = (
        outer.app,
        app.stores.get("sessions"),
        app.template_engine.get_template("accounts/show.html"),
    )

    async def bypass(scope: dict[str, Any], receive: Any, send: Any) -> None:
        if scope["path"] != "/_bypass/account":
            await inner(scope, receive, send)
            return
        header = next((value for name, value in scope["headers"] if name == b"cookie"), b"").decode("latin-1")
        cookies = parse_cookie_string(header)
        session = msgspec.json.decode(await store.get(cookies["billing_session"]) or b"{}")
        session.pop("_saved_at", None)
        scope.update(session=session, app=app, litestar_app=app)
        ScopeState.from_scope(scope).csrf_token = cookies["billing_csrf"]  # type: ignore[arg-type]
        request = app.request_class(scope, receive)
        scope["state"]["branding"] = await app.state.branding.get()
        person = await person_summary(session["user_id"])
        assert person is not None
        remember_user_language(request, person.user.locale)
        csrf_input = f'<input type="hidden" name="_csrf_token" value="{html.escape(cookies["billing_csrf"])}" />'
        body = template.render(**account_context(person), request=request, csrf_input=csrf_input).encode()
        headers = [(b"content-type", b"text/html; charset=utf-8"), (b"content-length", str(len(body)).encode())]
        await send({"type": "http.response.start", "status": 200, "headers": headers})
        await send({"type": "http.response.body", "body": body})

    outer.app = bypass
    return "/_bypass/account"


if __name__ == "__main__":
    uvloop.run(main())  # the loop granian and uvicorn run the app on (uvloop is installed with them)
