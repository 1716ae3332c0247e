"""Reads behind the host API: one indexed query per request (see `scripts/bench_state.py`)."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from typing import Any

from app.entitlements.tables import EntitlementOverride, Feature, HostApiKey

_BY_SUBJECT = (
    'SELECT u.subject, u.email, u.email_verified, cs.state FROM "user" u '
    "LEFT JOIN customer_state cs ON cs.user_id = u.id WHERE u.subject = {}"
)
_BY_EMAIL = (
    'SELECT u.subject, u.email, u.email_verified, cs.state FROM "user" u '
    "LEFT JOIN customer_state cs ON cs.user_id = u.id "
    "WHERE lower(u.email) = lower({}) AND u.email_verified LIMIT 2"
)


def _storable(value: str, max_length: int) -> bool:
    """False for what PostgreSQL text cannot hold (NUL) or no stored id is as long as."""
    return "\x00" not in value and 0 < len(value) <= max_length


def _not_after(until: str | None, now: datetime) -> bool:
    return until is None or datetime.fromisoformat(until.replace("Z", "+00:00")) > now


async def customer_state(external_id: str, now: datetime | None = None) -> dict[str, Any] | None:
    """The published state of the person whose OpenID subject (or verified email) is `external_id`.

    None when nobody (or more than one person) matches. Entitlements whose `until` has passed are
    left out even before the delivery loop recomputes the person.
    """
    if not _storable(external_id, 320):
        return None
    rows = await HostApiKey.raw(_BY_SUBJECT, external_id)
    if not rows and "@" in external_id:
        rows = await HostApiKey.raw(_BY_EMAIL, external_id)
    if len(rows) != 1:
        return None
    row = rows[0]
    raw = row["state"]
    state: dict[str, Any] = json.loads(raw) if isinstance(raw, str) else dict(raw or {})
    if not state:
        state = {
            "object": "customer_state",
            "external_id": row["subject"],
            "email": row["email"] if row["email_verified"] else None,
            "stripe_customer_id": None,
            "plan": None,
            "status": "none",
            "premium": False,
            "renews_at": None,
            "cancels_at": None,
            "entitlements": [],
            "version": 0,
            "updated_at": None,
        }
    now = now or datetime.now(UTC)
    state["entitlements"] = [e for e in state.get("entitlements", []) if _not_after(e.get("until"), now)]
    return state


async def feature_exists(lookup_key: str) -> bool:
    """True for a feature of the catalogue or of an operator override."""
    if not _storable(lookup_key, 80):
        return False
    return bool(
        await Feature.exists().where(Feature.lookup_key == lookup_key)
        or await EntitlementOverride.exists().where(EntitlementOverride.feature == lookup_key)
    )
