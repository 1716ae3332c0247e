"""Who is calling the API: a bearer access token, or the session cookie of a same-site browser.

`ApiAuthMiddleware` (on every API controller) finds the caller once per request and keeps it on the
request's state:

- `Authorization: Bearer <JWT>`: verified by `OIDCClient.validate_access_token` against the issuer's
  JWKS (signature, exact `iss`, `aud` = `API_AUDIENCE`, `exp`, `nbf`). The person is the user with
  that subject; this app trusts exactly one issuer, and `iss` must equal it, so `(iss, sub)` names
  the user. Someone who never signed in to the pages gets a user row (subject only) on first call.
  A bad token is a 401 `invalid_token`, never a fall-back to the cookie. No CSRF check: a browser
  never attaches an `Authorization` header on its own.
- Otherwise the session cookie: the signed-in person of the pages. Unsafe methods must carry the
  CSRF token in the `x-csrftoken` header (checked by Litestar's own `CSRFMiddleware`, the same
  cookie and secret as the forms).

`requires_api_user` (a guard) answers 401 `authentication_required` when neither is there.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass, replace
from typing import Any, Literal

from litestar import Request
from litestar.connection import ASGIConnection
from litestar.handlers.base import BaseRouteHandler
from litestar.middleware.csrf import CSRFMiddleware
from litestar.types import ASGIApp, Receive, Scope, Send

from app.api.errors import ApiError
from app.auth.oidc import OIDCClient, SignInError
from app.auth.service import roles_from_claims
from app.auth.tables import User
from app.web.i18n import remember_user_language

PRINCIPAL_KEY = "api_principal"


@dataclass(frozen=True)
class Principal:
    """The caller: the user and how they proved it (`credential_id` names the token or session)."""

    user: User
    via: Literal["bearer", "session"]
    credential_id: str
    roles: frozenset[str] = frozenset()
    """Operator roles (`admin`, `support`): for a bearer token from its `OIDC_ROLES_CLAIM` claim (read by
    `roles_from_claims`, as at sign-in), for a session the roles stored at the last sign-in."""


async def user_for_subject(subject: str) -> User:
    """The user with OpenID subject `subject`, created (subject only) when they never signed in."""
    user = await User.objects().get(User.subject == subject)
    if user is not None:
        return user
    await User.insert(User(subject=subject)).on_conflict(target=User.subject, action="DO NOTHING")
    user = await User.objects().get(User.subject == subject)
    assert user is not None
    return user


async def authenticate_bearer(oidc: OIDCClient, audience: str, header: str) -> Principal:
    """The principal for an `Authorization` header value.

    Raises:
        ApiError: 401 `invalid_token` (wrong scheme, or any failed token check), 502
            `provider_unavailable` when the issuer's JWKS cannot be fetched.
    """
    scheme, _, token = header.partition(" ")
    token = token.strip()
    if scheme.lower() != "bearer" or not token:
        raise ApiError("invalid_token", "Send the access token as Authorization: Bearer <token>.")
    try:
        claims = await oidc.validate_access_token(token, audience)
    except SignInError as exc:
        if exc.reason == "provider_unavailable":
            raise ApiError("provider_unavailable") from exc
        raise ApiError("invalid_token") from exc
    user = await user_for_subject(str(claims["sub"]))
    return Principal(
        user=user,
        via="bearer",
        credential_id="token:" + hashlib.sha256(token.encode()).hexdigest()[:32],
        roles=frozenset(roles_from_claims(claims, oidc.settings)),
    )


class ApiAuthMiddleware:
    """Finds the caller (see the module docstring) and enforces CSRF for cookie callers."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app
        self._csrf_app: ASGIApp | None = None

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        request: Request[Any, Any, Any] = Request(scope, receive)
        state = scope.setdefault("state", {})
        header = request.headers.get("authorization")
        settings = request.app.state.settings
        if header is not None:
            state[PRINCIPAL_KEY] = await authenticate_bearer(request.app.state.oidc, settings.api.audience, header)
            await self.app(scope, receive, send)
            return
        session = scope.get("session")
        user_id = session.get("user_id") if isinstance(session, dict) else None
        user = await User.objects().get(User.id == user_id) if isinstance(user_id, int) else None
        if user is None:
            await self.app(scope, receive, send)
            return
        # The row was just read from the database: its roles are those the console's guards read.
        state[PRINCIPAL_KEY] = Principal(
            user=user, via="session", credential_id=f"session-user:{user.id}", roles=frozenset(user.roles or [])
        )
        if self._csrf_app is None:
            # The app's CSRF config excludes the JSON paths (bearer callers have no cookie); here the
            # same check applies to cookie callers only.
            assert request.app.csrf_config is not None
            config = replace(request.app.csrf_config, exclude=None)
            self._csrf_app = CSRFMiddleware(app=self.app, config=config)
        await self._csrf_app(scope, receive, send)


def principal_of(connection: ASGIConnection[Any, Any, Any, Any]) -> Principal | None:
    """The caller found by `ApiAuthMiddleware`, or None."""
    principal = connection.scope.get("state", {}).get(PRINCIPAL_KEY)
    return principal if isinstance(principal, Principal) else None


async def requires_api_user(connection: ASGIConnection[Any, Any, Any, Any], _: BaseRouteHandler) -> None:
    """Guard: a bearer token or a signed-in session is required.

    Raises:
        ApiError: 401 `authentication_required`.
    """
    if principal_of(connection) is None:
        raise ApiError("authentication_required")


def _requires_roles(allowed: frozenset[str], message: str) -> Any:
    async def guard(connection: ASGIConnection[Any, Any, Any, Any], _: BaseRouteHandler) -> None:
        principal = principal_of(connection)
        if principal is None:
            raise ApiError("authentication_required")
        if not principal.roles & allowed:
            raise ApiError("forbidden", message)

    return guard


requires_api_support = _requires_roles(
    frozenset({"support", "admin"}), "The operator endpoints need the support or admin role."
)
"""Guard: read-only operator endpoints (role `support` or `admin`, as `app.web.guards.requires_support`).

Raises: ApiError 401 `authentication_required`, 403 `forbidden`."""

requires_api_admin = _requires_roles(frozenset({"admin"}), "This needs the admin role.")
"""Guard: operator endpoints that change something (role `admin`, as `app.web.guards.requires_admin`).

Raises: ApiError 401 `authentication_required`, 403 `forbidden`."""


async def provide_api_user(request: Request[Any, Any, Any]) -> User:
    """The calling user (dependency `api_user`; the guard has made sure there is one)."""
    principal = principal_of(request)
    if principal is None:
        raise ApiError("authentication_required")
    remember_user_language(request, principal.user.locale)
    return principal.user


def session_rate_limit_key(request: Request[Any, Any, Any]) -> str:
    """Rate-limit identity of the session-creating endpoints: the person, the same key as the
    pages' `POST /portal/sessions` limit, so pages and API share one budget per person."""
    principal = principal_of(request)
    return f"portal-sessions:user:{principal.user.id if principal else 'anonymous'}"
