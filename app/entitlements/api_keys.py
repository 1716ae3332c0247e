"""Host API keys: `bpk_<prefix>_<secret>`, shown once at creation; only a SHA-256 of the whole key is kept.

The keys are 32 random bytes, so a fast hash is enough (a password hash would only slow every
request down without adding safety). Every key is read-only (`scope = "read"`).
"""

from __future__ import annotations

import hashlib
import secrets
from datetime import UTC, datetime
from typing import Any

from app.entitlements.tables import HostApiKey

KEY_PREFIX = "bpk_"


def hash_key(key: str) -> str:
    """sha256 hex of the full key."""
    return hashlib.sha256(key.encode()).hexdigest()


async def create_key(name: str) -> tuple[HostApiKey, str]:
    """Create a read-only key named `name`; returns the row and the key (shown once, never stored)."""
    prefix = secrets.token_hex(6)
    key = f"{KEY_PREFIX}{prefix}_{secrets.token_urlsafe(32)}"
    row = HostApiKey(name=name, prefix=prefix, key_hash=hash_key(key), scope="read")
    await row.save()
    return row, key


async def find_key(key: str) -> dict[str, Any] | None:
    """The active key matching `key` as `{id, prefix, scope}`, or None (unknown, malformed or revoked)."""
    if not key.startswith(KEY_PREFIX) or len(key) > 200:
        return None
    rows = await HostApiKey.raw(
        "SELECT id, prefix, scope FROM host_api_key WHERE key_hash = {} AND revoked_at IS NULL", hash_key(key)
    )
    return dict(rows[0]) if rows else None


async def revoke_key(prefix: str) -> bool:
    """Revoke the key with this public prefix; False when there is no such active key."""
    rows = (
        await HostApiKey.update({HostApiKey.revoked_at: datetime.now(UTC)})
        .where((HostApiKey.prefix == prefix) & HostApiKey.revoked_at.is_null())
        .returning(HostApiKey.id)
    )
    return bool(rows)
