"""Sign-in logic: the user upsert behind the OpenID Connect callback."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from app.auth.tables import User


async def upsert_user(claims: dict[str, Any]) -> User:
    """Create or update the user for validated ID token `claims`; returns the saved row.

    Keyed by `sub` with `INSERT … ON CONFLICT (subject) DO UPDATE`, so two simultaneous first
    sign-ins of one person make one row. `email`, `email_verified` and `name` follow the
    provider on every sign-in; `last_login_at` is set to now (UTC).
    """
    now = datetime.now(UTC)
    email = claims.get("email")
    name = claims.get("name") or claims.get("nickname") or None
    row = User(
        subject=str(claims["sub"]),
        email=str(email) if email else None,
        email_verified=claims.get("email_verified") is True,
        name=str(name) if name else None,
        created_at=now,
        last_login_at=now,
    )
    result = (
        await User.insert(row)
        .on_conflict(
            target=User.subject,
            action="DO UPDATE",
            values=[User.email, User.email_verified, User.name, User.last_login_at],
        )
        .returning(User.id)
    )
    user = await User.objects().get(User.id == result[0]["id"])
    assert user is not None
    return user
