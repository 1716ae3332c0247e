"""Host API keys: `bpk_<prefix>_<secret>`, shown once at creation; only a SHA-256 of the whole key is kept.

The keys are 32 random bytes, so a fast hash is enough (a password hash would only slow every
request down without adding safety). Every key is read-only (`scope = "read"`).
"""

from __future__ import annotations

import hashlib
import secrets
import time
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


CACHE_SECONDS = 5.0
"""How long a process trusts a key it verified: a key revoked elsewhere stops working within this."""
LAST_USED_EVERY_SECONDS = 60.0
"""`last_used_at` is written at most this often per key and process (not on every request)."""
_CACHE_MAX = 10_000
_verified: dict[str, tuple[float, dict[str, Any]]] = {}
_last_used_written: dict[str, float] = {}


def forget_verified_keys() -> None:
    """Drop this process's cache of verified keys (after a revocation here; tests)."""
    _verified.clear()
    _last_used_written.clear()


async def find_key(key: str) -> dict[str, Any] | None:
    """The active key matching `key` as `{id, prefix, scope}`, or None (unknown, malformed or revoked).

    A verified key is remembered in this process for `CACHE_SECONDS` (the host API's hot path then
    makes no query for it); a revocation in this process forgets at once, one in another process
    within `CACHE_SECONDS`. Unknown keys are never cached, so guessing cannot fill the memory.
    """
    if not key.startswith(KEY_PREFIX) or len(key) > 200:
        return None
    digest = hash_key(key)
    now = time.monotonic()
    cached = _verified.get(digest)
    if cached is not None and cached[0] > now:
        found = cached[1]
    else:
        rows = await HostApiKey.raw(
            "SELECT id, prefix, scope FROM host_api_key WHERE key_hash = {} AND revoked_at IS NULL", digest
        )
        if not rows:
            _verified.pop(digest, None)
            return None
        found = dict(rows[0])
        if len(_verified) >= _CACHE_MAX:
            _verified.clear()
        _verified[digest] = (now + CACHE_SECONDS, found)
    # Keyed by the random prefix, not the row id, so a recreated table never inherits the throttle.
    if now - _last_used_written.get(found["prefix"], -LAST_USED_EVERY_SECONDS) >= LAST_USED_EVERY_SECONDS:
        _last_used_written[found["prefix"]] = now
        await HostApiKey.update({HostApiKey.last_used_at: datetime.now(UTC)}).where(HostApiKey.id == found["id"])
    return found


async def revoke_key(prefix: str) -> bool:
    """Revoke the key with this public prefix; False when there is no such active key."""
    rows = (
        await HostApiKey.update({HostApiKey.revoked_at: datetime.now(UTC)})
        .where((HostApiKey.prefix == prefix) & HostApiKey.revoked_at.is_null())
        .returning(HostApiKey.id)
    )
    forget_verified_keys()
    return bool(rows)
