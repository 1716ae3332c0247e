"""`/billing/checkout`: start Stripe Checkout, and the page people come back to."""

from __future__ import annotations

import logging
from typing import Annotated, Any

from litestar import Controller, Request, get, post
from litestar.di import NamedDependency
from litestar.enums import RequestEncodingType
from litestar.exceptions import NotFoundException
from litestar.params import Body, QueryParameter
from litestar.plugins.flash import flash
from litestar.response import Response, Template
from litestar.status_codes import HTTP_303_SEE_OTHER

from app.auth.tables import User
from app.billing.service import CheckoutRefused, account_billing, start_checkout
from app.billing.sync import sync_customer
from app.billing.tables import Customer
from app.stripe_gateway import StripeGateway, StripeRequestRejected, StripeUnavailable
from app.web.errors import error_response, stripe_failure_response
from app.web.guards import requires_login
from app.web.i18n import N_, request_preferences, request_stripe_locale
from app.web.redirects import see_other
from app.web.validation import is_checkout_session_id, is_lookup_key

logger = logging.getLogger(__name__)


class CheckoutController(Controller):
    """Checkout start and return."""

    path = "/billing/checkout"
    guards = [requires_login]  # noqa: RUF012

    @post("/", name="billing:checkout", status_code=HTTP_303_SEE_OTHER)
    async def checkout(
        self,
        request: Request[Any, Any, Any],
        current_user: NamedDependency[User],
        stripe_gateway: NamedDependency[StripeGateway],
        data: Annotated[dict[str, str], Body(media_type=RequestEncodingType.URL_ENCODED)],
    ) -> Response[Any]:
        """Create a Checkout Session for the chosen price (`price` = its lookup key) and go there."""
        lookup_key = (data.get("price") or "").strip()
        if not is_lookup_key(lookup_key):
            return error_response(request, 400, N_("That plan is not available. Please choose one from the list."))
        base_url = request.app.state.settings.app.base_url
        try:
            url = await start_checkout(
                stripe_gateway, current_user, lookup_key, base_url, locale=request_stripe_locale(request)
            )
        except LookupError:
            return error_response(request, 400, N_("That plan is not available. Please choose one from the list."))
        except CheckoutRefused as exc:
            flash(request, request_preferences(request).gettext(str(exc)), category="warning")
            return see_other(request, request.app.route_reverse("account:show"))
        except (StripeUnavailable, StripeRequestRejected) as exc:
            return stripe_failure_response(
                request, N_("We could not reach our payment provider. Nothing was charged; please try again."), exc
            )
        return see_other(request, url)

    @get("/success", name="billing:checkout_success", cache=False)
    async def success(
        self,
        request: Request[Any, Any, Any],
        current_user: NamedDependency[User],
        stripe_gateway: NamedDependency[StripeGateway],
        session_id: Annotated[str | None, QueryParameter(required=False)] = None,
    ) -> Template | Response[Any]:
        """Sync the customer from Stripe at once, then show the outcome. Reloading is harmless.

        Raises:
            NotFoundException: the Checkout Session is unknown or belongs to someone else.
        """
        if not is_checkout_session_id(session_id):
            return error_response(
                request, 400, N_("This link does not name a Checkout Session. Your account page shows your plan.")
            )
        customer = await Customer.objects().get(Customer.user == current_user.id)
        try:
            session = await stripe_gateway.retrieve_checkout_session(session_id)
        except StripeRequestRejected as exc:  # StripeNotFound included
            raise NotFoundException from exc
        except StripeUnavailable as exc:
            return stripe_failure_response(
                request, N_("We could not confirm your payment yet. It is safe to reload this page in a moment."), exc
            )
        session_customer = session.get("customer")
        if (
            customer is None
            or session.get("client_reference_id") != str(current_user.id)
            or session_customer != customer.stripe_customer_id
        ):
            logger.warning("User %s opened Checkout Session %s of someone else", current_user.id, session_id)
            raise NotFoundException
        try:
            await sync_customer(stripe_gateway, customer.stripe_customer_id, source="checkout_return")
        except StripeUnavailable:
            logger.warning("Eager sync after Checkout failed; the webhook will bring the change")
        completed = session.get("status") == "complete"
        return Template(
            template_name="billing/checkout_success.html",
            context={
                "completed": completed,
                "paid": session.get("payment_status") in ("paid", "no_payment_required"),
                "mode": session.get("mode"),
                "billing": await account_billing(current_user.id),
            },
        )
