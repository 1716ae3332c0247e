"""`/account`: the signed-in person's profile (billing details join it in later issues)."""

from __future__ import annotations

from typing import Any

from litestar import Controller, Request, get
from litestar.di import NamedDependency
from litestar.response import Template

from app.auth.tables import User
from app.billing.service import account_billing
from app.entitlements.service import what_you_have
from app.web.guards import requires_login


class AccountController(Controller):
    """The account page."""

    path = "/account"
    guards = [requires_login]  # noqa: RUF012

    @get("/", name="account:show", cache=False)
    async def show(self, request: Request[Any, Any, Any], current_user: NamedDependency[User]) -> Template:
        """Profile and billing summary of the signed-in person, read from the local copy only."""
        billing = await account_billing(current_user.id)
        included = await what_you_have(current_user.id)
        return Template(
            template_name="accounts/show.html",
            context={
                "user": current_user,
                "billing": billing,
                "included": included,
                "entitlements": {e["feature"] for e in included},
            },
        )
