"""`make serve` / `scripts/serve`: the production entry point.

1. Read and validate the settings; under `APP_ENV=production` refuse unsafe ones
   (`app.settings.production_problems`: http base URL, emulator, development secrets, public docs).
2. Apply pending migrations (skipped with `--no-migrate`; `--migrate-only` stops here, for a
   one-shot migration job before several web processes start).
3. Serve `app.asgi:create_app` with `WEB_CONCURRENCY` worker processes under `ASGI_SERVER`
   (granian, default, or uvicorn) on `HOST:PORT`. Granian is the default because its Rust HTTP layer
   answers with steadier latency: on the 2-core bench machine the host API's state endpoint at 32
   concurrent requests printed p99 7.7–8.2 ms under granian against 24.7–27.3 ms under uvicorn at
   the same throughput, and the pages' p99 was lower too (`scripts/bench_state.py`,
   `scripts/bench_pages.py`; README "Performance").
   No stand-ins are started: PostgreSQL, Redis, the identity provider and Stripe come from the
   settings. Proxy headers are handled by the app itself (`TRUSTED_PROXIES`), so both servers are
   started with theirs off.
"""

from __future__ import annotations

import argparse
import asyncio
import logging
import os
import sys
import tempfile

from app.settings import Settings, SettingsError, production_problems

logger = logging.getLogger("app.serve")


# Granian's own lines (workers started, stopped, respawned) go to the root logger that
# `configure_logging` set up, so they share the app's shape (JSON lines in production).
GRANIAN_LOGGING: dict[str, object] = {
    "version": 1,
    "disable_existing_loggers": False,
    "formatters": {},
    "handlers": {},
    "loggers": {"_granian": {"handlers": [], "propagate": True}},
}


def serve_with_granian(settings: Settings) -> None:
    """Serve the app under granian: `WEB_CONCURRENCY` worker processes, failed ones respawned, 20 s for
    requests in flight at shutdown (as uvicorn's graceful shutdown below), no access log of its own."""
    from granian import Granian
    from granian.constants import Interfaces

    app = settings.app
    Granian(
        "app.asgi:create_app",
        factory=True,
        interface=Interfaces.ASGI,
        address=app.host,
        port=app.port,
        workers=app.web_concurrency,
        respawn_failed_workers=True,
        workers_kill_timeout=20,
        log_access=False,
        log_dictconfig=GRANIAN_LOGGING,
    ).serve()


def main(argv: list[str] | None = None) -> None:
    """Entry point of `scripts/serve` (`python -m app.serve`)."""
    parser = argparse.ArgumentParser(prog="scripts/serve", description=__doc__.split("\n\n")[0])
    parser.add_argument("--migrate-only", action="store_true", help="apply migrations, then exit")
    parser.add_argument("--no-migrate", action="store_true", help="do not apply migrations first")
    args = parser.parse_args(argv)
    try:
        settings = Settings.from_env()
    except SettingsError as exc:
        sys.exit(str(exc))
    if settings.app.is_production and (problems := production_problems(settings)):
        sys.exit("Refusing to start in production:\n  - " + "\n  - ".join(problems))
    if not settings.database.url:
        sys.exit("DATABASE_URL is required (scripts/serve starts no embedded database; `make run` does)")

    from app.web.logs import configure_logging

    configure_logging(settings.app)
    if not args.no_migrate:
        from app.devstack import apply_migrations

        asyncio.run(apply_migrations())
        logger.info("Migrations applied")
    if args.migrate_only:
        return
    if settings.app.metrics and settings.app.web_concurrency > 1 and not os.environ.get("PROMETHEUS_MULTIPROC_DIR"):
        # Each worker process writes its series here; /metrics adds them up (prometheus_client).
        os.environ["PROMETHEUS_MULTIPROC_DIR"] = tempfile.mkdtemp(prefix="billing-metrics-")
    logger.info(
        "Serving %s on %s:%d with %d %s worker(s)",
        settings.app.base_url,
        settings.app.host,
        settings.app.port,
        settings.app.web_concurrency,
        settings.app.server,
    )
    if settings.app.server == "granian":
        serve_with_granian(settings)
        return
    import uvicorn

    uvicorn.run(
        "app.asgi:create_app",
        factory=True,
        host=settings.app.host,
        port=settings.app.port,
        workers=settings.app.web_concurrency,
        proxy_headers=False,
        server_header=False,
        access_log=False,
        log_config=None,
        timeout_graceful_shutdown=20,
    )


if __name__ == "__main__":
    main()
