"""Pages that belong to no area: the landing page, the language switch, and the 404 page for
unknown paths."""

from __future__ import annotations

from typing import Annotated, Any

from litestar import Request, get, post
from litestar.datastructures import Cookie
from litestar.enums import RequestEncodingType
from litestar.exceptions import NotFoundException, ValidationException
from litestar.params import Body, FromPath
from litestar.response import Redirect, Template
from litestar.status_codes import HTTP_303_SEE_OTHER

from app.auth.tables import User
from app.web.i18n import LANGUAGE_COOKIE, LANGUAGES, SESSION_LANGUAGE_KEY
from app.web.redirects import safe_next_path

LANGUAGE_COOKIE_MAX_AGE = 400 * 24 * 3600  # seconds: the longest browsers keep a cookie


@get("/", name="home", cache=False)
async def home(request: Request[Any, Any, Any]) -> Template | Redirect:
    """Signed-in people go to their account; others see what this is and a sign-in button."""
    if isinstance(request.session.get("user_id"), int):
        return Redirect(request.app.route_reverse("account:show"), status_code=HTTP_303_SEE_OTHER)
    return Template(template_name="home.html")


@post("/language", name="language:set", status_code=HTTP_303_SEE_OTHER)
async def set_language(
    request: Request[Any, Any, Any],
    data: Annotated[dict[str, str], Body(media_type=RequestEncodingType.URL_ENCODED)],
) -> Redirect:
    """The footer's language switcher (a plain form: works without JavaScript). Form fields:
    `language` (one of `app.web.i18n.LANGUAGES`) and `next` (a path on this site, else `/`).

    Sets the `lang` cookie for everyone; for a signed-in person also saves `user.locale` and the
    session's copy, so the choice follows them to other devices. Then 303 back to `next`.

    Raises:
        ValidationException: an unknown `language` (400; nothing stored).
    """
    language = data.get("language") or ""
    if language not in LANGUAGES:
        raise ValidationException(f"Unknown language. Choose one of: {', '.join(LANGUAGES)}.")
    settings = request.app.state.settings.app
    session = request.scope.get("session")
    user_id = session.get("user_id") if isinstance(session, dict) else None
    if isinstance(user_id, int):
        await User.update({User.locale: language}).where(User.id == user_id)
        request.set_session({**request.session, SESSION_LANGUAGE_KEY: language})
    return Redirect(
        safe_next_path(data.get("next"), default="/"),
        status_code=HTTP_303_SEE_OTHER,
        cookies=[
            Cookie(
                key=LANGUAGE_COOKIE,
                value=language,
                max_age=LANGUAGE_COOKIE_MAX_AGE,
                path="/",
                httponly=True,
                secure=settings.is_https,
                samesite="lax",
            )
        ],
    )


@get("/{path:path}", name="not_found", cache=False, include_in_schema=False)
async def not_found(path: FromPath[str]) -> None:
    """Any other GET path: 404 through the full middleware stack, so the error page knows who is
    signed in (Litestar answers unmatched paths before the session middleware runs).

    Raises:
        NotFoundException: always.
    """
    raise NotFoundException
