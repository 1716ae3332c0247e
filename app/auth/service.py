"""Sign-in logic: the user upsert behind the OpenID Connect callback, and roles from the ID token."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from app.admin.audit import record_action
from app.auth.tables import User
from app.settings import OIDCSettings

ROLES = ("admin", "support")
"""`admin` may do everything in `/admin`; `support` may read customers, events and analytics."""


def roles_from_claims(claims: dict[str, Any], oidc: OIDCSettings) -> list[str]:
    """The console roles of a person, from validated ID token `claims`; sorted, only known `ROLES`.

    The claim named by `OIDC_ROLES_CLAIM` may be a list of strings or one space/comma separated
    string. `ADMIN_SUBJECTS` and `ADMIN_EMAILS` grant `admin` without the provider; an email counts
    only when the provider says `email_verified: true`.
    """
    raw = claims.get(oidc.roles_claim)
    if isinstance(raw, str):
        values = raw.replace(",", " ").split()
    elif isinstance(raw, list):
        values = [str(v) for v in raw]
    else:
        values = []
    roles = {v.strip().lower() for v in values} & set(ROLES)
    email = str(claims.get("email") or "").lower()
    if str(claims.get("sub")) in oidc.admin_subjects or (
        email and claims.get("email_verified") is True and email in oidc.admin_emails
    ):
        roles.add("admin")
    return sorted(roles)


async def upsert_user(claims: dict[str, Any], roles: list[str] | None = None) -> User:
    """Create or update the user for validated ID token `claims`; returns the saved row.

    Keyed by `sub` with `INSERT … ON CONFLICT (subject) DO UPDATE`, so two simultaneous first
    sign-ins of one person make one row. `email`, `email_verified`, `name` and `roles` follow the
    provider on every sign-in (`roles` from `roles_from_claims`; None leaves them empty); a change
    of roles is written to the audit table. `last_login_at` is set to now (UTC).
    """
    now = datetime.now(UTC)
    email = claims.get("email")
    name = claims.get("name") or claims.get("nickname") or None
    subject = str(claims["sub"])
    previous = await User.select(User.roles).where(User.subject == subject).first()
    row = User(
        subject=subject,
        email=str(email) if email else None,
        email_verified=claims.get("email_verified") is True,
        name=str(name) if name else None,
        roles=list(roles or []),
        created_at=now,
        last_login_at=now,
    )
    result = (
        await User.insert(row)
        .on_conflict(
            target=User.subject,
            action="DO UPDATE",
            values=[User.email, User.email_verified, User.name, User.roles, User.last_login_at],
        )
        .returning(User.id)
    )
    user = await User.objects().get(User.id == result[0]["id"])
    assert user is not None
    before = sorted(previous["roles"] or []) if previous else []
    if before != sorted(user.roles or []):
        await record_action(
            None, "roles.changed", f"user:{user.id}", {"roles": before}, {"roles": sorted(user.roles or [])}
        )
    return user
