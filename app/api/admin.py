"""`/api/v1/admin/…`: the operator console's portal configurations and portal analytics as JSON.

The same services as the console (`app.admin.configurations_service`, `app.admin.analytics_service`);
this module only translates shapes and errors. Roles as in the console: `support` or `admin` may
read, only `admin` may change (for a bearer token, from its `OIDC_ROLES_CLAIM` claim; for a session,
the roles stored at the last sign-in). The helpers below are shared with the compatibility routes.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping
from datetime import date
from functools import cache
from typing import Annotated, Any
from zoneinfo import available_timezones

from litestar import Controller, Request, get, post, route
from litestar.di import NamedDependency
from litestar.params import QueryParameter

from app.admin import analytics_service as analytics
from app.admin import configurations_service as configurations
from app.api.auth import requires_api_admin, requires_api_support
from app.api.common import API_GUARDS, API_MIDDLEWARE, error_responses, json_body
from app.api.errors import ApiError, stripe_error, validation_error
from app.api.schemas import (
    AnalyticsPeriod,
    DayFigures,
    PlanFigures,
    PortalAnalyticsOut,
    PortalConfigurationFields,
    PortalConfigurationOut,
    ReasonFigures,
    WorkflowFigures,
)
from app.auth.tables import User
from app.stripe_gateway import StripeGateway, StripeGatewayError, StripeNotFound
from app.web.i18n import timezone_named

#: Dates outside this range cannot be turned into UTC instants in every zone (Python's datetime ends
#: at year 1 and 9999).
FIRST_DATE, LAST_DATE = date(1970, 1, 1), date(9998, 12, 31)

CONFIGURATION_EXAMPLE = {"name": "Plan changes", "headline": "Manage your Acme plan", "invoice_history": True}
READ_ERRORS = ("forbidden", "stripe_unavailable")
WRITE_ERRORS = ("forbidden", "validation_failed", "unsupported_media_type", "stripe_unavailable")


@cache
def _zones() -> frozenset[str]:
    return frozenset(available_timezones())


def configuration_out(cfg: Mapping[str, Any]) -> PortalConfigurationOut:
    """A Stripe configuration (with `features_words`/`used_by` from the service) in the API's shape."""
    form = configurations.ConfigurationForm.from_configuration(cfg)
    return PortalConfigurationOut(
        id=str(cfg["id"]),
        name=cfg.get("name"),
        active=bool(cfg.get("active")),
        is_default=bool(cfg.get("is_default")),
        default_return_url=cfg.get("default_return_url"),
        business_profile=dict(cfg.get("business_profile") or {}),
        features=dict(cfg.get("features") or {}),
        features_words=list(cfg.get("features_words") or configurations.features_in_words(cfg)),
        used_by=list(cfg.get("used_by") or []),
        fields=PortalConfigurationFields(**dataclasses.asdict(form)),
    )


async def list_configurations(gateway: StripeGateway) -> list[PortalConfigurationOut]:
    """Every configuration in Stripe, newest first.

    Raises:
        ApiError: 502 `stripe_unavailable`/`stripe_error`.
    """
    try:
        return [configuration_out(cfg) for cfg in await configurations.list_configurations(gateway)]
    except StripeGatewayError as exc:
        raise stripe_error(exc) from exc


async def save_configuration(
    gateway: StripeGateway, configuration_id: str | None, data: PortalConfigurationFields, actor: User
) -> PortalConfigurationOut:
    """Create (`configuration_id` None: the console's defaults, overridden by the fields sent) or update
    (the configuration as Stripe holds it, overridden by the fields sent) through the console's service,
    which checks Stripe's limits before any call and audits the change.

    Raises:
        ApiError: 422 `validation_failed` naming each failing field (nothing sent to Stripe), 404
            `not_found` (no such configuration), 502 `stripe_unavailable`/`stripe_error`.
    """
    sent = {f.name: getattr(data, f.name) for f in dataclasses.fields(PortalConfigurationFields)}
    changes = {k: v for k, v in sent.items() if v is not None}
    try:
        if configuration_id is None:
            form = configurations.ConfigurationForm(**{"invoice_history": True, **changes})
        else:
            current = await gateway.retrieve_portal_configuration(configuration_id)
            form = dataclasses.replace(configurations.ConfigurationForm.from_configuration(current), **changes)
        cfg = await configurations.save_configuration(gateway, configuration_id, form, actor)
        return configuration_out(await configurations.get_configuration(gateway, cfg["id"]))
    except configurations.ConfigurationInvalid as exc:
        raise validation_error(exc.errors) from exc
    except StripeNotFound as exc:
        raise ApiError("not_found", "No such portal configuration.") from exc
    except StripeGatewayError as exc:
        raise stripe_error(exc) from exc


def analytics_period(
    request: Request[Any, Any, Any], start_date: date | None, end_date: date | None, timezone: str | None
) -> analytics.Period:
    """The console's period for `start_date`..`end_date` (local days, both included; one missing: 30 days
    ending at the other or today) in `timezone` (an IANA zone; default the `tz` cookie the pages set,
    else `APP_DEFAULT_TIMEZONE`).

    Raises:
        ApiError: 422 `validation_failed` naming the field (unknown zone, end before start, over a year,
            a date outside 1970–9998).
    """
    if timezone is not None and timezone not in _zones():
        raise validation_error({"timezone": "Use an IANA time zone such as Europe/Paris."})
    for name, value in (("start_date", start_date), ("end_date", end_date)):
        if value is not None and not FIRST_DATE <= value <= LAST_DATE:
            raise validation_error({name: "Use a date between 1970-01-01 and 9998-12-31."})
    zone = timezone or timezone_named(request.cookies.get("tz"), request.app.state.settings.app.default_timezone).key
    try:
        return analytics.period_for(None, start_date, end_date, zone)
    except analytics.BadPeriod as exc:
        raise validation_error({"end_date": str(exc)}) from exc


async def portal_analytics(period: analytics.Period) -> PortalAnalyticsOut:
    """The console's figures for `period` in the API's shape."""
    figures = await analytics.period_figures(period)
    return PortalAnalyticsOut(
        period=AnalyticsPeriod(
            start_date=period.first,
            end_date=period.last,
            timezone=period.timezone,
            start=period.start,
            end=period.end,
            days=period.days,
        ),
        total_sessions=figures.sessions,
        unique_customers=figures.unique_customers,
        returned_sessions=figures.returned,
        changed_sessions=figures.changed,
        return_rate=figures.return_rate,
        changed_share=figures.changed_share,
        median_session_seconds=figures.median_seconds,
        p90_session_seconds=figures.p90_seconds,
        by_workflow=[WorkflowFigures(**row) for row in figures.by_workflow],
        by_day=[DayFigures(**row) for row in figures.by_day],
        cancellations_by_reason=[ReasonFigures(**row) for row in figures.cancellations_by_reason],
        cancellations_by_plan=[PlanFigures(**row) for row in figures.cancellations_by_plan],
    )


StartDate = Annotated[date | None, QueryParameter(description="First local day (ISO 8601), included")]
EndDate = Annotated[date | None, QueryParameter(description="Last local day (ISO 8601), included")]
TimeZone = Annotated[
    str | None, QueryParameter(max_length=64, description="IANA zone of the days (default: the operator's)")
]


class AdminApiController(Controller):
    """Operator endpoints: role `support` reads, role `admin` writes."""

    path = "/api/v1/admin"
    tags = ["Operator"]  # noqa: RUF012
    middleware = API_MIDDLEWARE
    guards = [*API_GUARDS, requires_api_support]  # noqa: RUF012

    @get(
        "/portal-configurations",
        name="api:admin:portal_configurations",
        cache=False,
        responses=error_responses(*READ_ERRORS),
    )
    async def list_configurations(self, stripe_gateway: NamedDependency[StripeGateway]) -> list[PortalConfigurationOut]:
        """Every Customer Portal configuration in Stripe (newest first), with the workflows using each."""
        return await list_configurations(stripe_gateway)

    @post(
        "/portal-configurations",
        name="api:admin:portal_configurations:create",
        guards=[requires_api_admin],
        responses=error_responses(*WRITE_ERRORS),
    )
    async def create_configuration(
        self,
        api_user: NamedDependency[User],
        stripe_gateway: NamedDependency[StripeGateway],
        data: Annotated[PortalConfigurationFields, json_body(CONFIGURATION_EXAMPLE)],
    ) -> PortalConfigurationOut:
        """Create a configuration in Stripe (role `admin`; audited). Fields not sent take the console's
        defaults (invoice history on, everything else off)."""
        return await save_configuration(stripe_gateway, None, data, api_user)

    @route(
        "/portal-configurations/{configuration_id:str}",
        http_method=["POST", "PATCH"],
        name="api:admin:portal_configuration:update",
        status_code=200,
        guards=[requires_api_admin],
        responses=error_responses(*WRITE_ERRORS, "not_found"),
    )
    async def update_configuration(
        self,
        api_user: NamedDependency[User],
        stripe_gateway: NamedDependency[StripeGateway],
        configuration_id: str,
        data: Annotated[PortalConfigurationFields, json_body({"headline": "Manage your Acme plan"})],
    ) -> PortalConfigurationOut:
        """Change the fields sent of a configuration in Stripe (role `admin`; audited); the others keep
        their values."""
        return await save_configuration(stripe_gateway, configuration_id, data, api_user)

    @get(
        "/portal-analytics",
        name="api:admin:portal_analytics",
        cache=False,
        responses=error_responses("forbidden", "validation_failed"),
    )
    async def portal_analytics(
        self,
        request: Request[Any, Any, Any],
        start_date: StartDate = None,
        end_date: EndDate = None,
        timezone: TimeZone = None,
    ) -> PortalAnalyticsOut:
        """Customer Portal use for local days `start_date`..`end_date` (at most 366; default the last 30):
        sessions, unique customers, return rate, session duration, use per workflow and per day, and
        cancellations by reason and plan."""
        return await portal_analytics(analytics_period(request, start_date, end_date, timezone))
