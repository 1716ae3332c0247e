"""Reads behind the host API: one indexed query per request (see `scripts/bench_state.py`)."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from typing import Any

from app.entitlements.tables import EntitlementOverride, Feature
from piccolo_conf import DB

# The published state as JSON text, less the entitlements whose `until` has passed (at $2), so the
# state endpoint hands PostgreSQL's text to the client without decoding and re-encoding it. While no
# entitlement has ended (`entitlements_until`, the earliest `until`, is NULL or later than $2: nearly
# always) the stored document is served as is, without taking its entitlements apart.
_STATE_COLUMNS = (
    "SELECT u.subject, u.email, u.email_verified, CASE WHEN cs.state IS NULL OR cs.state = '{}'::jsonb "
    "THEN NULL WHEN cs.entitlements_until IS NULL OR cs.entitlements_until > $2 THEN cs.state::text "
    "ELSE jsonb_set(cs.state, '{entitlements}', coalesce((SELECT jsonb_agg(e ORDER BY n) "
    "FROM jsonb_array_elements(coalesce(cs.state->'entitlements', '[]'::jsonb)) WITH ORDINALITY AS x(e, n) "
    "WHERE e->>'until' IS NULL OR (e->>'until')::timestamptz > $2), '[]'::jsonb))::text END AS state "
    'FROM "user" u LEFT JOIN customer_state cs ON cs.user_id = u.id '
)
_BY_SUBJECT = _STATE_COLUMNS + "WHERE u.subject = $1"
_BY_EMAIL = _STATE_COLUMNS + "WHERE lower(u.email) = lower($1) AND u.email_verified LIMIT 2"


def _storable(value: str, max_length: int) -> bool:
    """False for what PostgreSQL text cannot hold (NUL) or no stored id is as long as."""
    return "\x00" not in value and 0 < len(value) <= max_length


async def _fetch(sql: str, *args: Any) -> list[Any]:
    """Rows of one read-only statement straight through asyncpg (a prepared statement cached per
    connection): the host API's hot path skips Piccolo's query building, one round trip each."""
    pool = DB.pool
    if pool is None:  # a CLI or script without the app's pool
        connection = await DB.get_new_connection()
        try:
            return list(await connection.fetch(sql, *args))
        finally:
            await connection.close()
    return list(await pool.fetch(sql, *args))


async def customer_state_json(external_id: str, now: datetime | None = None) -> bytes | None:
    """The published state of the person whose OpenID subject (or verified email) is `external_id`,
    as JSON (UTF-8), entitlements whose `until` has passed left out even before the delivery loop
    recomputes the person. None when nobody (or more than one person) matches. `now` is UTC.
    """
    if not _storable(external_id, 320):
        return None
    now = now or datetime.now(UTC)
    rows = await _fetch(_BY_SUBJECT, external_id, now)
    if not rows and "@" in external_id:
        rows = await _fetch(_BY_EMAIL, external_id, now)
    if len(rows) != 1:
        return None
    row = rows[0]
    if row["state"] is not None:
        return str(row["state"]).encode()
    empty = {
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
    return json.dumps(empty).encode()


async def customer_state(external_id: str, now: datetime | None = None) -> dict[str, Any] | None:
    """`customer_state_json`, decoded."""
    found = await customer_state_json(external_id, now)
    return None if found is None else dict(json.loads(found))


async def feature_exists(lookup_key: str) -> bool:
    """True for a feature of the catalogue or of an operator override."""
    if not _storable(lookup_key, 80):
        return False
    return bool(
        await Feature.exists().where(Feature.lookup_key == lookup_key)
        or await EntitlementOverride.exists().where(EntitlementOverride.feature == lookup_key)
    )
