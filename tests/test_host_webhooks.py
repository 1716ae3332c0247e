"""Outbound `customer.state_changed` webhooks: Standard Webhooks signatures, retries with backoff,
order per person, redelivery; and the host API's rate limit."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any
from urllib.parse import quote

import httpx
import pytest
from standardwebhooks.webhooks import Webhook

from app.asgi import create_app
from app.auth.tables import User
from app.entitlements import service
from app.entitlements.api_keys import create_key
from app.entitlements.delivery import MAX_ATTEMPTS, HostWebhookDelivery, deliver_due, redeliver
from app.entitlements.tables import HostApiKey, HostWebhook
from app.settings import EntitlementSettings, HostWebhookTarget, Settings
from tests.conftest import settings_env
from tests.support.host import HOST_SECRET, HostReceiver, host_receiver
from tests.support.servers import free_port, serve_in_loop


@pytest.fixture
def host() -> Iterator[HostReceiver]:
    with host_receiver() as receiver:
        service.configure(EntitlementSettings(webhook_endpoints=(HostWebhookTarget(receiver.url, HOST_SECRET),)))
        yield receiver
    service.configure(EntitlementSettings())


async def _person(subject: str) -> User:
    user = User(subject=subject, email=f"{subject}@example.com", email_verified=True)
    await user.save()
    return user


async def _changed(user: User, version: int) -> None:
    state = {"external_id": user.subject, "status": "active", "version": version, "entitlements": []}
    assert await service.enqueue_state_changed(user.id, state, datetime.now(UTC)) == 1


def _verified(receiver: HostReceiver) -> list[tuple[str, int]]:
    out = []
    for item in receiver.take():
        payload = Webhook(HOST_SECRET).verify(item.body, item.headers)
        out.append((item.headers["webhook-id"], payload["data"]["version"]))
    return out


async def test_a_failed_delivery_is_retried_with_backoff_and_later_changes_wait_their_turn(
    db: None, host: HostReceiver
) -> None:
    alice, bob = await _person("alice"), await _person("bob")
    await _changed(alice, 1)
    await _changed(alice, 2)
    await _changed(bob, 1)
    host.status = 500
    assert await deliver_due() == 2, "only the oldest change of each person is attempted"
    first = await HostWebhook.objects().get(HostWebhook.message_id == f"msg_{alice.id}_1")
    assert first is not None and (first.status, first.attempts, first.last_error) == ("pending", 1, "HTTP 500")
    wait = first.next_attempt_at - datetime.now(UTC)
    assert timedelta(seconds=3) < wait <= timedelta(seconds=5)
    assert await deliver_due() == 0, "nothing is due before the backoff ends"

    host.status = 200
    later = datetime.now(UTC) + timedelta(seconds=6)
    while await deliver_due(now=later):
        pass
    received = _verified(host)
    alices = [version for msg, version in received if msg.startswith(f"msg_{alice.id}_")]
    assert alices == [1, 2]
    assert sorted(received) == sorted([(f"msg_{alice.id}_1", 1), (f"msg_{alice.id}_2", 2), (f"msg_{bob.id}_1", 1)])
    assert await HostWebhook.count().where(HostWebhook.status == "delivered") == 3


async def test_a_webhook_that_keeps_failing_is_set_aside_and_can_be_redelivered(db: None, host: HostReceiver) -> None:
    carol = await _person("carol")
    await _changed(carol, 1)
    await _changed(carol, 2)
    await HostWebhook.update({HostWebhook.attempts: MAX_ATTEMPTS - 1}).where(
        HostWebhook.message_id == f"msg_{carol.id}_1"
    )
    host.status = 503
    await deliver_due()
    stuck = await HostWebhook.objects().get(HostWebhook.message_id == f"msg_{carol.id}_1")
    assert stuck is not None and stuck.status == "failed"

    host.status = 200
    await deliver_due()
    assert _verified(host) == [(f"msg_{carol.id}_2", 2)], "a dead webhook does not block later ones"

    assert await redeliver() == 1
    await deliver_due()
    assert _verified(host) == [(f"msg_{carol.id}_1", 1)], "redelivered under the same webhook-id"
    assert await redeliver([f"msg_{carol.id}_2"]) == 1
    await deliver_due()
    assert _verified(host) == [(f"msg_{carol.id}_2", 2)]


async def test_the_signature_does_not_verify_with_another_secret_or_a_changed_body(
    db: None, host: HostReceiver
) -> None:
    dave = await _person("dave")
    await _changed(dave, 1)
    await deliver_due()
    (item,) = host.take()
    Webhook(HOST_SECRET).verify(item.body, item.headers)
    with pytest.raises(Exception, match="signature"):
        Webhook("whsec_" + "b3RoZXItc2VjcmV0LW90aGVyLXNlY3JldC0zMg==").verify(item.body, item.headers)
    with pytest.raises(Exception, match="signature"):
        Webhook(HOST_SECRET).verify(item.body.replace(b"active", b"canceled"), item.headers)


async def test_the_delivery_loop_sends_webhooks_and_survives_a_failing_iteration(
    db: None, host: HostReceiver, monkeypatch: pytest.MonkeyPatch
) -> None:
    import asyncio

    from app.entitlements import delivery

    real = delivery.deliver_due
    calls = {"n": 0}

    async def flaky(http: Any = None, now: Any = None, limit: int = 20) -> int:
        calls["n"] += 1
        if calls["n"] == 1:
            raise ConnectionError("database restarting")
        return await real(http, now, limit)

    monkeypatch.setattr(delivery, "deliver_due", flaky)
    erin = await _person("erin")
    await _changed(erin, 1)
    loop = HostWebhookDelivery(poll_seconds=0.05)
    loop.start()
    try:
        for _ in range(200):
            if host.received:
                break
            await asyncio.sleep(0.05)
    finally:
        await loop.stop()
    assert _verified(host) == [(f"msg_{erin.id}_1", 1)]
    assert calls["n"] >= 2


async def test_the_host_api_is_rate_limited_per_key(db: None, oidc_provider: Any, tmp_path: Path) -> None:
    port = free_port()
    env = settings_env(oidc_provider, tmp_path, APP_BASE_URL=f"http://127.0.0.1:{port}", HOST_API_RATE_LIMIT="3")
    await _person("erin")
    _, key = await create_key("limits")
    async with serve_in_loop(create_app(Settings.from_env(env)), port) as base_url:
        async with httpx.AsyncClient(base_url=base_url, headers={"Authorization": f"Bearer {key}"}) as http:
            codes = [(await http.get("/api/v1/customers/erin/state")).status_code for _ in range(4)]
    assert codes == [200, 200, 200, 429]


async def test_the_rate_limit_is_shared_by_processes_through_redis(
    db: None, oidc_provider: Any, tmp_path: Path
) -> None:
    """Two apps (as two web processes) with one Redis: the limit counts every request of the key once."""
    from tests.test_multiprocess import REDIS_URL

    await _person("erin")
    _, key = await create_key("shared-limit")
    ports = [free_port(), free_port()]
    apps = [
        create_app(
            Settings.from_env(
                settings_env(
                    oidc_provider, tmp_path, APP_BASE_URL=f"http://127.0.0.1:{p}", HOST_API_RATE_LIMIT="3",
                    REDIS_URL=REDIS_URL,
                )
            )
        )
        for p in ports
    ]  # fmt: skip
    async with serve_in_loop(apps[0], ports[0]) as one, serve_in_loop(apps[1], ports[1]) as two:
        headers = {"Authorization": f"Bearer {key}"}
        async with httpx.AsyncClient(headers=headers) as http:
            answers = [await http.get(f"{base}/api/v1/customers/erin/state") for base in (one, two, one, two)]
    assert [a.status_code for a in answers] == [200, 200, 200, 429]
    assert [a.headers.get("ratelimit-remaining") for a in answers[:3]] == ["2", "1", "0"]
    assert answers[0].headers["ratelimit-policy"] == "3; w=60"
    refused = answers[3]
    assert refused.json()["error_code"] == "rate_limited" and 0 < int(refused.headers["retry-after"]) <= 60


async def test_a_key_revoked_by_another_process_stops_working_once_the_cache_expires(
    db: None, oidc_provider: Any, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from app.entitlements import api_keys

    monkeypatch.setattr(api_keys, "CACHE_SECONDS", 0.5)
    port = free_port()
    env = settings_env(oidc_provider, tmp_path, APP_BASE_URL=f"http://127.0.0.1:{port}")
    await _person("erin")
    row, key = await create_key("elsewhere")
    async with serve_in_loop(create_app(Settings.from_env(env)), port) as base_url:
        async with httpx.AsyncClient(base_url=base_url, headers={"Authorization": f"Bearer {key}"}) as http:
            assert (await http.get("/api/v1/customers/erin/state")).status_code == 200
            # As another process would: straight in the database, this process's cache untouched.
            await HostApiKey.update({HostApiKey.revoked_at: datetime.now(UTC)}).where(HostApiKey.id == row.id)
            assert (await http.get("/api/v1/customers/erin/state")).status_code == 200, "still cached"
            await asyncio.sleep(0.6)
            refused = await http.get("/api/v1/customers/erin/state")
    assert refused.status_code == 401 and refused.json()["error_code"] == "invalid_api_key"


async def test_hostile_path_values_get_a_precise_answer_never_a_5xx(
    db: None, oidc_provider: Any, tmp_path: Path
) -> None:
    from tests.test_hostile_input import VALUES

    port = free_port()
    env = settings_env(oidc_provider, tmp_path, APP_BASE_URL=f"http://127.0.0.1:{port}")
    await _person("erin")
    _, key = await create_key("hostile")
    answers: set[int] = set()
    async with serve_in_loop(create_app(Settings.from_env(env)), port) as base_url:
        async with httpx.AsyncClient(base_url=base_url, headers={"Authorization": f"Bearer {key}"}) as http:
            for value in [quote(v, safe="") for v in VALUES if v.strip()]:
                for path in (f"/api/v1/customers/{value}/state", f"/api/v1/customers/erin/entitlements/{value}"):
                    response = await http.get(path)
                    answers.add(response.status_code)
                    assert response.status_code < 500, (path[:80], response.status_code)
    assert answers <= {400, 404}
