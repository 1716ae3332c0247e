"""The host API's lean path (`HostApiFastPath`): what a host product calling it with curl would see
when PostgreSQL goes away, for HEAD, for methods it does not serve, and in the metrics."""

from __future__ import annotations

import contextlib
import logging
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import httpx
import pytest

from app.asgi import create_app
from app.auth.tables import User
from app.entitlements.api_keys import create_key, forget_verified_keys
from app.settings import Settings
from tests.conftest import settings_env
from tests.support.servers import TcpProxy, free_port, serve_in_loop


@contextlib.asynccontextmanager
async def host_api(
    oidc_provider: Any, tmp_path: Path, key_name: str, before_serving: Any = None, **env: str
) -> AsyncIterator[httpx.AsyncClient]:
    """The app served over HTTP with person `erin` and a host API key: a client sending that key.
    `before_serving(app)` runs once the app is built (a log handler to add back, say)."""
    port = free_port()
    settings = Settings.from_env(settings_env(oidc_provider, tmp_path, APP_BASE_URL=f"http://127.0.0.1:{port}", **env))
    await _person("erin")
    _, key = await create_key(key_name)
    forget_verified_keys()
    app = create_app(settings)
    if before_serving is not None:
        before_serving(app)
    async with serve_in_loop(app, port) as base_url:
        async with httpx.AsyncClient(base_url=base_url, headers={"Authorization": f"Bearer {key}"}) as http:
            yield http


async def _person(subject: str) -> User:
    user = User(subject=subject, email=f"{subject}@example.com", email_verified=True)
    await user.save()
    return user


async def test_a_lost_database_is_a_503_envelope_with_retry_after_and_the_api_recovers(
    db: None, oidc_provider: Any, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from piccolo_conf import DB

    target = urlsplit(DB.config["dsn"])
    proxy = TcpProxy(target.hostname or "127.0.0.1", target.port or 5432)
    await proxy.resume()
    monkeypatch.setitem(DB.config, "dsn", target._replace(netloc=f"{target.username}@127.0.0.1:{proxy.port}").geturl())
    async with host_api(oidc_provider, tmp_path, "outage") as http:
        assert (await http.get("/api/v1/customers/erin/state")).status_code == 200
        await proxy.cut()
        answers = [
            await http.get("/api/v1/customers/erin/state"),
            await http.get("/api/v1/customers/erin/entitlements/priority_support"),
        ]
        forget_verified_keys()  # the key check itself now needs the database
        answers.append(await http.get("/api/v1/customers/erin/state"))
        await proxy.resume()
        recovered = await http.get("/api/v1/customers/erin/state")
    for answer in answers:
        assert answer.status_code == 503, answer.text
        body = answer.json()
        assert body["success"] is False and body["error_code"] == "service_unavailable"
        assert body["request_id"] == answer.headers["x-request-id"]
        assert answer.headers["retry-after"] == "5" and answer.headers["cache-control"] == "no-store"
    assert recovered.status_code == 200 and recovered.json()["external_id"] == "erin"
    await proxy.cut()


async def test_head_answers_the_headers_without_a_body_and_other_methods_get_the_envelope(
    db: None, oidc_provider: Any, tmp_path: Path
) -> None:
    async with host_api(oidc_provider, tmp_path, "methods", METRICS="on") as http:
        before = (await http.get("/metrics")).text
        got = await http.get("/api/v1/customers/erin/state")
        head = await http.head("/api/v1/customers/erin/state")
        missing = await http.head("/api/v1/customers/nobody/state")
        posted = await http.post("/api/v1/customers/erin/state", json={})
        metrics = (await http.get("/metrics")).text
    assert head.status_code == 200 and head.content == b""
    assert head.headers["content-length"] == got.headers["content-length"] == str(len(got.content))
    assert head.headers["ratelimit-limit"] == got.headers["ratelimit-limit"]
    assert head.headers["content-security-policy"] and head.headers["x-request-id"] != got.headers["x-request-id"]
    assert missing.status_code == 404 and missing.content == b""
    assert posted.status_code in (403, 405) and posted.json()["success"] is False
    assert _count(metrics, "200") - _count(before, "200") == 2
    assert _count(metrics, "404") - _count(before, "404") == 1


def _count(metrics: str, status: str) -> float:
    """The `billing_host_api_request_seconds_count` sample of the state endpoint for `status` (0 if none)."""
    series = f'billing_host_api_request_seconds_count{{endpoint="state",status_code="{status}"}} '
    return next((float(line[len(series) :]) for line in metrics.splitlines() if line.startswith(series)), 0.0)


async def test_reads_are_logged_at_debug_and_refused_ones_at_info(
    db: None, oidc_provider: Any, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    def add_back(_: Any) -> None:
        """create_app's logging set-up replaced the root handlers: put pytest's back before serving."""
        logging.getLogger().addHandler(caplog.handler)

    async with host_api(oidc_provider, tmp_path, "logged", before_serving=add_back) as http:
        with caplog.at_level(logging.DEBUG, logger="app.access"):
            assert (await http.get("/api/v1/customers/erin/state")).status_code == 200
            assert (await http.get("/api/v1/customers/nobody/state")).status_code == 404
    lines = [
        (r.levelno, r.msg["status"])
        for r in caplog.records
        if r.name == "app.access" and isinstance(r.msg, dict) and r.msg.get("path", "").startswith("/api/v1/customers/")
    ]
    assert lines == [(logging.DEBUG, 200), (logging.INFO, 404)]


async def test_an_entitlement_whose_end_has_passed_is_left_out_before_the_person_is_recomputed(db: None) -> None:
    """The state served between a grant's end and the delivery loop's recomputation: without the ended
    entitlement, whether the stored document is served as is (nothing ended) or taken apart."""
    from app.entitlements.queries import customer_state
    from app.entitlements.service import add_override
    from app.entitlements.tables import CustomerState

    user = await _person("erin")
    soon = datetime.now(UTC).replace(microsecond=0) + timedelta(days=2)
    later = soon + timedelta(days=5)
    await add_override(user.id, "team_seats", "grant", soon, note="pilot")
    await add_override(user.id, "priority_support", "grant", later, note="pilot")
    assert await CustomerState.select(CustomerState.entitlements_until).output(as_list=True) == [soon]

    def features(state: dict[str, Any] | None) -> list[str]:
        assert state is not None
        return sorted(e["feature"] for e in state["entitlements"])

    assert features(await customer_state("erin")) == ["priority_support", "team_seats"]
    assert features(await customer_state("erin", now=soon - timedelta(seconds=1))) == [
        "priority_support",
        "team_seats",
    ]
    assert features(await customer_state("erin", now=soon)) == ["priority_support"]
    assert features(await customer_state("erin", now=later + timedelta(seconds=1))) == []
