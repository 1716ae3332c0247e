"""Several processes on one database: the production entry (`scripts/serve`) twice, as two web
containers would run, plus one standalone `litestar billing worker`, against PostgreSQL and Redis.

A round-robin proxy (the load balancer) sends each request to the next web process in turn, so a
browser journey (sign in, subscribe through the emulator's Checkout, see the account) keeps
changing process and only works if sessions live in Redis. Then a burst of signed webhooks, each
delivered twice and spread over both processes, must be stored once and applied once by the
standalone worker. Everything is module-scoped: the processes start once (CI time stays small).
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import os
import secrets
import subprocess
import sys
import time
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit, urlunsplit

import asyncpg
import httpx
import pytest
import redis
from playwright.async_api import Browser, expect

from app.devstack import wait_for_http
from app.settings import PROJECT_ROOT
from e2e.pages.app import AccountPage, PlansPage
from e2e.pages.stripe import CARDS, EmulatorCheckout
from tests.support.oidc_provider import ScriptedProvider
from tests.support.servers import free_port, serve_in_thread
from tests.support.stripe import event_body, sign

pytestmark = pytest.mark.browser

WEBHOOK_SECRET = "whsec_multiprocess_" + secrets.token_hex(8)
REDIS_URL = os.environ.get("REDIS_TEST_URL", "redis://127.0.0.1:6379/7")
SLOW = 30_000


ASSETS = ("/static/", "/brand.css", "/brand/logo", "/favicon.ico")


@dataclass
class RoundRobinProxy:
    """The load balancer of the test: each request goes to the next backend in turn.

    It adds `X-Forwarded-For` (the apps trust 127.0.0.1) and records who served what.
    """

    backends: dict[str, str]
    served: list[tuple[str, str, str, int]] = field(default_factory=list)
    _turn: Iterator[int] = field(default_factory=itertools.count)

    async def __call__(self, scope: dict[str, Any], receive: Any, send: Any) -> None:
        if scope["type"] == "lifespan":
            while (message := await receive())["type"] != "lifespan.shutdown":
                await send({"type": "lifespan.startup.complete"})
            await send({"type": "lifespan.shutdown.complete"})
            return
        if scope["path"].startswith(ASSETS):
            name = next(iter(self.backends))  # assets do not take a turn: pages and forms alternate
        else:
            name = list(self.backends)[next(self._turn) % len(self.backends)]
        body, more = b"", True
        while more:
            message = await receive()
            body, more = body + message.get("body", b""), message.get("more_body", False)
        query = scope["query_string"].decode()
        url = self.backends[name] + scope["raw_path"].decode() + (f"?{query}" if query else "")
        skip = {b"connection", b"x-forwarded-for", b"x-forwarded-proto"}
        headers = [(k, v) for k, v in scope["headers"] if k.lower() not in skip]
        headers += [(b"x-forwarded-for", scope["client"][0].encode()), (b"x-forwarded-proto", b"http")]
        async with httpx.AsyncClient(timeout=60) as client:
            response = await client.send(
                client.build_request(scope["method"], url, headers=headers, content=body), stream=True
            )
            content = b"".join([chunk async for chunk in response.aiter_raw()])
        self.served.append((name, scope["method"], scope["path"], response.status_code))
        drop = {b"transfer-encoding", b"connection", b"content-length"}
        raw = [(k, v) for k, v in response.headers.raw if k.lower() not in drop]
        await send({"type": "http.response.start", "status": response.status_code, "headers": raw})
        await send({"type": "http.response.body", "body": content})

    def pages_by(self, name: str) -> list[str]:
        """Paths of successful HTML page loads (not assets or webhooks) served by backend `name`."""
        return [
            path
            for who, method, path, status in self.served
            if who == name and method == "GET" and status == 200 and not path.startswith((*ASSETS, "/healthz"))
        ]


@dataclass
class Stack:
    base_url: str
    proxy: RoundRobinProxy
    database_url: str
    emulator_url: str
    logs: Path


def _database_url(name: str) -> str:
    return urlunsplit(urlsplit(os.environ["DATABASE_URL"])._replace(path=f"/{name}"))


@contextlib.contextmanager
def process(args: list[str], env: dict[str, str], log: Path) -> Iterator[subprocess.Popen[bytes]]:
    with open(log, "wb") as out:
        child = subprocess.Popen(args, cwd=PROJECT_ROOT, env=env, stdout=out, stderr=subprocess.STDOUT)
        try:
            yield child
        finally:
            child.terminate()
            try:
                child.wait(timeout=20)
            except subprocess.TimeoutExpired:
                child.kill()


@pytest.fixture(scope="module")
async def stack(oidc_provider: ScriptedProvider, tmp_path_factory: pytest.TempPathFactory) -> AsyncIterator[Stack]:
    from e2e.stripe_emulator import EmulatorConfig, WebhookTarget, run_in_thread

    logs = tmp_path_factory.mktemp("multiprocess")
    database = urlsplit(os.environ["DATABASE_URL"]).path.lstrip("/") + "_mp"
    admin = await asyncpg.connect(_database_url("postgres"))
    try:
        await admin.execute(f'DROP DATABASE IF EXISTS "{database}" WITH (FORCE)')
        await admin.execute(f'CREATE DATABASE "{database}"')
    finally:
        await admin.close()
    sessions = redis.Redis.from_url(REDIS_URL)
    for key in sessions.scan_iter("billing-*"):
        sessions.delete(key)

    proxy_port, emulator_port, port_a, port_b = free_port(), free_port(), free_port(), free_port()
    base_url = f"http://127.0.0.1:{proxy_port}"
    emulator = run_in_thread(
        EmulatorConfig(
            port=emulator_port,
            public_url=f"http://127.0.0.1:{emulator_port}",
            webhooks=[WebhookTarget(f"{base_url}/webhooks/stripe", WEBHOOK_SECRET)],
            retry_schedule=[0.5, 1.0, 2.0],
        )
    )
    env = {k: v for k, v in os.environ.items() if not k.startswith(("AUTH0_", "OIDC_", "STRIPE_", "SESSION_"))}
    env.update(
        APP_BASE_URL=base_url,
        DATABASE_URL=_database_url(database),
        REDIS_URL=REDIS_URL,
        SESSION_SECRET=secrets.token_urlsafe(32),
        OIDC_ISSUER=oidc_provider.issuer,
        AUTH0_CLIENT_ID=oidc_provider.client_id,
        AUTH0_CLIENT_SECRET=oidc_provider.client_secret,
        STRIPE_SECRET_KEY="sk_test_multiprocess",
        STRIPE_WEBHOOK_SECRET=WEBHOOK_SECRET,
        STRIPE_API_BASE=emulator.url,
        EVENT_WORKER="off",
        TRUSTED_PROXIES="127.0.0.1",
        WEB_CONCURRENCY="1",
        HOST="127.0.0.1",
        DATA_DIR=str(logs),
    )
    serve = str(PROJECT_ROOT / "scripts" / "serve")
    migrated = await asyncio.to_thread(
        subprocess.run, [serve, "--migrate-only"], cwd=PROJECT_ROOT, env=env, capture_output=True, text=True
    )
    assert migrated.returncode == 0, migrated.stderr
    proxy = RoundRobinProxy({"web-a": f"http://127.0.0.1:{port_a}", "web-b": f"http://127.0.0.1:{port_b}"})
    with (
        process(
            [serve, "--no-migrate"], {**env, "PORT": str(port_a), "ASGI_SERVER": "uvicorn"}, logs / "web-a.log"
        ) as web_a,
        process([serve, "--no-migrate"], {**env, "PORT": str(port_b), "ASGI_SERVER": "granian"}, logs / "web-b.log"),
        process(
            [str(Path(sys.executable).parent / "litestar"), "billing", "worker"], env, logs / "worker.log"
        ) as worker,
        serve_in_thread(proxy, proxy_port),
    ):
        try:
            for port in (port_a, port_b):
                await asyncio.to_thread(wait_for_http, f"http://127.0.0.1:{port}/healthz", 90.0, None)
            assert worker.poll() is None and web_a.poll() is None
            from app.plans.catalog import load_catalog, push_catalog
            from app.settings import StripeSettings
            from app.stripe_gateway import StripeGateway

            gateway = StripeGateway(StripeSettings(secret_key="sk_test_multiprocess", api_base=emulator.url))
            await push_catalog(gateway, load_catalog())
            yield Stack(base_url, proxy, _database_url(database), emulator.url, logs)
        except BaseException:
            for log in sorted(logs.glob("*.log")):
                print(f"--- {log.name}\n{log.read_text()[-3000:]}")  # why the stack failed, in the test report
            raise
        finally:
            emulator.stop()
            for key in sessions.scan_iter("billing-*"):
                sessions.delete(key)


async def fetch(stack: Stack, sql: str, *args: Any) -> list[asyncpg.Record]:
    connection = await asyncpg.connect(stack.database_url)
    try:
        return list(await connection.fetch(sql, *args))
    finally:
        await connection.close()


async def wait_until(check: Any, seconds: float = 60.0) -> None:
    deadline = time.monotonic() + seconds
    while not await check():
        if time.monotonic() > deadline:
            raise AssertionError("timed out waiting for the worker")
        await asyncio.sleep(0.25)


async def test_a_journey_alternating_between_two_web_processes(
    stack: Stack, browser: Browser, oidc_provider: ScriptedProvider
) -> None:
    async def catalogue_applied() -> bool:
        return len(await fetch(stack, "SELECT 1 FROM plan")) == 3

    await wait_until(catalogue_applied)  # product/price webhooks, through both processes, by the worker
    oidc_provider.claims_for["alice"] = {"email": "ada@example.com", "email_verified": True, "name": "Ada Scale"}
    context = await browser.new_context()
    page = await context.new_page()
    blocked: list[str] = []
    page.on("console", lambda m: blocked.append(m.text) if "Content Security Policy" in m.text else None)
    before = len(stack.proxy.served)
    await page.goto(f"{stack.base_url}/auth/login?next=/plans")
    await expect(page).to_have_url(f"{stack.base_url}/plans", timeout=SLOW)
    await PlansPage(page, stack.base_url).choose("Pro", "monthly")
    await EmulatorCheckout(page).pay(CARDS["visa"])
    await expect(page.get_by_test_id("subscription-status")).to_contain_text("Active", timeout=SLOW)
    account = AccountPage(page, stack.base_url)
    for _ in range(4):  # consecutive page loads land on alternating processes
        await account.open()
        await account.expect_status("Active")
        await account.expect_plan("Pro")
        await expect(page.get_by_title("Signed in")).to_have_text("Ada Scale")
    await context.close()

    journey = stack.proxy.served[before:]
    signed_in_pages = {name: [p for p in stack.proxy.pages_by(name) if p == "/account"] for name in ("web-a", "web-b")}
    assert all(signed_in_pages.values()), f"both processes served the signed-in account page: {journey}"
    assert not [r for r in journey if r[3] >= 500], journey
    assert blocked == [], "the CSP blocked nothing on the way"


async def test_a_webhook_burst_is_stored_once_and_applied_once(stack: Stack, browser_name: str) -> None:
    # `browser_name` (unused) gives this test the journey's [chromium] parameter, so pytest keeps the
    # two tests together and the module's processes start only once.
    products = await fetch(stack, "SELECT stripe_product_id FROM plan")
    product_id = products[0]["stripe_product_id"] if products else "prod_burst"
    before = {r["stripe_event_id"] for r in await fetch(stack, "SELECT stripe_event_id FROM stripe_event")}
    events = [
        {
            "id": f"evt_burst_{i:03d}_{secrets.token_hex(4)}",
            "object": "event",
            "type": "product.updated",
            "api_version": "2026-10-28.endive",
            "created": int(time.time()),
            "livemode": False,
            "data": {"object": {"id": product_id, "object": "product"}},
        }
        for i in range(60)
    ]
    async with httpx.AsyncClient(base_url=stack.base_url, timeout=60) as http:

        async def deliver(event: dict[str, Any]) -> int:
            body = event_body(event)
            headers = {"stripe-signature": sign(body, WEBHOOK_SECRET), "content-type": "application/json"}
            return (await http.post("/webhooks/stripe", content=body, headers=headers)).status_code

        statuses: list[int] = []
        deliveries = [*events, *events]  # every event twice, 20 at a time
        for start in range(0, len(deliveries), 20):
            statuses += await asyncio.gather(*(deliver(e) for e in deliveries[start : start + 20]))
    assert set(statuses) == {200}
    served_by = {who for who, method, path, _ in stack.proxy.served if path == "/webhooks/stripe" and method == "POST"}
    assert served_by == {"web-a", "web-b"}

    ids = [e["id"] for e in events]

    async def all_applied() -> bool:
        rows = await fetch(stack, "SELECT status FROM stripe_event WHERE stripe_event_id = ANY($1)", ids)
        return len(rows) == len(ids) and {r["status"] for r in rows} == {"processed"}

    await wait_until(all_applied)
    rows = await fetch(
        stack, "SELECT stripe_event_id, status, attempts FROM stripe_event WHERE stripe_event_id = ANY($1)", ids
    )
    assert sorted(r["stripe_event_id"] for r in rows) == sorted(ids), "each event stored exactly once"
    assert {(r["status"], r["attempts"]) for r in rows} == {("processed", 1)}, "each event applied exactly once"
    assert not before & set(ids)
    worker_log = (stack.logs / "worker.log").read_text()
    assert "Applied" in worker_log, "the standalone worker (web processes run with EVENT_WORKER=off) applied them"


async def test_the_servers_own_lines_share_the_apps_log_shape(stack: Stack) -> None:
    """Granian (web-b) starts its worker and says so through the app's structlog set-up, not in its own
    `[INFO] …` format; both servers' logs carry the app's access lines."""
    async with httpx.AsyncClient(timeout=20) as http:
        for _ in range(4):  # the proxy alternates: two requests reach each process
            assert (await http.get(f"{stack.base_url}/plans")).status_code == 200
    granian = (stack.logs / "web-b.log").read_text()
    assert "Started worker-1" in granian and "[_granian" in granian
    assert not [line for line in granian.splitlines() if line.startswith("[INFO]")], granian[-2000:]
    for name in ("web-a.log", "web-b.log"):
        assert "path=/plans" in (stack.logs / name).read_text(), name
