"""Guards: plain functions set on controllers (`guards=[requires_login]`)."""

from __future__ import annotations

from typing import Any

from litestar.connection import ASGIConnection
from litestar.exceptions import PermissionDeniedException
from litestar.handlers.base import BaseRouteHandler


class LoginRequired(Exception):
    """Raised for a page that needs a signed-in person; answered with a redirect to sign in."""


def _require_user_id(connection: ASGIConnection[Any, Any, Any, Any]) -> None:
    if not isinstance(connection.session.get("user_id"), int):
        raise LoginRequired


async def requires_login(connection: ASGIConnection[Any, Any, Any, Any], _: BaseRouteHandler) -> None:
    """Let the request through only when the session holds a signed-in user id.

    A coroutine on purpose: Litestar runs a plain-function guard in a worker thread, a thread hop
    on every page for a dictionary lookup.

    Raises:
        LoginRequired: turned into a 303 to `/auth/login?next=<this path>` (or `HX-Redirect`).
    """
    _require_user_id(connection)


async def _roles(connection: ASGIConnection[Any, Any, Any, Any]) -> set[str]:
    """The signed-in person's roles as stored at their last sign-in (read from the database, so a
    role removed in the provider stops working at the next sign-in, and a deleted user at once)."""
    from app.auth.tables import User

    _require_user_id(connection)
    row = await User.select(User.roles).where(User.id == connection.session["user_id"]).first()
    if row is None:
        raise LoginRequired
    return set(row["roles"] or [])


async def requires_support(connection: ASGIConnection[Any, Any, Any, Any], _: BaseRouteHandler) -> None:
    """Read-only console pages: role `support` or `admin`.

    Raises:
        LoginRequired: nobody is signed in. PermissionDeniedException: 403 page for anyone else.
    """
    if not _roles_allow(await _roles(connection), {"support", "admin"}):
        raise PermissionDeniedException("The operator console needs the support or admin role.")


async def requires_admin(connection: ASGIConnection[Any, Any, Any, Any], _: BaseRouteHandler) -> None:
    """Console actions that change something: role `admin` only.

    Raises:
        LoginRequired: nobody is signed in. PermissionDeniedException: 403 page for anyone else.
    """
    if not _roles_allow(await _roles(connection), {"admin"}):
        raise PermissionDeniedException("This needs the admin role.")


def _roles_allow(roles: set[str], allowed: set[str]) -> bool:
    return bool(roles & allowed)
