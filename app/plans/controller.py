"""`GET /plans`: the plan catalogue with prices in the person's locale."""

from __future__ import annotations

from typing import Any, Literal

from litestar import Controller, Request, get
from litestar.params import FromQuery
from litestar.response import Template

from app.billing.service import person_summary, plans_with_prices
from app.entitlements.service import features_lost
from app.web.htmx import page_or_fragment
from app.web.i18n import remember_user_language


class PlansController(Controller):
    """The plans page; readable signed out, with the current plan marked when signed in."""

    path = "/plans"

    @get("/", name="plans:list", cache=False)
    async def list_plans(
        self, request: Request[Any, Any, Any], interval: FromQuery[Literal["month", "year"]] = "month"
    ) -> Template:
        """Plan cards for the monthly or yearly switch; an htmx request gets the switch and the cards."""
        user_id = request.session.get("user_id")
        person = await person_summary(user_id) if isinstance(user_id, int) else None
        if person is not None:
            remember_user_language(request, person.user.locale)
        billing = person.billing if person is not None else None
        plans = await plans_with_prices()
        lose: dict[int, list[str]] = {}
        subscription = billing.subscription if billing is not None else None
        current = billing.subscription_plan if billing is not None and subscription is not None else None
        if person is not None and current is not None:
            # Only a move down the catalogue (a lower tier) takes features away; an upgrade replaces a
            # limit by a larger one ("5 GB storage" by "100 GB storage"), which is no loss to warn about.
            lower = {e["plan"].id: e["feature_keys"] for e in plans if e["plan"].sort_order < current.sort_order}
            _, lose = features_lost(person.features, lower)
        context = {
            "plans": plans,
            "lose": lose,
            "interval": interval,
            "kind": "monthly" if interval == "month" else "yearly",
            "billing": billing,
            "signed_in": billing is not None,
        }
        return page_or_fragment(request, "plans/list.html", "plans/_catalogue.html", context)
