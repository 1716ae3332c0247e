"""Pages that belong to no area: the landing page, and the 404 page for unknown paths."""

from __future__ import annotations

from typing import Any

from litestar import Request, get
from litestar.exceptions import NotFoundException
from litestar.params import FromPath
from litestar.response import Redirect, Template
from litestar.status_codes import HTTP_303_SEE_OTHER


@get("/", name="home", cache=False)
async def home(request: Request[Any, Any, Any]) -> Template | Redirect:
    """Signed-in people go to their account; others see what this is and a sign-in button."""
    if isinstance(request.session.get("user_id"), int):
        return Redirect(request.app.route_reverse("account:show"), status_code=HTTP_303_SEE_OTHER)
    return Template(template_name="home.html")


@get("/{path:path}", name="not_found", cache=False, include_in_schema=False)
async def not_found(path: FromPath[str]) -> None:
    """Any other GET path: 404 through the full middleware stack, so the error page knows who is
    signed in (Litestar answers unmatched paths before the session middleware runs).

    Raises:
        NotFoundException: always.
    """
    raise NotFoundException
