"""Pages that belong to no area: the landing page."""

from __future__ import annotations

from typing import Any

from litestar import Request, get
from litestar.response import Redirect, Template
from litestar.status_codes import HTTP_303_SEE_OTHER


@get("/", name="home", cache=False)
async def home(request: Request[Any, Any, Any]) -> Template | Redirect:
    """Signed-in people go to their account; others see what this is and a sign-in button."""
    if isinstance(request.session.get("user_id"), int):
        return Redirect(request.app.route_reverse("account:show"), status_code=HTTP_303_SEE_OTHER)
    return Template(template_name="home.html")
