"""The console's side of the host product's integration: host API keys and host webhook endpoints.

The same tables and functions as `litestar billing api-keys …` / `host-webhooks …`; every change is
audited in the transaction that makes it. A new key or endpoint secret is returned once, to be shown
once: only a SHA-256 of a key is stored, and a secret is never shown again.
"""

from __future__ import annotations

import base64
import secrets
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any
from urllib.parse import urlsplit

from app.admin.audit import record_action
from app.auth.tables import User
from app.db import transaction
from app.entitlements import api_keys, service
from app.entitlements.delivery import redeliver_row
from app.entitlements.tables import HostApiKey, HostWebhook, HostWebhookEndpoint
from app.web.i18n import N_, Message

NAME_MAX = 120
URL_MAX = 2000
RECENT_DELIVERIES = 50


class HostInputInvalid(Exception):
    """A form field is wrong; `errors` maps the field name to a message for people."""

    def __init__(self, errors: dict[str, str]) -> None:
        super().__init__("; ".join(errors.values()))
        self.errors = errors


# --------------------------------------------------------------------------- API keys


async def list_keys() -> list[dict[str, Any]]:
    """Every key, newest first: `id, name, prefix, scope, created_at, last_used_at, revoked_at` (UTC)."""
    rows: list[dict[str, Any]] = await HostApiKey.select(
        HostApiKey.id,
        HostApiKey.name,
        HostApiKey.prefix,
        HostApiKey.scope,
        HostApiKey.created_at,
        HostApiKey.last_used_at,
        HostApiKey.revoked_at,
    ).order_by(HostApiKey.id, ascending=False)
    return rows


async def create_key(name: str, actor: User) -> tuple[HostApiKey, str]:
    """Create a read-only key; returns the row and the full key (to show once, never stored).

    Raises:
        HostInputInvalid: empty or over-long name, or a NUL character.
    """
    name = name.strip()
    if not name or len(name) > NAME_MAX or "\x00" in name:
        raise HostInputInvalid(
            {
                "name": Message(
                    N_("Name the key (1 to %(max)s characters), e.g. the product that uses it."), max=NAME_MAX
                )
            }
        )
    async with transaction():
        row, key = await api_keys.create_key(name)
        await record_action(actor, "host_api_key.created", row.prefix, None, {"name": name, "scope": row.scope})
    return row, key


async def revoke_key(prefix: str, actor: User) -> bool:
    """Revoke the active key with this prefix; False when there is none."""
    async with transaction():
        revoked = await api_keys.revoke_key(prefix)
        if revoked:
            await record_action(actor, "host_api_key.revoked", prefix, {"revoked": False}, {"revoked": True})
    return revoked


# --------------------------------------------------------------------------- webhook endpoints


@dataclass
class EndpointRow:
    """One endpoint as listed: from the console/CLI (`id` set) or from `HOST_WEBHOOK_ENDPOINTS` (read-only)."""

    url: str
    source: str  # "console" | "setting"
    id: int | None = None
    created_at: datetime | None = None
    disabled_at: datetime | None = None


async def list_endpoints() -> list[EndpointRow]:
    """The setting's endpoints first (read-only), then the table's, oldest first."""
    rows = [EndpointRow(url=e.url, source="setting") for e in service.settings().webhook_endpoints]
    for r in await HostWebhookEndpoint.select(
        HostWebhookEndpoint.id, HostWebhookEndpoint.url, HostWebhookEndpoint.created_at, HostWebhookEndpoint.disabled_at
    ).order_by(HostWebhookEndpoint.id):
        rows.append(
            EndpointRow(
                url=r["url"], source="console", id=r["id"], created_at=r["created_at"], disabled_at=r["disabled_at"]
            )
        )
    return rows


def new_secret() -> str:
    """A Standard Webhooks signing secret: `whsec_` + base64 of 32 random bytes."""
    return "whsec_" + base64.b64encode(secrets.token_bytes(32)).decode()


def check_url(url: str) -> str:
    """The endpoint URL, trimmed.

    Raises:
        HostInputInvalid: not an absolute http(s) URL with a host, too long, or with spaces/control characters.
    """
    url = url.strip()
    parts = urlsplit(url) if len(url) <= URL_MAX and url.isprintable() and " " not in url else None
    try:
        ok = parts is not None and parts.scheme in ("http", "https") and bool(parts.hostname) and parts.port != 0
    except ValueError:  # a port that is not a number
        ok = False
    if not ok:
        raise HostInputInvalid(
            {"url": Message(N_("Give an absolute http:// or https:// URL (at most %(max)s characters)."), max=URL_MAX)}
        )
    return url


async def add_endpoint(url: str, actor: User) -> tuple[HostWebhookEndpoint, str]:
    """Add an endpoint with a new signing secret; returns the row and the secret (to show once).

    Raises:
        HostInputInvalid: a bad URL, or one already listed (here or in `HOST_WEBHOOK_ENDPOINTS`).
    """
    url = check_url(url)
    if any(e.url == url for e in service.settings().webhook_endpoints):
        raise HostInputInvalid({"url": "This URL is already set in HOST_WEBHOOK_ENDPOINTS."})
    secret = new_secret()
    async with transaction():
        if await HostWebhookEndpoint.exists().where(HostWebhookEndpoint.url == url):
            raise HostInputInvalid({"url": "This URL is already listed below (enable it, or delete it first)."})
        row = HostWebhookEndpoint(url=url, secret=secret)
        await row.save()
        await record_action(actor, "host_webhook_endpoint.added", url, None, {"enabled": True})
    return row, secret


async def set_endpoint_enabled(endpoint_id: int, enabled: bool, actor: User) -> str | None:
    """Enable or disable an endpoint of the table; returns its URL (None: no such endpoint)."""
    async with transaction():
        row = await HostWebhookEndpoint.objects().get(HostWebhookEndpoint.id == endpoint_id)
        if row is None:
            return None
        was = row.disabled_at is None
        await HostWebhookEndpoint.update(
            {HostWebhookEndpoint.disabled_at: None if enabled else datetime.now(UTC)}
        ).where(HostWebhookEndpoint.id == endpoint_id)
        if was != enabled:
            action = "host_webhook_endpoint.enabled" if enabled else "host_webhook_endpoint.disabled"
            await record_action(actor, action, row.url, {"enabled": was}, {"enabled": enabled})
    return str(row.url)


async def delete_endpoint(endpoint_id: int, actor: User) -> str | None:
    """Delete an endpoint of the table (its pending webhooks then fail as "no longer configured");
    returns its URL (None: no such endpoint)."""
    async with transaction():
        rows = (
            await HostWebhookEndpoint.delete()
            .where(HostWebhookEndpoint.id == endpoint_id)
            .returning(HostWebhookEndpoint.url)
        )
        if not rows:
            return None
        await record_action(actor, "host_webhook_endpoint.deleted", rows[0]["url"], {"exists": True}, None)
    return str(rows[0]["url"])


async def recent_deliveries(limit: int = RECENT_DELIVERIES) -> list[dict[str, Any]]:
    """The newest outbox rows: `id, message_id, endpoint_url, status, attempts, last_error, created_at,
    next_attempt_at, delivered_at`, plus `external_id` (the person's OIDC subject)."""
    rows: list[dict[str, Any]] = await HostWebhook.raw(
        "SELECT h.id, h.message_id, h.endpoint_url, h.status, h.attempts, h.last_error, h.created_at, "
        'h.next_attempt_at, h.delivered_at, u.subject AS external_id FROM host_webhook h JOIN "user" u '
        "ON u.id = h.user_id ORDER BY h.id DESC LIMIT {}",
        limit,
    )
    return rows


async def redeliver(row_id: int, actor: User) -> str | None:
    """Queue one outbox row again (any status); returns its message id (None: no such row)."""
    async with transaction():
        message_id = await redeliver_row(row_id)
        if message_id is not None:
            await record_action(actor, "host_webhook.redelivered", message_id, None, {"row": row_id})
    return message_id
