"""`requires_entitlement("feature")`: a Litestar guard for pages of this app that need a feature."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any

from litestar.connection import ASGIConnection
from litestar.exceptions import PermissionDeniedException
from litestar.handlers.base import BaseRouteHandler

from app.entitlements.service import is_entitled
from app.web.guards import LoginRequired

Guard = Callable[[ASGIConnection[Any, Any, Any, Any], BaseRouteHandler], Awaitable[None]]


def requires_entitlement(feature: str) -> Guard:
    """A guard letting through signed-in people who may use `feature` (a lookup key) now.

    Raises:
        LoginRequired: nobody is signed in (answered with a redirect to sign in).
        PermissionDeniedException: 403 page "Your plan does not include this."
    """

    async def guard(connection: ASGIConnection[Any, Any, Any, Any], _: BaseRouteHandler) -> None:
        user_id = connection.session.get("user_id")
        if not isinstance(user_id, int):
            raise LoginRequired
        if not await is_entitled(user_id, feature):
            raise PermissionDeniedException(detail="Your plan does not include this.")

    return guard
