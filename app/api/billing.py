"""`/api/v1/billing/…`: the publishable key, Checkout Sessions, PaymentIntents and the payment history."""

from __future__ import annotations

from typing import Annotated, Any

from litestar import Controller, Request, get, post
from litestar.di import NamedDependency
from litestar.params import QueryParameter

from app.api import service
from app.api.common import (
    API_GUARDS,
    API_MIDDLEWARE,
    check_client_url,
    error_responses,
    json_body,
    session_rate_limit,
)
from app.api.schemas import (
    BillingConfig,
    CheckoutSessionCreated,
    CheckoutSessionRequest,
    HistoryPageOut,
    PaymentIntentCreated,
    PaymentIntentRequest,
)
from app.auth.tables import User
from app.stripe_gateway import StripeGateway
from app.web.i18n import request_stripe_locale

Limit = Annotated[int, QueryParameter(ge=1, le=100, description="Payments per page (1–100).")]
Offset = Annotated[
    int | None, QueryParameter(ge=0, required=False, description="Rows to skip (at most 1000; then use `cursor`).")
]
Text = Annotated[str | None, QueryParameter(required=False)]
SESSION_ERRORS = ("validation_failed", "unsupported_media_type", "rate_limited", "stripe_unavailable")


class BillingApiController(Controller):
    """Billing for the caller."""

    path = "/api/v1/billing"
    tags = ["Billing"]  # noqa: RUF012
    middleware = API_MIDDLEWARE

    @get("/config", name="api:billing_config", cache=False, responses=error_responses())
    async def config(self, request: Request[Any, Any, Any]) -> BillingConfig:
        """The Stripe publishable key for Stripe.js or a mobile SDK. Needs no sign-in: the key is public."""
        return BillingConfig(publishable_key=request.app.state.settings.stripe.publishable_key)

    @post(
        "/checkout-sessions",
        name="api:checkout_sessions",
        guards=API_GUARDS,
        middleware=[session_rate_limit.middleware],
        responses=error_responses(*SESSION_ERRORS, "already_subscribed", "idempotency_key_reused"),
    )
    async def create_checkout_session(
        self,
        request: Request[Any, Any, Any],
        api_user: NamedDependency[User],
        stripe_gateway: NamedDependency[StripeGateway],
        data: Annotated[
            CheckoutSessionRequest,
            json_body(
                {"price": "pro_monthly"},
                {"price": "pro_yearly", "success_url": "https://app.example.com/welcome?cs={CHECKOUT_SESSION_ID}"},
            ),
        ],
    ) -> CheckoutSessionCreated:
        """Create a Stripe Checkout Session for a catalogue price; send the person to `url`.

        Subscriptions for recurring prices, a one-time payment for lifetime prices. Someone with a
        live subscription gets 409 `already_subscribed` (plan changes go through the portal)."""
        return await service.checkout(
            stripe_gateway,
            api_user,
            data.price,
            request.app.state.settings.app.base_url,
            check_client_url(request, "success_url", data.success_url),
            check_client_url(request, "cancel_url", data.cancel_url),
            request_stripe_locale(request),
        )

    @post(
        "/payment-intents",
        name="api:payment_intents",
        guards=API_GUARDS,
        middleware=[session_rate_limit.middleware],
        responses=error_responses(*SESSION_ERRORS, "already_subscribed", "idempotency_key_reused"),
    )
    async def create_payment_intent(
        self,
        request: Request[Any, Any, Any],
        api_user: NamedDependency[User],
        stripe_gateway: NamedDependency[StripeGateway],
        data: Annotated[PaymentIntentRequest, json_body({"price": "pro_lifetime"})],
    ) -> PaymentIntentCreated:
        """Create a PaymentIntent for a one-time (lifetime) catalogue price; confirm it on the client
        with `client_secret`. The amount always comes from the catalogue. The payment appears in the
        history once Stripe's webhook is applied."""
        return await service.payment_intent(
            stripe_gateway,
            api_user,
            data.price,
            request.app.state.settings.stripe.publishable_key,
            request.headers.get("idempotency-key"),
        )

    @get(
        "/history",
        name="api:history",
        guards=API_GUARDS,
        cache=False,
        responses=error_responses("validation_failed", "invalid_cursor"),
    )
    async def history(
        self,
        request: Request[Any, Any, Any],
        api_user: NamedDependency[User],
        limit: Limit = 10,
        offset: Offset = None,
        cursor: Text = None,
        status: Annotated[
            str | None, QueryParameter(required=False, description="all, succeeded, pending, failed or refunded")
        ] = None,
        date_from: Annotated[str | None, QueryParameter(name="from", required=False, description="YYYY-MM-DD")] = None,
        date_to: Annotated[str | None, QueryParameter(name="to", required=False, description="YYYY-MM-DD")] = None,
    ) -> HistoryPageOut:
        """The caller's payments, newest first: `limit`/`offset` with `total` (offset capped at 1000),
        or the keyset `cursor` from `next_cursor` for any depth. Filters as on the history page."""
        return await service.history(
            api_user,
            request.app.state.settings.app.session_secret,
            limit=limit,
            offset=offset,
            cursor=cursor,
            status=status,
            date_from=date_from,
            date_to=date_to,
        )
