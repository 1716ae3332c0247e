"""`/account`: the signed-in person's profile and billing summary, and "Keep my plan"."""

from __future__ import annotations

from typing import Any

from litestar import Controller, Request, get, post
from litestar.di import NamedDependency
from litestar.plugins.flash import flash
from litestar.response import Redirect, Response, Template
from litestar.status_codes import HTTP_303_SEE_OTHER

from app.auth.tables import User
from app.billing.keep import NothingToKeep, keep_plan
from app.billing.service import PersonSummary
from app.entitlements.service import what_you_have
from app.stripe_gateway import StripeGateway, StripeRequestRejected, StripeUnavailable
from app.web.dependencies import signed_in_person
from app.web.errors import stripe_failure_response, stripe_refusal_response
from app.web.guards import requires_login
from app.web.i18n import N_, date, request_preferences


def shown_email(user: User, billing_email: str | None) -> str | None:
    """The email to show: the sign-in one when it is an address, else the one Stripe has for billing
    (a person without an email types one in Checkout)."""
    if user.email and "@" in user.email:
        return str(user.email)
    return billing_email


def account_context(person: PersonSummary) -> dict[str, Any]:
    """What `accounts/show.html` shows of `person`: `user`, `billing`, `email`, `included` and `entitlements`."""
    billing = person.billing
    return {
        "user": person.user,
        "billing": billing,
        "email": shown_email(person.user, billing.customer.email if billing.customer else None),
        "included": what_you_have(person.features),
        "entitlements": {f.feature for f in person.features},
    }


class AccountController(Controller):
    """The account page."""

    path = "/account"
    guards = [requires_login]  # noqa: RUF012

    @get("/", name="account:show", cache=False)
    async def show(self, request: Request[Any, Any, Any]) -> Template:
        """Profile and billing summary of the signed-in person, read from the local copy only (one query)."""
        person = await signed_in_person(request)
        return Template(template_name="accounts/show.html", context=account_context(person))

    @post("/keep-plan", name="account:keep_plan", status_code=HTTP_303_SEE_OTHER)
    async def keep(
        self,
        request: Request[Any, Any, Any],
        current_user: NamedDependency[User],
        stripe_gateway: NamedDependency[StripeGateway],
    ) -> Response[Any]:
        """Withdraw the pending cancellation at Stripe, sync, and say what happened on the account page."""
        _ = request_preferences(request).gettext
        try:
            subscription = await keep_plan(stripe_gateway, current_user)
        except NothingToKeep:
            flash(request, _("Your plan is not set to cancel, so there is nothing to undo."), category="info")
        except StripeRequestRejected as exc:
            return stripe_refusal_response(request, exc)
        except StripeUnavailable as exc:
            return stripe_failure_response(
                request, N_("We could not reach Stripe, so your plan still cancels. Please try again in a minute."), exc
            )
        else:
            renews = date({"request": request}, subscription.current_period_end)
            flash(request, _("You kept your plan: it renews on %(date)s.", date=renews), category="success")
        return Redirect(request.app.route_reverse("account:show"), status_code=HTTP_303_SEE_OTHER)
