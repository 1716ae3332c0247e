"""The operator console's entitlement grants, host API keys and host webhook endpoints, over real HTTP
and PostgreSQL: what an operator sees, what the host product receives, and bad input refused whole."""

from __future__ import annotations

import html
import re
from collections.abc import AsyncIterator, Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
import pytest
from standardwebhooks.webhooks import Webhook

from app.admin.tables import AuditEntry
from app.asgi import create_app
from app.auth.tables import User
from app.entitlements import service
from app.entitlements.api_keys import find_key
from app.entitlements.delivery import deliver_due
from app.entitlements.tables import (
    EntitlementOverride,
    Feature,
    HostApiKey,
    HostWebhook,
    HostWebhookEndpoint,
)
from app.settings import EntitlementSettings, Settings
from tests.conftest import settings_env
from tests.support.host import HOST_SECRET, HostReceiver, host_receiver
from tests.support.servers import free_port, serve_in_loop
from tests.test_admin import csrf, signed_in

Client = httpx.AsyncClient


@pytest.fixture
def host() -> Iterator[HostReceiver]:
    with host_receiver() as receiver:
        yield receiver


@pytest.fixture
async def console(oidc_provider: Any, tmp_path: Path, db: None, host: HostReceiver) -> AsyncIterator[Client]:
    """The app with one endpoint in `HOST_WEBHOOK_ENDPOINTS`, and a browser signed in as an admin."""
    port = free_port()
    env = settings_env(
        oidc_provider,
        tmp_path,
        APP_BASE_URL=f"http://127.0.0.1:{port}",
        HOST_WEBHOOK_ENDPOINTS=f"{host.url} {HOST_SECRET}",
    )
    try:
        async with (
            serve_in_loop(create_app(Settings.from_env(env)), port) as base,
            Client(base_url=base, timeout=20) as http,
        ):
            await signed_in(http, oidc_provider, "olga", roles=["admin"])
            yield http
    finally:
        service.configure(EntitlementSettings())


async def _customer_with_catalogue() -> User:
    for key, name in (("custom_domain", "Custom domain"), ("priority_support", "Priority support")):
        await Feature.insert(Feature(lookup_key=key, name=name))
    person = User(subject="auth0|dana", email="dana@example.com", email_verified=True, name="Dana")
    await person.save()
    return person


def _text(response: httpx.Response) -> str:
    return html.unescape(response.text)


async def test_an_operator_grants_a_feature_until_a_date_and_the_host_is_told(
    console: Client, host: HostReceiver
) -> None:
    person = await _customer_with_catalogue()
    page = await console.get(f"/admin/customers/{person.id}")
    assert "No entitlements" in page.text and '<option value="custom_domain">' in page.text
    until = (datetime.now(UTC) + timedelta(days=30)).date()
    done = await console.post(
        f"/admin/customers/{person.id}/entitlements",
        data={
            "_csrf_token": csrf(console),
            "feature": "custom_domain",
            "kind": "grant",
            "until": until.isoformat(),
            "note": "trial for the launch",
        },
        follow_redirects=True,
    )
    text = _text(done)
    assert f"Granted custom_domain until {until.isoformat()} (UTC)." in text
    assert f"granted by an operator until {until.isoformat()}T00:00:00Z" in text
    assert "trial for the launch" in text and "Remove grant" in text

    # The host hears it through the outbox, signed with the endpoint's secret.
    assert await deliver_due() == 1
    [received] = host.take()
    payload = Webhook(HOST_SECRET).verify(received.body, received.headers)
    assert payload["type"] == "customer.state_changed"
    assert [(e["feature"], e["source"], e["until"]) for e in payload["data"]["entitlements"]] == [
        ("custom_domain", "grant", f"{until.isoformat()}T00:00:00Z")
    ]
    audit = (
        await AuditEntry.select(AuditEntry.action, AuditEntry.target, AuditEntry.after)
        .where(AuditEntry.action != "roles.changed")
        .output(load_json=True)
    )
    assert [(a["action"], a["target"], a["after"]["feature"]) for a in audit] == [
        ("entitlement.granted", "auth0|dana", "custom_domain")
    ]

    # Removing the grant takes the feature away and tells the host again.
    override = await EntitlementOverride.objects().first()
    assert override is not None
    removed = await console.post(
        f"/admin/customers/{person.id}/entitlements/{override.id}/end",
        data={"_csrf_token": csrf(console)},
        follow_redirects=True,
    )
    assert "Removed the grant of custom_domain." in _text(removed) and "No entitlements" in removed.text
    assert await deliver_due() == 1
    [second] = host.take()
    assert Webhook(HOST_SECRET).verify(second.body, second.headers)["data"]["entitlements"] == []
    again = await console.post(
        f"/admin/customers/{person.id}/entitlements/{override.id}/end",
        data={"_csrf_token": csrf(console)},
        follow_redirects=True,
    )
    assert "already ended" in again.text


async def test_a_revocation_wins_and_htmx_gets_only_the_card(console: Client) -> None:
    person = await _customer_with_catalogue()
    for kind in ("grant", "revoke"):
        response = await console.post(
            f"/admin/customers/{person.id}/entitlements",
            data={"_csrf_token": csrf(console), "feature": "priority_support", "kind": kind},
            headers={"HX-Request": "true"},
        )
        assert response.status_code == 200, response.text
        assert "<html" not in response.text and 'id="entitlements"' in response.text
        assert "HX-Request" in response.headers["vary"]
    assert "Revoked priority_support." in _text(response)
    assert "No entitlements" in response.text, "the revocation wins over the operator's own grant"
    assert re.search(r"<td>Revocation</td>\s*<td>until removed</td>", response.text)


@pytest.mark.parametrize(
    ("fields", "field", "message"),
    [
        ({"feature": "no_such_feature"}, "feature", "No feature of the catalogue has that lookup key."),
        ({"feature": ""}, "feature", "Choose a feature."),
        ({"until": "2020-01-01"}, "until", "The end date must be in the future (UTC)."),
        ({"until": "31/01/2027"}, "until", "Give the end date as YYYY-MM-DD, e.g. 2027-01-31."),
        ({"until": "2027-02-30"}, "until", "Give the end date as YYYY-MM-DD, e.g. 2027-01-31."),
        ({"kind": "promote"}, "kind", "Choose Grant or Revoke."),
        ({"note": "x" * 501}, "note", "At most 500 characters, no NUL."),
    ],
)
async def test_bad_grants_are_refused_with_the_message_and_nothing_is_written(
    console: Client, fields: dict[str, str], field: str, message: str
) -> None:
    person = await _customer_with_catalogue()
    data = {"_csrf_token": csrf(console), "feature": "custom_domain", "kind": "grant", "until": "", **fields}
    page = await console.post(f"/admin/customers/{person.id}/entitlements", data=data)
    assert page.status_code == 422
    text = _text(page)
    assert message in text and "Nothing was changed" in text and f'id="ent-{field}-error"' in text
    assert "<html" in page.text, "without htmx the whole customer page comes back"
    fragment = await console.post(
        f"/admin/customers/{person.id}/entitlements", data=data, headers={"HX-Request": "true"}
    )
    assert fragment.status_code == 422 and message in _text(fragment) and "<html" not in fragment.text
    assert await EntitlementOverride.count() == 0
    assert await HostWebhook.count() == 0
    assert await AuditEntry.count().where(AuditEntry.action.like("entitlement%")) == 0


async def test_api_keys_are_shown_once_stored_hashed_and_revoked(console: Client) -> None:
    created = await console.post("/admin/api-keys", data={"_csrf_token": csrf(console), "name": "acme-backend"})
    assert created.status_code == 200
    key = re.search(r'id="new-key">(bpk_[^<]+)<', created.text)
    assert key is not None and "shown this once" in created.text
    row = await HostApiKey.objects().first()
    assert row is not None and key.group(1) not in {row.key_hash, row.prefix} and len(row.key_hash) == 64
    listing = await console.get("/admin/api-keys")
    assert key.group(1) not in listing.text, "the full key is never shown again"
    assert f"bpk_{row.prefix}_…" in listing.text and "acme-backend" in listing.text and "never" in listing.text

    # The key works on the state API, and the list then says when it was last used.
    await User(subject="auth0|kim", email="kim@example.com", email_verified=True).save()
    state = await console.get(
        "/api/v1/customers/auth0%7Ckim/state", headers={"Authorization": f"Bearer {key.group(1)}"}
    )
    assert state.status_code == 200 and state.json()["external_id"] == "auth0|kim"
    used = await console.get("/admin/api-keys")
    reread = await HostApiKey.objects().first()
    assert reread is not None and reread.last_used_at is not None
    assert "never" not in used.text

    revoked = await console.post(
        f"/admin/api-keys/{row.prefix}/revoke", data={"_csrf_token": csrf(console)}, follow_redirects=True
    )
    assert f"Revoked the key {row.prefix}." in revoked.text and "revoked" in revoked.text
    assert await find_key(key.group(1)) is None
    refused = await console.get(
        "/api/v1/customers/auth0%7Ckim/state", headers={"Authorization": f"Bearer {key.group(1)}"}
    )
    assert refused.status_code == 401, "a key revoked in the console stops working at once"
    twice = await console.post(
        f"/admin/api-keys/{row.prefix}/revoke", data={"_csrf_token": csrf(console)}, follow_redirects=True
    )
    assert "No active key has that prefix." in twice.text
    blank = await console.post("/admin/api-keys", data={"_csrf_token": csrf(console), "name": "  "})
    assert blank.status_code == 422 and "Name the key" in blank.text
    assert await HostApiKey.count() == 1
    actions = [
        a["action"] for a in await AuditEntry.select(AuditEntry.action).where(AuditEntry.action != "roles.changed")
    ]
    assert actions == ["host_api_key.created", "host_api_key.revoked"]


async def test_webhook_endpoints_are_added_with_a_secret_shown_once_and_deliveries_redelivered(
    console: Client, host: HostReceiver
) -> None:
    page = await console.get("/admin/host-webhooks")
    assert host.url in page.text and "HOST_WEBHOOK_ENDPOINTS (read-only)" in page.text
    with host_receiver() as second:
        added = await console.post("/admin/host-webhooks", data={"_csrf_token": csrf(console), "url": second.url})
        secret = re.search(r'id="new-secret">(whsec_[^<]+)<', added.text)
        assert added.status_code == 200 and secret is not None
        assert secret.group(1) not in (await console.get("/admin/host-webhooks")).text

        # A grant reaches both endpoints, each signed with its own secret.
        person = await _customer_with_catalogue()
        await service.add_override(person.id, "custom_domain", "grant", None)
        assert await deliver_due() == 2
        [to_second] = second.take()
        assert Webhook(secret.group(1)).verify(to_second.body, to_second.headers)["type"] == "customer.state_changed"
        [to_setting] = host.take()
        listing = await console.get("/admin/host-webhooks")
        assert listing.text.count('badge badge-ok">delivered') == 2

        # Redeliver one: the same message id arrives again.
        delivery = await HostWebhook.objects().where(HostWebhook.endpoint_url == second.url).first()
        assert delivery is not None
        queued = await console.post(
            f"/admin/host-webhooks/deliveries/{delivery.id}/redeliver",
            data={"_csrf_token": csrf(console)},
            follow_redirects=True,
        )
        assert f"Queued {delivery.message_id} for delivery again." in queued.text
        assert await deliver_due() == 1
        [again] = second.take()
        assert again.headers["webhook-id"] == to_second.headers["webhook-id"] == to_setting.headers["webhook-id"]

        # Disabled: the next change goes only to the setting's endpoint; enabled again, and deleted.
        endpoint = await HostWebhookEndpoint.objects().get(HostWebhookEndpoint.url == second.url)
        assert endpoint is not None
        off = await console.post(
            f"/admin/host-webhooks/{endpoint.id}/enabled",
            data={"_csrf_token": csrf(console), "enabled": "false"},
            follow_redirects=True,
        )
        assert f"Disabled {second.url}." in off.text and 'badge badge-grey">disabled' in off.text
        await service.add_override(person.id, "priority_support", "grant", None)
        assert await deliver_due() == 1 and len(host.take()) == 1 and second.take() == []
        on = await console.post(
            f"/admin/host-webhooks/{endpoint.id}/enabled",
            data={"_csrf_token": csrf(console), "enabled": "true"},
            follow_redirects=True,
        )
        assert f"Enabled {second.url}." in on.text
        gone = await console.post(
            f"/admin/host-webhooks/{endpoint.id}/delete", data={"_csrf_token": csrf(console)}, follow_redirects=True
        )
        assert f"Deleted {second.url}." in gone.text
        assert await HostWebhookEndpoint.count() == 0

    for url, message in [
        ("ftp://host.example/x", "absolute http:// or https:// URL"),
        ("not a url", "absolute http:// or https:// URL"),
        ("https://", "absolute http:// or https:// URL"),
        ("https://host.example:99999/x", "absolute http:// or https:// URL"),
        ("https://h.example/" + "x" * 2000, "absolute http:// or https:// URL"),
        (host.url, "already set in HOST_WEBHOOK_ENDPOINTS"),
    ]:
        refused = await console.post("/admin/host-webhooks", data={"_csrf_token": csrf(console), "url": url})
        assert refused.status_code == 422 and message in refused.text, url
    assert await HostWebhookEndpoint.count() == 0
    actions = [
        a["action"]
        for a in await AuditEntry.select(AuditEntry.action)
        .where(AuditEntry.action != "roles.changed")
        .order_by(AuditEntry.id)
    ]
    assert actions == [
        "host_webhook_endpoint.added",
        "host_webhook.redelivered",
        "host_webhook_endpoint.disabled",
        "host_webhook_endpoint.enabled",
        "host_webhook_endpoint.deleted",
    ]


async def test_support_sees_the_new_pages_but_cannot_change_anything(client: Client, oidc_provider: Any) -> None:
    person = await _customer_with_catalogue()
    await signed_in(client, oidc_provider, "sam", roles=["support"])
    for path in (f"/admin/customers/{person.id}", "/admin/api-keys", "/admin/host-webhooks"):
        page = await client.get(path)
        assert page.status_code == 200, path
        main = page.text.split("<main", 1)[-1].split("</main>", 1)[0]  # the footer's language switcher aside
        assert 'type="submit"' not in main or "Search" in page.text, path
    for path, data in [
        (f"/admin/customers/{person.id}/entitlements", {"feature": "custom_domain", "kind": "grant"}),
        ("/admin/api-keys", {"name": "x"}),
        ("/admin/host-webhooks", {"url": "https://host.example/x"}),
    ]:
        response = await client.post(path, data={"_csrf_token": csrf(client), **data})
        assert response.status_code == 403, path
    assert await EntitlementOverride.count() == 0 and await HostApiKey.count() == 0


async def test_a_german_operator_reads_the_form_errors_and_the_toast_in_german(console: Client) -> None:
    """Validation messages are made without a request and translated where they are shown."""
    person = await _customer_with_catalogue()
    german = {"Accept-Language": "de-DE,de;q=0.9"}
    data = {"_csrf_token": csrf(console), "feature": "", "kind": "grant", "until": "2020-01-01"}
    page = await console.post(f"/admin/customers/{person.id}/entitlements", data=data, headers=german)
    assert page.status_code == 422
    text = _text(page)
    assert "Wählen Sie eine Funktion." in text and "Das Enddatum muss in der Zukunft liegen (UTC)." in text
    assert "Choose a feature." not in text and "must be in the future" not in text
    data = {"_csrf_token": csrf(console), "feature": "custom_domain", "kind": "grant", "until": ""}
    assert (await console.post(f"/admin/customers/{person.id}/entitlements", data=data)).status_code in (200, 303)
    (override,) = await EntitlementOverride.objects()
    removed = await console.post(
        f"/admin/customers/{person.id}/entitlements/{override.id}/end",
        data={"_csrf_token": csrf(console)},
        headers=german,
        follow_redirects=True,
    )
    assert "Freigabe von custom_domain entfernt." in _text(removed)
