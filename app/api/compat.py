"""Compatibility routes: the JSON endpoints of the integrations this app replaces, verbatim.

Each is a thin adapter over `app.api.service` or `app.api.admin` (the same code as `/api/v1/…`), so a
front end written against any of them works unchanged. Errors use the API's envelope. The operator
routes (`/api/payment/portal/configuration`, `/api/payment/portal/analytics`) need the roles of
`/api/v1/admin/…`.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date
from typing import Annotated, Any

from litestar import Controller, Request, get, post
from litestar.di import NamedDependency
from litestar.params import JSONBody, QueryParameter

from app.api import admin, service
from app.api.auth import requires_api_admin, requires_api_support
from app.api.common import (
    API_GUARDS,
    API_MIDDLEWARE,
    check_client_url,
    error_responses,
    session_rate_limit,
)
from app.api.errors import ApiError
from app.api.schemas import (
    BillingConfig,
    ChangeOut,
    CheckoutSessionRequest,
    PaymentIntentRequest,
    PortalConfigurationFields,
    PortalConfigurationOut,
    PortalSessionOut,
    PortalSessionRequest,
    Transaction,
)
from app.auth.tables import User
from app.billing.service import active_subscription
from app.billing.tables import Customer
from app.stripe_gateway import StripeGateway
from app.web.i18n import request_preferences, request_stripe_locale

PORTAL_ERRORS = ("validation_failed", "unsupported_media_type", "no_customer", "rate_limited", "stripe_unavailable")


@dataclass
class ReturnUrlBody:
    return_url: str | None = None


@dataclass
class PortalUrl:
    portal_url: str


@dataclass
class Url:
    url: str


@dataclass
class BillingPortalResult:
    success: bool
    message: str
    portal_url: str


@dataclass
class PortalSessionResult:
    success: bool
    portal_session: PortalSessionOut


@dataclass
class SynchronizedData:
    customer_updated: bool
    subscription_changed: bool
    payment_method_updated: bool
    changes: list[ChangeOut]


@dataclass
class PortalReturnResult:
    success: bool
    message: str
    synchronized_data: SynchronizedData
    redirect_url: str


@dataclass
class CheckoutSessionResult:
    session_id: str
    url: str


@dataclass
class PaymentIntentResult:
    client_secret: str
    payment_intent_id: str


@dataclass
class HistoryResult:
    transactions: list[Transaction]
    total: int


@dataclass
class ConfigurationList:
    success: bool
    configurations: list[PortalConfigurationOut]


@dataclass
class ConfigurationSaveBody(PortalConfigurationFields):
    configuration_id: str | None = None
    """The configuration (`bpc_…`) to change; without it a new one is created."""


@dataclass
class ConfigurationSaved:
    success: bool
    message: str
    configuration: PortalConfigurationOut


@dataclass
class FeatureUse:
    feature: str
    """The portal workflow (`payment_update`, `subscription_management`, …)."""
    sessions: int


@dataclass
class SessionDuration:
    median_seconds: float | None
    p90_seconds: float | None


@dataclass
class AnalyticsSummary:
    start_date: date
    end_date: date
    timezone: str
    total_sessions: int
    unique_customers: int
    most_used_features: list[FeatureUse]
    """Sessions per workflow, most used first."""
    session_duration: SessionDuration
    """Seconds from opening the portal to coming back."""
    return_rate: float | None
    """Share of sessions whose customer came back (0..1; null without sessions)."""


@dataclass
class AnalyticsResult:
    success: bool
    analytics: AnalyticsSummary


async def _home_workflow(user: User) -> str:
    """The portal workflow behind a plain "billing portal" button: manage the plan, or the invoices."""
    return "subscription_management" if await active_subscription(user.id) is not None else "billing_review"


class CompatibilityController(Controller):
    """Seed-compatible JSON routes (documented as compatibility routes)."""

    path = "/"
    tags = ["Compatibility routes"]  # noqa: RUF012
    middleware = API_MIDDLEWARE

    async def _portal(
        self, request: Request[Any, Any, Any], user: User, gateway: StripeGateway, return_url: str | None
    ) -> PortalSessionOut:
        return await service.portal_session(
            gateway,
            user,
            request.app.state.settings,
            workflow_type=await _home_workflow(user),
            return_url=check_client_url(request, "return_url", return_url),
            configuration_id=None,
            locale=request_stripe_locale(request),
        )

    @post(
        "/api/create-portal-session",
        name="compat:create_portal_session",
        status_code=200,
        guards=API_GUARDS,
        middleware=[session_rate_limit.middleware],
        responses=error_responses(*PORTAL_ERRORS),
    )
    async def create_portal_session(
        self,
        request: Request[Any, Any, Any],
        api_user: NamedDependency[User],
        stripe_gateway: NamedDependency[StripeGateway],
        data: JSONBody[ReturnUrlBody | None] = None,
    ) -> PortalUrl:
        """Compatibility route: a Customer Portal link → `{portal_url}`."""
        opened = await self._portal(request, api_user, stripe_gateway, data.return_url if data else None)
        return PortalUrl(portal_url=opened.url)

    @post(
        "/stripe/customer-portal",
        name="compat:stripe_customer_portal",
        status_code=200,
        guards=API_GUARDS,
        middleware=[session_rate_limit.middleware],
        responses=error_responses(*PORTAL_ERRORS),
    )
    async def stripe_customer_portal(
        self,
        request: Request[Any, Any, Any],
        api_user: NamedDependency[User],
        stripe_gateway: NamedDependency[StripeGateway],
        data: JSONBody[ReturnUrlBody | None] = None,
    ) -> Url:
        """Compatibility route: `{return_url}` → a Customer Portal link `{url}`."""
        opened = await self._portal(request, api_user, stripe_gateway, data.return_url if data else None)
        return Url(url=opened.url)

    @post(
        "/api/subscriptions/user/billing-portal/",
        name="compat:subscriptions_billing_portal",
        status_code=200,
        guards=API_GUARDS,
        middleware=[session_rate_limit.middleware],
        responses=error_responses(*PORTAL_ERRORS, "no_active_subscription"),
    )
    async def subscriptions_billing_portal(
        self,
        request: Request[Any, Any, Any],
        api_user: NamedDependency[User],
        stripe_gateway: NamedDependency[StripeGateway],
        data: JSONBody[ReturnUrlBody | None] = None,
    ) -> BillingPortalResult:
        """Compatibility route: `{success, message, portal_url}` for a subscriber. Errors: 401 not signed
        in, 409 `no_active_subscription`, 409 `no_customer`, 502 `stripe_unavailable`/`stripe_error`."""
        if await active_subscription(api_user.id) is None:
            raise ApiError("no_active_subscription")
        if not await Customer.exists().where((Customer.user == api_user.id) & (Customer.deleted == False)):  # noqa: E712
            raise ApiError("no_customer")
        opened = await self._portal(request, api_user, stripe_gateway, data.return_url if data else None)
        return BillingPortalResult(success=True, message="Billing portal session created.", portal_url=opened.url)

    @post(
        "/api/payment/portal/session",
        name="compat:payment_portal_session",
        status_code=200,
        guards=API_GUARDS,
        middleware=[session_rate_limit.middleware],
        responses=error_responses(*PORTAL_ERRORS),
    )
    async def payment_portal_session(
        self,
        request: Request[Any, Any, Any],
        api_user: NamedDependency[User],
        stripe_gateway: NamedDependency[StripeGateway],
        data: JSONBody[PortalSessionRequest],
    ) -> PortalSessionResult:
        """Compatibility route: `{workflow_type, return_url, configuration_id}` →
        `{success, portal_session: {id, url, expires_at, return_url}}`."""
        opened = await service.portal_session(
            stripe_gateway,
            api_user,
            request.app.state.settings,
            workflow_type=data.workflow_type,
            return_url=check_client_url(request, "return_url", data.return_url),
            configuration_id=data.configuration_id,
            locale=data.locale or request_stripe_locale(request),
        )
        return PortalSessionResult(success=True, portal_session=opened)

    @get(
        "/api/payment/portal/return",
        name="compat:payment_portal_return",
        guards=API_GUARDS,
        cache=False,
        responses=error_responses("not_found", "stripe_unavailable"),
    )
    async def payment_portal_return(
        self,
        request: Request[Any, Any, Any],
        api_user: NamedDependency[User],
        stripe_gateway: NamedDependency[StripeGateway],
        session_id: Annotated[str, QueryParameter(min_length=1, max_length=255)],
    ) -> PortalReturnResult:
        """Compatibility route: sync after the portal → `{success, message, synchronized_data:
        {customer_updated, subscription_changed, payment_method_updated, changes}, redirect_url}`."""
        settings = request.app.state.settings.app
        result = await service.portal_return(
            stripe_gateway,
            api_user,
            session_id,
            settings.base_url,
            request.app.route_reverse,
            request_preferences(request).locale,
            settings.default_timezone,
        )
        return PortalReturnResult(
            success=True,
            message="Billing data synchronized." if result.changes else "No changes.",
            synchronized_data=SynchronizedData(
                customer_updated=result.customer_updated,
                subscription_changed=result.subscription_changed,
                payment_method_updated=result.payment_method_updated,
                changes=result.changes,
            ),
            redirect_url=result.redirect_url,
        )

    @get("/v1/billing/config", name="compat:billing_config", cache=False, responses=error_responses())
    async def billing_config(self, request: Request[Any, Any, Any]) -> BillingConfig:
        """Compatibility route: the Stripe publishable key `{publishable_key}` (no sign-in needed)."""
        return BillingConfig(publishable_key=request.app.state.settings.stripe.publishable_key)

    @post(
        "/v1/billing/checkout-session",
        name="compat:checkout_session",
        status_code=200,
        guards=API_GUARDS,
        middleware=[session_rate_limit.middleware],
        responses=error_responses(
            "validation_failed", "unsupported_media_type", "already_subscribed", "rate_limited", "stripe_unavailable"
        ),
    )
    async def checkout_session(
        self,
        request: Request[Any, Any, Any],
        api_user: NamedDependency[User],
        stripe_gateway: NamedDependency[StripeGateway],
        data: JSONBody[CheckoutSessionRequest],
    ) -> CheckoutSessionResult:
        """Compatibility route: `{price, success_url?, cancel_url?}` → `{session_id, url}`."""
        created = await service.checkout(
            stripe_gateway,
            api_user,
            data.price,
            request.app.state.settings.app.base_url,
            check_client_url(request, "success_url", data.success_url),
            check_client_url(request, "cancel_url", data.cancel_url),
            request_stripe_locale(request),
        )
        return CheckoutSessionResult(session_id=created.id, url=created.url)

    @post(
        "/v1/billing/payment-intent",
        name="compat:payment_intent",
        status_code=200,
        guards=API_GUARDS,
        middleware=[session_rate_limit.middleware],
        responses=error_responses(
            "validation_failed", "unsupported_media_type", "already_subscribed", "rate_limited", "stripe_unavailable"
        ),
    )
    async def payment_intent(
        self,
        request: Request[Any, Any, Any],
        api_user: NamedDependency[User],
        stripe_gateway: NamedDependency[StripeGateway],
        data: JSONBody[PaymentIntentRequest],
    ) -> PaymentIntentResult:
        """Compatibility route: `{price}` (one-time) → `{client_secret, payment_intent_id}`."""
        created = await service.payment_intent(
            stripe_gateway,
            api_user,
            data.price,
            request.app.state.settings.stripe.publishable_key,
            request.headers.get("idempotency-key"),
        )
        return PaymentIntentResult(client_secret=created.client_secret, payment_intent_id=created.payment_intent_id)

    @get(
        "/v1/billing/history",
        name="compat:history",
        guards=API_GUARDS,
        cache=False,
        responses=error_responses("validation_failed"),
    )
    async def history(
        self,
        request: Request[Any, Any, Any],
        api_user: NamedDependency[User],
        limit: Annotated[int, QueryParameter(ge=1, le=100)] = 10,
        offset: Annotated[int, QueryParameter(ge=0)] = 0,
    ) -> HistoryResult:
        """Compatibility route: `?limit&offset` → `{transactions, total}` (offset capped at 1000)."""
        page = await service.history(
            api_user,
            request.app.state.settings.app.session_secret,
            limit=limit,
            offset=offset,
            cursor=None,
            status=None,
            date_from=None,
            date_to=None,
        )
        return HistoryResult(transactions=page.transactions, total=page.total)

    @get(
        "/api/payment/portal/configuration",
        name="compat:portal_configurations",
        guards=[*API_GUARDS, requires_api_support],
        cache=False,
        responses=error_responses("forbidden", "stripe_unavailable"),
    )
    async def portal_configurations(self, stripe_gateway: NamedDependency[StripeGateway]) -> ConfigurationList:
        """Compatibility route (role `support` or `admin`): `{success, configurations: [...]}`, each as
        `GET /api/v1/admin/portal-configurations` shows it."""
        return ConfigurationList(success=True, configurations=await admin.list_configurations(stripe_gateway))

    @post(
        "/api/payment/portal/configuration",
        name="compat:portal_configuration_save",
        status_code=200,
        guards=[*API_GUARDS, requires_api_admin],
        responses=error_responses("forbidden", "validation_failed", "not_found", "stripe_unavailable"),
    )
    async def save_portal_configuration(
        self,
        api_user: NamedDependency[User],
        stripe_gateway: NamedDependency[StripeGateway],
        data: JSONBody[ConfigurationSaveBody],
    ) -> ConfigurationSaved:
        """Compatibility route (role `admin`): the fields of `POST /api/v1/admin/portal-configurations`
        plus an optional `configuration_id` (update that one; else create) → `{success, message,
        configuration}`."""
        fields = PortalConfigurationFields(
            **{k: getattr(data, k) for k in PortalConfigurationFields.__dataclass_fields__}
        )
        saved = await admin.save_configuration(stripe_gateway, data.configuration_id, fields, api_user)
        message = "Configuration saved." if data.configuration_id else "Configuration created."
        return ConfigurationSaved(success=True, message=message, configuration=saved)

    @get(
        "/api/payment/portal/analytics",
        name="compat:portal_analytics",
        guards=[*API_GUARDS, requires_api_support],
        cache=False,
        responses=error_responses("forbidden", "validation_failed"),
    )
    async def portal_analytics(
        self,
        request: Request[Any, Any, Any],
        start_date: admin.StartDate = None,
        end_date: admin.EndDate = None,
        timezone: admin.TimeZone = None,
    ) -> AnalyticsResult:
        """Compatibility route (role `support` or `admin`): `?start_date&end_date` → `{success, analytics:
        {start_date, end_date, timezone, total_sessions, unique_customers, most_used_features,
        session_duration, return_rate}}` (the figures of `GET /api/v1/admin/portal-analytics`)."""
        figures = await admin.portal_analytics(admin.analytics_period(request, start_date, end_date, timezone))
        return AnalyticsResult(
            success=True,
            analytics=AnalyticsSummary(
                start_date=figures.period.start_date,
                end_date=figures.period.end_date,
                timezone=figures.period.timezone,
                total_sessions=figures.total_sessions,
                unique_customers=figures.unique_customers,
                most_used_features=[FeatureUse(feature=w.workflow, sessions=w.sessions) for w in figures.by_workflow],
                session_duration=SessionDuration(
                    median_seconds=figures.median_session_seconds, p90_seconds=figures.p90_session_seconds
                ),
                return_rate=figures.return_rate,
            ),
        )
