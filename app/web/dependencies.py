"""Dependencies handed to handlers through `Provide` (registered in `app.asgi.create_app`)."""

from __future__ import annotations

from typing import Any

from litestar import Request
from litestar.datastructures import State

from app.auth.oidc import OIDCClient
from app.auth.tables import User
from app.billing.service import PersonSummary, person_summary
from app.db import fetch, row_of
from app.web.guards import LoginRequired
from app.web.i18n import remember_user_language


def provide_oidc(state: State) -> OIDCClient:
    """The app's one `OIDCClient` (discovery and JWKS cached per process)."""
    client: OIDCClient = state.oidc
    return client


async def provide_current_user(request: Request[Any, Any, Any]) -> User:
    """The signed-in `User` row; its chosen language (`user.locale`) then decides the page's language.

    Raises:
        LoginRequired: no user id in the session, or the user no longer exists.
    """
    user_id = request.session.get("user_id")
    user = None
    if isinstance(user_id, int):  # one plain statement: every signed-in request asks
        rows = await fetch('SELECT * FROM "user" WHERE id = {}', user_id)
        user = row_of(User, rows[0]) if rows else None
    if user is None:
        request.clear_session()
        raise LoginRequired
    remember_user_language(request, user.locale)
    return user


async def signed_in_person(request: Request[Any, Any, Any]) -> PersonSummary:
    """The signed-in person with their billing and features, in one SQL statement (`person_summary`).

    For pages that show billing: it replaces `current_user`, which would cost a query of its own.

    Raises:
        LoginRequired: no user id in the session, or the user no longer exists.
    """
    user_id = request.session.get("user_id")
    summary = await person_summary(user_id) if isinstance(user_id, int) else None
    if summary is None:
        request.clear_session()
        raise LoginRequired
    remember_user_language(request, summary.user.locale)
    return summary
