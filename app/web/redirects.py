"""Same-origin redirect targets."""

from __future__ import annotations

from typing import Any
from urllib.parse import urlsplit

from litestar import Request, Response
from litestar.plugins.htmx import ClientRedirect
from litestar.response import Redirect
from litestar.status_codes import HTTP_200_OK, HTTP_303_SEE_OTHER

from app.web.htmx import is_htmx

DEFAULT_AFTER_LOGIN = "/account"


def safe_next_path(value: str | None, default: str = DEFAULT_AFTER_LOGIN) -> str:
    """Return `value` when it is a path on this site, else `default`.

    Accepts `/account`, `/billing/history?page=2`; refuses absolute URLs (`https://evil`),
    scheme-relative ones (`//evil`, `/\\evil`), and anything with control characters, which
    browsers may strip into one of the former.
    """
    if not value or not value.startswith("/") or value.startswith(("//", "/\\")):
        return default
    if any(ord(ch) < 0x20 or ch == "\x7f" or ch == "\\" for ch in value):
        return default
    parts = urlsplit(value)
    if parts.scheme or parts.netloc:
        return default
    return value


def see_other(request: Request[Any, Any, Any], url: str) -> Response[Any]:
    """303 to `url`; for HTMX a 200 with `HX-Redirect`, since an XHR cannot follow a redirect to
    another origin (Stripe's Checkout and portal pages) into a page."""
    if is_htmx(request):
        response = ClientRedirect(url)
        response.status_code = HTTP_200_OK  # the route's 303 default would otherwise apply
        return response
    return Redirect(url, status_code=HTTP_303_SEE_OTHER)
