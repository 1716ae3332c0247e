"""The audit trail of operator actions (`audit_entry`): written by every console service that
changes something, and listed on `/admin/audit`."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from app.admin.tables import AuditEntry
from app.auth.tables import User


def actor_label(user: User | None) -> str:
    """How an operator is named in the trail: email, else OIDC subject; `system` for none."""
    if user is None:
        return "system"
    return str(user.email or user.subject)


async def record_action(actor: User | None, action: str, target: str, before: Any = None, after: Any = None) -> None:
    """Append one audit entry (`before`/`after` are JSON-serialisable values; the time is now, UTC).

    Call it inside the same short transaction as the change when there is one, so a rolled-back
    change leaves no entry.
    """
    await AuditEntry.insert(
        AuditEntry(
            actor_user=actor.id if actor else None,
            actor=actor_label(actor),
            action=action,
            target=target,
            before=before,
            after=after,
            at=datetime.now(UTC),
        )
    )


async def recent_actions(
    limit: int = 100, action: str | None = None, target: str | None = None
) -> list[dict[str, Any]]:
    """The newest audit entries first (at most `limit`), optionally for one action or target.

    Each is a dict: `id`, `actor`, `action`, `target`, `before`, `after` (decoded JSON), `at` (UTC).
    """
    query = AuditEntry.select(
        AuditEntry.id,
        AuditEntry.actor,
        AuditEntry.action,
        AuditEntry.target,
        AuditEntry.before,
        AuditEntry.after,
        AuditEntry.at,
    )
    if action:
        query = query.where(AuditEntry.action == action)
    if target:
        query = query.where(AuditEntry.target == target)
    rows: list[dict[str, Any]] = (
        await query.order_by(AuditEntry.id, ascending=False).limit(limit).output(load_json=True)
    )
    return rows
