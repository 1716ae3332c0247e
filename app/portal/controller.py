"""`/portal`: the Customer Portal workflows, session creation and the return summary."""

from __future__ import annotations

import logging
from typing import Annotated, Any

from litestar import Controller, Request, get, post
from litestar.di import NamedDependency
from litestar.enums import RequestEncodingType
from litestar.exceptions import NotFoundException
from litestar.middleware.rate_limit import RateLimitConfig
from litestar.params import Body, FromQuery
from litestar.plugins.flash import flash
from litestar.response import Redirect, Response, Template
from litestar.status_codes import HTTP_303_SEE_OTHER

from app.auth.tables import User
from app.entitlements.service import features_lost
from app.portal.service import (
    NoCustomer,
    UnknownWorkflow,
    complete_return,
    create_portal_session,
    load_portal_spec,
    portal_entry_points,
)
from app.stripe_gateway import StripeGateway, StripeRequestRejected, StripeUnavailable
from app.web.errors import error_response, stripe_failure_response
from app.web.guards import requires_login
from app.web.i18n import negotiate_locale
from app.web.redirects import see_other

logger = logging.getLogger(__name__)

PORTAL_SESSIONS_PER_MINUTE = 10


def _user_key(request: Request[Any, Any, Any]) -> str:
    """Rate-limit key: the signed-in user, so one person cannot hammer Stripe from many addresses."""
    return f"portal-sessions:user:{request.session.get('user_id')}"


portal_rate_limit = RateLimitConfig(
    rate_limit=("minute", PORTAL_SESSIONS_PER_MINUTE), identifier_for_request=_user_key, store="rate_limit"
)


class PortalController(Controller):
    """Portal workflows for signed-in people."""

    path = "/portal"
    guards = [requires_login]  # noqa: RUF012

    @get("/", name="portal:index", cache=False)
    async def index(self, current_user: NamedDependency[User]) -> Template:
        """One card per workflow, each explaining what it does."""
        entry = await portal_entry_points(current_user.id)
        cancel_loses, _ = await features_lost(current_user.id, [])
        return Template(
            template_name="portal/index.html",
            context={"spec": load_portal_spec(), **entry, "cancel_loses": cancel_loses},
        )

    @post(
        "/sessions",
        name="portal:create",
        status_code=HTTP_303_SEE_OTHER,
        middleware=[portal_rate_limit.middleware],
    )
    async def create(
        self,
        request: Request[Any, Any, Any],
        current_user: NamedDependency[User],
        stripe_gateway: NamedDependency[StripeGateway],
        data: Annotated[dict[str, str], Body(media_type=RequestEncodingType.URL_ENCODED)],
    ) -> Response[Any]:
        """Create a Billing Portal Session for the chosen workflow and go there (303 or `HX-Redirect`)."""
        settings = request.app.state.settings
        try:
            url = await create_portal_session(
                stripe_gateway,
                current_user,
                data.get("workflow", ""),
                settings.app.base_url,
                price_lookup_key=data.get("price"),
                retention_coupon=settings.app.portal_retention_coupon,
            )
        except UnknownWorkflow as exc:
            return error_response(request, 400, str(exc) if str(exc) != data.get("workflow") else "Unknown workflow.")
        except NoCustomer:
            return Template(template_name="portal/no_customer.html", status_code=409)
        except (StripeUnavailable, StripeRequestRejected) as exc:
            return stripe_failure_response(
                request,
                "We could not open the billing portal right now. Nothing was changed; please try again in a minute.",
                exc,
            )
        return see_other(request, url)

    @get("/return", name="portal:return", cache=False)
    async def return_(
        self,
        request: Request[Any, Any, Any],
        current_user: NamedDependency[User],
        stripe_gateway: NamedDependency[StripeGateway],
        ps: FromQuery[int],
    ) -> Response[Any]:
        """Sync, compare with the state at session creation, toast the changes on the workflow's page.

        Raises:
            NotFoundException: `ps` is not a portal session of the signed-in person.
        """
        app_settings = request.app.state.settings.app
        locale = negotiate_locale(request.headers.get("accept-language"), app_settings.default_locale)
        timezone = request.cookies.get("tz") or app_settings.default_timezone
        try:
            summary = await complete_return(stripe_gateway, current_user, ps, locale, timezone)
        except StripeUnavailable as exc:
            return stripe_failure_response(
                request, "We could not load your changes from Stripe yet. Reload this page in a moment.", exc
            )
        if summary is None:
            raise NotFoundException
        if summary.changes:
            for change in summary.changes:
                flash(request, change["text"], category="success")
        else:
            flash(request, "No changes", category="info")
        return Redirect(request.app.route_reverse(summary.next_page), status_code=HTTP_303_SEE_OTHER)
