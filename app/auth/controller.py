"""`/auth/*`: sign in with OpenID Connect (Auth0 or the local provider), sign out."""

from __future__ import annotations

import logging
import time
from typing import Annotated, Any

from litestar import Controller, Request, get, post
from litestar.di import NamedDependency
from litestar.params import FromQuery, QueryParameter
from litestar.response import Redirect, Template
from litestar.status_codes import HTTP_303_SEE_OTHER

from app.auth.oidc import OIDCClient, SignInError
from app.auth.service import roles_from_claims, upsert_user
from app.web.i18n import N_, SESSION_LANGUAGE_KEY
from app.web.redirects import safe_next_path
from app.web.sessions import rotate_session

logger = logging.getLogger(__name__)

PENDING_KEY = "oidc_pending"
MAX_PENDING = 5
PENDING_TTL_SECONDS = 600


def _error_page(reason: str, message: str, status_code: int = 400) -> Template:
    return Template(
        template_name="auth/error.html",
        context={"reason": reason, "message": message},
        status_code=status_code,
    )


class AuthController(Controller):
    """Sign-in and sign-out routes."""

    path = "/auth"

    @get("/login", name="auth:login", cache=False)
    async def login(
        self, request: Request[Any, Any, Any], oidc: NamedDependency[OIDCClient], next: FromQuery[str | None] = None
    ) -> Redirect | Template:
        """Start the authorization code flow; `state`, `nonce` and the PKCE verifier go in the session."""
        try:
            auth = await oidc.authorization_request()
        except SignInError as exc:
            return _error_page(exc.reason, str(exc), status_code=502)
        pending: dict[str, Any] = dict(request.session.get(PENDING_KEY) or {})
        now = int(time.time())
        # Several tabs may start a sign-in at once; keep the newest few, each for ten minutes.
        pending = {k: v for k, v in pending.items() if now - int(v.get("at", 0)) < PENDING_TTL_SECONDS}
        for stale in sorted(pending, key=lambda k: pending[k]["at"])[: max(0, len(pending) - MAX_PENDING + 1)]:
            pending.pop(stale)
        pending[auth.state] = {
            "nonce": auth.nonce,
            "code_verifier": auth.code_verifier,
            "next": safe_next_path(next),
            "at": now,
        }
        request.set_session({**request.session, PENDING_KEY: pending})
        return Redirect(auth.url, status_code=HTTP_303_SEE_OTHER)

    @get("/callback", name="auth:callback", cache=False)
    async def callback(
        self,
        request: Request[Any, Any, Any],
        oidc: NamedDependency[OIDCClient],
        code: FromQuery[str | None] = None,
        state_param: Annotated[str | None, QueryParameter(name="state")] = None,
        error: FromQuery[str | None] = None,
    ) -> Redirect | Template:
        """Finish sign-in: check `state`, exchange the code, validate the ID token, rotate the session."""
        pending_all: dict[str, Any] = dict(request.session.get(PENDING_KEY) or {})
        pending = pending_all.pop(state_param, None) if state_param else None
        if request.session:
            # A state is good for one callback only, whatever happens next.
            request.set_session({**request.session, PENDING_KEY: pending_all})
        if error:
            logger.info("Sign-in refused by the provider: %s", error)
            if error == "access_denied":
                return _error_page("access_denied", N_("Sign-in was cancelled, so you are not signed in."))
            return _error_page(error, N_("The sign-in provider refused the request."))
        if pending is None or int(time.time()) - int(pending.get("at", 0)) >= PENDING_TTL_SECONDS:
            logger.warning("Sign-in callback with an unknown or expired state")
            return _error_page("state_mismatch", N_("This sign-in link has expired or was already used."))
        if not code:
            return _error_page("missing_code", N_("The sign-in provider sent no authorization code."))
        try:
            tokens = await oidc.exchange_code(code, pending["code_verifier"])
            claims = await oidc.validate_id_token(tokens["id_token"], pending["nonce"])
        except SignInError as exc:
            return _error_page(exc.reason, str(exc), status_code=502 if exc.reason == "provider_unavailable" else 400)
        user = await upsert_user(claims, roles_from_claims(claims, request.app.state.settings.oidc))
        rotate_session(request)
        request.set_session(
            {
                "user_id": user.id,
                "user_name": user.name or user.email or user.subject,
                # For the nav only; every /admin request re-reads the roles from the database.
                "roles": list(user.roles or []),
                "id_token": tokens["id_token"],
                "signed_in_at": int(time.time()),
                **({SESSION_LANGUAGE_KEY: user.locale} if user.locale else {}),
            }
        )
        logger.info("User %s signed in", user.id)
        return Redirect(pending["next"], status_code=HTTP_303_SEE_OTHER)

    @post("/logout", name="auth:logout", status_code=HTTP_303_SEE_OTHER)
    async def logout(self, request: Request[Any, Any, Any], oidc: NamedDependency[OIDCClient]) -> Redirect:
        """Clear the server-side session, then end the provider's session too."""
        id_token = request.session.get("id_token")
        request.clear_session()
        return_to = str(request.app.state.settings.app.base_url) + "/"
        return Redirect(await oidc.logout_url(return_to, id_token_hint=id_token), status_code=HTTP_303_SEE_OTHER)
