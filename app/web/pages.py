"""Pages that belong to no area: the landing page, the language switch, and the 404 page for
unknown paths."""

from __future__ import annotations

import logging
from typing import Annotated, Any

from litestar import Request, get, post
from litestar.datastructures import Cookie
from litestar.enums import RequestEncodingType
from litestar.exceptions import NotFoundException, ValidationException
from litestar.params import Body, FromPath
from litestar.response import Redirect, Template
from litestar.status_codes import HTTP_303_SEE_OTHER

from app.auth.tables import User
from app.billing.tables import Customer
from app.stripe_gateway import StripeGatewayError
from app.web.i18n import LANGUAGE_COOKIE, LANGUAGES, SESSION_LANGUAGE_KEY, resolve_language, stripe_locale
from app.web.redirects import safe_next_path

logger = logging.getLogger(__name__)

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
    session's copy, so the choice follows them to other devices, and, when they have a Stripe
    customer, sets its `preferred_locales` so Stripe's emails and invoices follow too (no database
    connection held during that call; if Stripe cannot be reached the switch still happens and a
    warning is logged). Then 303 back to `next`.

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
        await _tell_stripe(request, user_id, language)
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


async def _tell_stripe(request: Request[Any, Any, Any], user_id: int, language: str) -> None:
    """Set the person's Stripe customer's `preferred_locales` to `language` (in the browser's region
    when it matches, as pages format), if they have a customer; a Stripe failure is only logged."""
    rows = await Customer.select(Customer.stripe_customer_id).where(
        (Customer.user == user_id) & (Customer.deleted.eq(False))
    )
    if not rows:
        return
    settings = request.app.state.settings.app
    _, locale = resolve_language(language, request.headers.get("accept-language"), settings.default_locale)
    wanted = stripe_locale(locale)
    if wanted == "auto":
        return
    try:
        await request.app.state.stripe_gateway.set_preferred_locales(rows[0]["stripe_customer_id"], [wanted])
    except StripeGatewayError as exc:
        logger.warning("Could not set Stripe's preferred_locales for user %s (Stripe request %s): %s",
                       user_id, exc.request_id, exc)  # fmt: skip


@get("/{path:path}", name="not_found", cache=False, include_in_schema=False)
async def not_found(path: FromPath[str]) -> None:
    """Any other GET path: 404 through the full middleware stack, so the error page knows who is
    signed in (Litestar answers unmatched paths before the session middleware runs).

    Raises:
        NotFoundException: always.
    """
    raise NotFoundException
