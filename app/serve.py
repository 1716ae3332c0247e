"""`make serve` / `scripts/serve`: the production entry point.

1. Read and validate the settings; under `APP_ENV=production` refuse unsafe ones
   (`app.settings.production_problems`: http base URL, emulator, development secrets, public docs).
2. Apply pending migrations (skipped with `--no-migrate`; `--migrate-only` stops here, for a
   one-shot migration job before several web processes start).
3. Serve `app.asgi:create_app` with `WEB_CONCURRENCY` worker processes under `ASGI_SERVER`
   (uvicorn, default, or granian) on `HOST:PORT`. No stand-ins are started: PostgreSQL, Redis,
   the identity provider and Stripe come from the settings. Proxy headers are handled by the app
   itself (`TRUSTED_PROXIES`), so both servers are started with theirs off.
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


def server_command(settings: Settings) -> list[str]:
    """The granian command line for `settings` (uvicorn runs in this process instead)."""
    app = settings.app
    return [
        sys.executable,
        "-m",
        "granian",
        "--interface",
        "asgi",
        "--factory",
        "--host",
        app.host,
        "--port",
        str(app.port),
        "--workers",
        str(app.web_concurrency),
        "--respawn-failed-workers",
        "--no-access-log",
        "app.asgi:create_app",
    ]


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
        command = server_command(settings)
        os.execv(command[0], command)  # noqa: S606 (our own interpreter and arguments)
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
