"""`/api/v1/portal/…`: Customer Portal sessions and what changed after one."""

from __future__ import annotations

from typing import Annotated, Any

from litestar import Controller, Request, get, post
from litestar.di import NamedDependency
from litestar.params import QueryParameter

from app.api import service
from app.api.common import (
    API_GUARDS,
    API_MIDDLEWARE,
    STRIPE_LOCALE,
    check_client_url,
    error_responses,
    json_body,
    session_rate_limit,
)
from app.api.errors import validation_error
from app.api.schemas import PortalReturn, PortalSessionOut, PortalSessionRequest
from app.auth.tables import User
from app.stripe_gateway import StripeGateway
from app.web.i18n import request_preferences, request_stripe_locale


class PortalApiController(Controller):
    """Customer Portal for the caller."""

    path = "/api/v1/portal"
    tags = ["Customer Portal"]  # noqa: RUF012
    middleware = API_MIDDLEWARE
    guards = API_GUARDS

    @post(
        "/sessions",
        name="api:portal_sessions",
        middleware=[session_rate_limit.middleware],
        responses=error_responses(
            "validation_failed", "unsupported_media_type", "no_customer", "rate_limited", "stripe_unavailable"
        ),
    )
    async def create_session(
        self,
        request: Request[Any, Any, Any],
        api_user: NamedDependency[User],
        stripe_gateway: NamedDependency[StripeGateway],
        data: Annotated[
            PortalSessionRequest,
            json_body(
                {"workflow_type": "payment_update"},
                {
                    "workflow_type": "cancellation_process",
                    "return_url": "https://app.example.com/billing",
                    "locale": "fr",
                },
            ),
        ],
    ) -> PortalSessionOut:
        """Open the Stripe Customer Portal on one workflow; send the person to `url`. Afterwards call
        `GET /api/v1/portal/return?session_id=<id>` to sync and see what changed."""
        if data.locale is not None and not STRIPE_LOCALE.match(data.locale):
            raise validation_error({"locale": "Use auto or a Stripe locale such as en, fr or fr-CA."})
        return await service.portal_session(
            stripe_gateway,
            api_user,
            request.app.state.settings,
            workflow_type=data.workflow_type,
            return_url=check_client_url(request, "return_url", data.return_url),
            configuration_id=data.configuration_id,
            locale=data.locale or request_stripe_locale(request),
        )

    @get("/return", name="api:portal_return", cache=False, responses=error_responses("not_found", "stripe_unavailable"))
    async def return_(
        self,
        request: Request[Any, Any, Any],
        api_user: NamedDependency[User],
        stripe_gateway: NamedDependency[StripeGateway],
        session_id: Annotated[str, QueryParameter(min_length=1, max_length=255, description="The `bps_…` id")],
    ) -> PortalReturn:
        """Sync the caller's billing from Stripe and list what changed since the session was created
        (the same summary as the return page; repeated calls return the same summary)."""
        settings = request.app.state.settings.app
        return await service.portal_return(
            stripe_gateway,
            api_user,
            session_id,
            settings.base_url,
            request.app.route_reverse,
            request_preferences(request).locale,
            settings.default_timezone,
        )
