"""Exception handlers: error pages that match the layout, inline errors for HTMX, JSON for machines.

Registered in `app.asgi.create_app`. Pages get `templates/errors/error.html`; HTMX requests get
`templates/errors/_inline.html` retargeted to the flash area (htmx is configured in `base.html`
to swap error responses); `/webhooks/` and `/healthz` get JSON. Every error page shows the request
id that each log line of the request carries; unexpected errors use it as their reference, so
support can find the log lines without the page revealing anything.
"""

from __future__ import annotations

import logging
import secrets
from typing import Any
from urllib.parse import urlencode

from litestar import MediaType, Request, Response
from litestar.exceptions import HTTPException, PermissionDeniedException
from litestar.plugins.htmx import ClientRedirect
from litestar.response import Redirect, Template
from litestar.status_codes import HTTP_303_SEE_OTHER, HTTP_500_INTERNAL_SERVER_ERROR

from app.db import DATABASE_UNAVAILABLE, STORE_UNAVAILABLE
from app.web.guards import LoginRequired
from app.web.htmx import VARY_HX_REQUEST, is_htmx
from app.web.i18n import N_, Message, request_preferences
from app.web.security import request_id_of

logger = logging.getLogger(__name__)

TITLES = {
    400: N_("That request could not be understood"),
    401: N_("Please sign in"),
    403: N_("You can't do that"),
    404: N_("Page not found"),
    405: N_("That action isn't available here"),
    409: N_("That can't be done right now"),
    413: N_("That request is too large"),
    422: N_("Please check the form"),
    429: N_("Too many requests"),
    500: N_("Something went wrong"),
    502: N_("A service we rely on did not answer"),
    503: N_("Temporarily unavailable"),
}

MESSAGES = {
    403: N_("You don't have access to this page."),
    404: N_("We couldn't find that page. It may have moved, or the link may be wrong."),
    500: N_("Something went wrong on our side. Please try again in a moment."),
    503: N_("We can't reach our database right now. Nothing was lost; please try again in a moment."),
}


def _is_machine_route(request: Request[Any, Any, Any]) -> bool:
    return request.url.path.startswith(("/webhooks/", "/healthz"))


def error_response(
    request: Request[Any, Any, Any], status_code: int, message: str, reference: str | None = None
) -> Response[Any]:
    """Render an error for `request` as JSON, an inline HTMX fragment or a full page.

    Pages show the title and `message` in the person's language (`message` is looked up in the
    catalog as given: pass a string marked with `N_`, or one already translated)."""
    if _is_machine_route(request):
        return Response({"error": message}, status_code=status_code, media_type=MediaType.JSON)
    preferences = request_preferences(request)
    context = {
        "status_code": status_code,
        "title": preferences.gettext(TITLES.get(status_code, N_("Something went wrong"))),
        "message": preferences.gettext(message)
        if isinstance(message, Message)
        else preferences.translations.ugettext(message),
        "reference": reference,
        "request_id": request_id_of(request.scope),
    }
    if is_htmx(request):
        return Template(
            template_name="errors/_inline.html",
            context=context,
            status_code=status_code,
            headers={"HX-Retarget": "#flash", "HX-Reswap": "innerHTML", **VARY_HX_REQUEST},
        )
    return Template(
        template_name="errors/error.html", context=context, status_code=status_code, headers=VARY_HX_REQUEST
    )


def stripe_failure_response(request: Request[Any, Any, Any], message: str, exc: Exception) -> Response[Any]:
    """502 with a friendly `message` when Stripe failed; the reference is Stripe's request id
    (`req_…`) when there is one, else a fresh id written to the log beside the error."""
    reference = getattr(exc, "request_id", None) or secrets.token_hex(6)
    logger.warning("Stripe failure (reference %s) on %s %s: %s", reference, request.method, request.url.path, exc)
    return error_response(request, 502, message, reference=reference)


# Stripe's refusals (4xx) that a person can act on, by a phrase of Stripe's message or its error code.
REFUSAL_MESSAGES = (
    ("already set to be canceled", N_("Your subscription is already set to cancel. Use Keep my plan to undo that.")),
    ("canceled subscription", N_("This subscription has already ended, so it can't be changed any more.")),
    ("resource_missing", N_("Stripe no longer knows this subscription or customer. Reload the page to see your plan.")),
    ("not enabled in the portal configuration", N_("That option is switched off for this site. Contact support.")),
)


def stripe_refusal_message(exc: Exception, request: Request[Any, Any, Any] | None = None) -> str:
    """What a person should read when Stripe refused a request (4xx): what is wrong, never "try again".

    Known refusals get their own sentence (`REFUSAL_MESSAGES`); others quote Stripe's own message,
    which is written for the person using the account.
    """
    text = f"{exc} {getattr(exc, 'code', '') or ''}"
    for phrase, message in REFUSAL_MESSAGES:
        if phrase in text:
            return request_preferences(request).gettext(message) if request is not None else message
    if request is None:
        return f"Stripe refused this change: {exc}"
    return request_preferences(request).gettext("Stripe refused this change: %(reason)s", reason=str(exc))


def stripe_refusal_response(request: Request[Any, Any, Any], exc: Exception) -> Response[Any]:
    """409 with `stripe_refusal_message`, referencing Stripe's request id, logged."""
    reference = getattr(exc, "request_id", None) or secrets.token_hex(6)
    logger.info("Stripe refused (reference %s) %s %s: %s", reference, request.method, request.url.path, exc)
    return error_response(request, 409, stripe_refusal_message(exc, request), reference=reference)


def login_required_handler(request: Request[Any, Any, Any], _: LoginRequired) -> Response[Any]:
    """303 to `/auth/login?next=<path>`; HTMX requests get `HX-Redirect` so the whole page moves."""
    target = request.url.path + (f"?{request.url.query}" if request.url.query else "")
    if is_htmx(request):
        # An HTMX request's URL is a fragment; come back to the page the person was on.
        target = request.headers.get("hx-current-url") or target
    login_url = request.app.route_reverse("auth:login") + "?" + urlencode({"next": target})
    if is_htmx(request):
        return ClientRedirect(login_url)
    return Redirect(login_url, status_code=HTTP_303_SEE_OTHER)


def http_exception_handler(request: Request[Any, Any, Any], exc: HTTPException) -> Response[Any]:
    """Known HTTP errors (404, 403, 400 …) with their detail when it is meant for people."""
    status_code = exc.status_code
    if status_code >= HTTP_500_INTERNAL_SERVER_ERROR:
        return internal_error_handler(request, exc)
    if isinstance(exc, PermissionDeniedException) and "CSRF" in str(exc.detail):
        message = N_("This form has expired. Reload the page and try again.")
    elif status_code == 429:
        seconds = (exc.headers or {}).get("RateLimit-Reset", "60")
        message = request_preferences(request).ngettext(
            "Too many attempts in a short time. Please try again in %(num)s second.",
            "Too many attempts in a short time. Please try again in %(num)s seconds.",
            int(seconds) if str(seconds).isdigit() else 60,
        )
    elif status_code in MESSAGES:
        message = MESSAGES[status_code]
    else:
        message = str(exc.detail) if exc.detail else TITLES.get(status_code, N_("That request was refused."))
    logger.info("%s %s -> %s: %s", request.method, request.url.path, status_code, exc.detail)
    response = error_response(request, status_code, message)
    if exc.headers:
        response.headers.update(exc.headers)
    if status_code == 429:
        response.headers["Retry-After"] = str((exc.headers or {}).get("RateLimit-Reset", "60"))
    return response


def internal_error_handler(request: Request[Any, Any, Any], exc: Exception) -> Response[Any]:
    """Unexpected errors: logged with the request id as reference; the page shows only that id."""
    reference = request_id_of(request.scope) or secrets.token_hex(6)
    logger.exception("Unhandled error (reference %s) on %s %s", reference, request.method, request.url.path)
    return error_response(request, HTTP_500_INTERNAL_SERVER_ERROR, MESSAGES[500], reference=reference)


STORE_MESSAGE = N_("Signing in and sessions are unavailable for a moment. Nothing was lost; please try again shortly.")


def unavailable_handler(request: Request[Any, Any, Any], exc: Exception) -> Response[Any]:
    """The database or Redis (sessions, rate limits) cannot be reached right now: 503 with
    `Retry-After`, one log line, a message saying which and that nothing was lost."""
    store = isinstance(exc, STORE_UNAVAILABLE)
    what = "Redis" if store else "Database"
    logger.warning("%s unavailable on %s %s: %s: %s", what, request.method, request.url.path, type(exc).__name__, exc)
    response = error_response(request, 503, STORE_MESSAGE if store else MESSAGES[503])
    response.headers["Retry-After"] = "5"
    return response


EXCEPTION_HANDLERS: dict[Any, Any] = {
    **{cls: unavailable_handler for cls in (*DATABASE_UNAVAILABLE[1:], ConnectionError, *STORE_UNAVAILABLE)},
    LoginRequired: login_required_handler,
    HTTPException: http_exception_handler,
    HTTP_500_INTERNAL_SERVER_ERROR: internal_error_handler,
}
