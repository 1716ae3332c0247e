"""One answer to "is this an htmx request?" for the whole app (built on litestar-htmx's `request.htmx`).

A URL that answers with either a fragment (for htmx) or a whole page must say so to caches:
`page_or_fragment` picks the template and always sets `Vary: HX-Request`.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from litestar import Request
from litestar.response import Template

VARY_HX_REQUEST = {"Vary": "HX-Request"}


def is_htmx(request: Request[Any, Any, Any]) -> bool:
    """True when htmx sent the request (`HX-Request: true`), boosted or not.

    Uses `request.htmx` when the app's `HTMXRequest` class is in use, else reads the header.
    """
    details = getattr(request, "htmx", None)
    if details is None:
        return request.headers.get("hx-request") == "true"
    return bool(details)


def wants_fragment(request: Request[Any, Any, Any]) -> bool:
    """True for an htmx request that swaps part of a page: neither a history restore (htmx asks
    for the whole page when its cache misses) nor a boosted link or form (a whole page too)."""
    if not is_htmx(request):
        return False
    return request.headers.get("hx-history-restore-request") != "true" and request.headers.get("hx-boosted") != "true"


def page_or_fragment(
    request: Request[Any, Any, Any],
    page: str,
    fragment: str,
    context: Mapping[str, Any],
    status_code: int = 200,
) -> Template:
    """`fragment` for htmx (see `wants_fragment`), else the whole `page`; both with `Vary: HX-Request`."""
    return Template(
        template_name=fragment if wants_fragment(request) else page,
        context=dict(context),
        status_code=status_code,
        headers=VARY_HX_REQUEST,
    )
