"""`/portal`: the Customer Portal workflows, session creation and the return summary."""

from __future__ import annotations

import logging
from typing import Annotated, Any

from litestar import Controller, Request, get, post
from litestar.di import NamedDependency
from litestar.enums import RequestEncodingType
from litestar.exceptions import NotFoundException
from litestar.middleware.rate_limit import RateLimitConfig
from litestar.params import Body, QueryParameter
from litestar.plugins.flash import flash
from litestar.response import Redirect, Response, Template
from litestar.status_codes import HTTP_303_SEE_OTHER

from app.auth.tables import User
from app.entitlements.service import features_lost
from app.portal.service import (
    CancellationPending,
    NoCustomer,
    UnknownWorkflow,
    cancellation_page,
    complete_return,
    create_portal_session,
    load_portal_spec,
    portal_entry_points,
    record_cancellation_reason,
)
from app.stripe_gateway import StripeGateway, StripeRequestRejected, StripeUnavailable
from app.web.dependencies import signed_in_person
from app.web.errors import error_response, stripe_failure_response, stripe_refusal_response
from app.web.guards import requires_login
from app.web.i18n import N_, date, request_preferences, request_stripe_locale
from app.web.redirects import see_other
from app.web.validation import is_lookup_key

# A `portal_session.id`: a PostgreSQL integer (anything else is a 400, not a database error).
PortalSessionId = Annotated[int, QueryParameter(name="ps", ge=1, le=2**31 - 1)]

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
    async def index(self, request: Request[Any, Any, Any]) -> Template:
        """One card per workflow, each explaining what it does (one query)."""
        person = await signed_in_person(request)
        entry = portal_entry_points(person.billing)
        cancel_loses, _ = features_lost(person.features, {})
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
        _ = request_preferences(request).gettext
        if data.get("price") and not is_lookup_key(data.get("price")):
            return error_response(request, 400, N_("That plan change is not available."))
        try:
            url = await create_portal_session(
                stripe_gateway,
                current_user,
                data.get("workflow", ""),
                settings.app.base_url,
                price_lookup_key=data.get("price"),
                retention_coupon=settings.app.portal_retention_coupon,
                locale=request_stripe_locale(request),
            )
        except UnknownWorkflow as exc:
            return error_response(request, 400, str(exc))
        except NoCustomer:
            return Template(template_name="portal/no_customer.html", status_code=409)
        except CancellationPending as exc:
            when = date({"request": request}, exc.cancels_at)
            flash(
                request,
                _("Your plan already cancels on %(date)s. Changed your mind? Keep my plan.", date=when),
                category="info",
            )
            return see_other(request, request.app.route_reverse("account:show"))
        except StripeRequestRejected as exc:
            return stripe_refusal_response(request, exc)
        except StripeUnavailable as exc:
            return stripe_failure_response(
                request,
                N_(
                    "We could not open the billing portal right now. Nothing was changed; please try again in a minute."
                ),
                exc,
            )
        return see_other(request, url)

    @get("/return", name="portal:return", cache=False)
    async def return_(
        self,
        request: Request[Any, Any, Any],
        current_user: NamedDependency[User],
        stripe_gateway: NamedDependency[StripeGateway],
        ps: PortalSessionId,
    ) -> Response[Any]:
        """Sync, compare with the state at session creation, toast the changes on the workflow's page
        (a new cancellation goes to the cancellation page).

        Raises:
            NotFoundException: `ps` is not a portal session of the signed-in person.
        """
        preferences = request_preferences(request)
        try:
            summary = await complete_return(
                stripe_gateway, current_user, ps, preferences.locale, preferences.timezone_name
            )
        except StripeUnavailable as exc:
            return stripe_failure_response(
                request, N_("We could not load your changes from Stripe yet. Reload this page in a moment."), exc
            )
        if summary is None:
            raise NotFoundException
        if summary.changes:
            for change in summary.changes:
                flash(request, change["text"], category="success")
        else:
            flash(request, preferences.gettext("No changes"), category="info")
        if summary.cancelled:
            return Redirect(f"{request.app.route_reverse('portal:cancelled')}?ps={ps}", status_code=HTTP_303_SEE_OTHER)
        return Redirect(request.app.route_reverse(summary.next_page), status_code=HTTP_303_SEE_OTHER)

    @get("/cancelled", name="portal:cancelled", cache=False)
    async def cancelled(
        self, request: Request[Any, Any, Any], current_user: NamedDependency[User], ps: PortalSessionId
    ) -> Template | Redirect:
        """After a cancellation: the end date, what the person keeps until then, Keep my plan, and
        (once, optionally) why they are leaving. Without a pending cancellation: the account page."""
        page = await cancellation_page(current_user, ps, load_portal_spec())
        if page is None:
            return Redirect(request.app.route_reverse("account:show"), status_code=HTTP_303_SEE_OTHER)
        return Template(template_name="portal/cancelled.html", context={"page": page})

    @post("/cancelled", name="portal:cancellation_reason", status_code=HTTP_303_SEE_OTHER)
    async def cancellation_reason(
        self,
        request: Request[Any, Any, Any],
        current_user: NamedDependency[User],
        data: Annotated[dict[str, str], Body(media_type=RequestEncodingType.URL_ENCODED)],
    ) -> Response[Any]:
        """Store the answer to "why are you leaving?" for the operator's analytics; thank the person.

        Raises:
            NotFoundException: the portal session is not the signed-in person's.
        """
        raw_ps = data.get("ps", "")
        if not raw_ps.isascii() or not raw_ps.isdigit() or not 1 <= int(raw_ps) < 2**31:
            return error_response(request, 400, N_("That form is incomplete. Reload the page and try again."))
        try:
            recorded = await record_cancellation_reason(
                current_user, int(raw_ps), data.get("reason", ""), load_portal_spec()
            )
        except UnknownWorkflow as exc:
            return error_response(request, 400, str(exc))
        if not recorded:
            raise NotFoundException
        flash(
            request,
            request_preferences(request).gettext("Thank you for telling us why you are leaving."),
            category="success",
        )
        return Redirect(request.app.route_reverse("account:show"), status_code=HTTP_303_SEE_OTHER)
