"""Guards: plain functions set on controllers (`guards=[requires_login]`)."""

from __future__ import annotations

from typing import Any

from litestar.connection import ASGIConnection
from litestar.handlers.base import BaseRouteHandler


class LoginRequired(Exception):
    """Raised for a page that needs a signed-in person; answered with a redirect to sign in."""


def requires_login(connection: ASGIConnection[Any, Any, Any, Any], _: BaseRouteHandler) -> None:
    """Let the request through only when the session holds a signed-in user id.

    Raises:
        LoginRequired: turned into a 303 to `/auth/login?next=<this path>` (or `HX-Redirect`).
    """
    if not isinstance(connection.session.get("user_id"), int):
        raise LoginRequired
