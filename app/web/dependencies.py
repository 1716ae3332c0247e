"""Dependencies handed to handlers through `Provide` (registered in `app.asgi.create_app`)."""

from __future__ import annotations

from typing import Any

from litestar import Request
from litestar.datastructures import State

from app.auth.oidc import OIDCClient
from app.auth.tables import User
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
    user = await User.objects().get(User.id == user_id) if isinstance(user_id, int) else None
    if user is None:
        request.clear_session()
        raise LoginRequired
    remember_user_language(request, user.locale)
    return user
