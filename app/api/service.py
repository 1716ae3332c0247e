"""The API's views over the same services the pages use (billing, history, portal): no rule lives here,
only the translation of their results and errors into the API's shapes and error codes."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

from app.api.errors import ApiError, stripe_error, validation_error
from app.api.schemas import (
    ChangeOut,
    CheckoutSessionCreated,
    HistoryPageOut,
    Me,
    PaymentIntentCreated,
    PlanInfo,
    PortalReturn,
    PortalSessionOut,
    Profile,
    Transaction,
)
from app.auth.tables import User
from app.billing.service import CheckoutRefused, account_billing, create_checkout, start_payment_intent
from app.billing.tables import Price
from app.history.service import (
    MAX_OFFSET,
    CursorError,
    CursorSigner,
    FilterError,
    count_payments,
    fetch_offset_page,
    fetch_page,
    parse_filters,
)
from app.portal.service import NoCustomer, UnknownWorkflow, complete_return, open_portal_session
from app.portal.tables import PortalConfiguration, PortalSession
from app.stripe_gateway import StripeGateway, StripeGatewayError

PREMIUM_STATUSES = ("active", "trialing", "past_due")
PORTAL_LINK_LIFETIME = timedelta(minutes=5)
CUSTOMER_KINDS = {"email", "address", "tax_ids"}
SUBSCRIPTION_KINDS = {"plan", "status", "cancellation"}


async def lookup_key_of(price: str) -> str:
    """A price given as a lookup key or a Stripe id (`price_…`) → its lookup key (unknown ids unchanged)."""
    if price.startswith("price_"):
        row = await Price.objects().get(Price.stripe_price_id == price)
        if row is not None and row.lookup_key:
            return str(row.lookup_key)
    return price


async def me(user: User) -> Me:
    """The caller's profile and billing state, from the account page's facts."""
    billing = await account_billing(user.id)
    plan = status = None
    renews_at = cancels_at = None
    if billing.subscription is not None:
        sub = billing.subscription
        status = sub.status
        if billing.subscription_plan is not None:
            interval = billing.subscription_price.interval if billing.subscription_price else None
            plan = PlanInfo(key=billing.subscription_plan.key, name=billing.subscription_plan.name, interval=interval)
        ends = sub.cancel_at or (sub.current_period_end if sub.cancel_at_period_end else None)
        cancels_at = ends
        renews_at = None if ends or sub.status not in ("active", "trialing") else sub.current_period_end
    elif billing.lifetime is not None:
        status = "lifetime"
        if billing.lifetime_plan is not None:
            plan = PlanInfo(key=billing.lifetime_plan.key, name=billing.lifetime_plan.name, interval=None)
    is_lifetime = billing.lifetime is not None
    return Me(
        profile=Profile(subject=user.subject, email=user.email, email_verified=user.email_verified, name=user.name),
        plan=plan,
        status=status,
        is_premium=is_lifetime
        or (billing.subscription is not None and billing.subscription.status in PREMIUM_STATUSES),
        is_lifetime=is_lifetime,
        renews_at=renews_at,
        cancels_at=cancels_at,
        has_billing_account=billing.customer is not None and not billing.customer.deleted,
    )


async def checkout(
    gateway: StripeGateway,
    user: User,
    price: str,
    base_url: str,
    success_url: str | None,
    cancel_url: str | None,
    locale: str | None = None,
) -> CheckoutSessionCreated:
    """A Checkout Session for `price` in Stripe's `locale` (see `app.billing.service.create_checkout`).

    Raises:
        ApiError: 422 unknown price, 409 `already_subscribed`, 502 Stripe.
    """
    try:
        session = await create_checkout(
            gateway, user, await lookup_key_of(price), base_url, success_url, cancel_url, locale=locale
        )
    except LookupError as exc:
        raise validation_error({"price": "No active price has that lookup key or id."}) from exc
    except CheckoutRefused as exc:
        raise ApiError("already_subscribed", str(exc)) from exc
    except StripeGatewayError as exc:
        raise stripe_error(exc) from exc
    return CheckoutSessionCreated(id=str(session["id"]), url=str(session["url"]))


async def payment_intent(
    gateway: StripeGateway, user: User, price: str, publishable_key: str, idempotency_key: str | None
) -> PaymentIntentCreated:
    """A PaymentIntent for a one-time `price` (see `app.billing.service.start_payment_intent`).

    Raises:
        ApiError: 422 unknown or recurring price, 409 `already_subscribed`, 502 Stripe.
    """
    try:
        started = await start_payment_intent(gateway, user, await lookup_key_of(price), idempotency_key)
    except LookupError as exc:
        raise validation_error({"price": "No active price has that lookup key or id."}) from exc
    except ValueError as exc:
        raise validation_error({"price": str(exc)}) from exc
    except CheckoutRefused as exc:
        raise ApiError("already_subscribed", str(exc)) from exc
    except StripeGatewayError as exc:
        raise stripe_error(exc) from exc
    return PaymentIntentCreated(
        payment_intent_id=started.payment_intent_id,
        client_secret=started.client_secret,
        amount_cents=started.amount_cents,
        currency=started.currency,
        publishable_key=publishable_key,
    )


async def history(
    user: User,
    secret: str,
    *,
    limit: int,
    offset: int | None,
    cursor: str | None,
    status: str | None,
    date_from: str | None,
    date_to: str | None,
) -> HistoryPageOut:
    """One page of the caller's payments: `offset` paging (capped at `MAX_OFFSET`) or the keyset `cursor`.

    Raises:
        ApiError: 422 for filters or an offset past the cap (the message says to use `cursor`),
            400 `invalid_cursor`.
    """
    try:
        filters = parse_filters(status, date_from, date_to)
    except FilterError as exc:
        raise validation_error(exc.errors) from exc
    signer = CursorSigner(secret, user.id)
    if cursor is not None:
        if offset:
            raise validation_error({"offset": "Use either offset or cursor, not both."})
        try:
            after = signer.decode(cursor)
        except CursorError as exc:
            raise ApiError("invalid_cursor") from exc
        page = await fetch_page(user.id, filters, size=limit, after=after)
    else:
        if (offset or 0) > MAX_OFFSET:
            raise validation_error(
                {"offset": f"offset is capped at {MAX_OFFSET}; page further with cursor (from next_cursor)."}
            )
        page = await fetch_offset_page(user.id, filters, limit=limit, offset=offset or 0)
    last = page.rows[-1].position if page.rows and page.has_older else None
    return HistoryPageOut(
        transactions=[
            Transaction(
                id=row.stripe_payment_intent_id,
                created_at=row.created_at,
                description=row.description,
                amount_cents=row.amount_cents,
                amount_refunded_cents=row.amount_refunded_cents or 0,
                currency=row.currency,
                status=row.status,
                payment_method=row.payment_method,
                payment_method_last4=row.payment_method_last4,
                failure_reason=row.failure_reason,
                hosted_invoice_url=row.link("hosted_invoice_url"),
                invoice_pdf_url=row.link("invoice_pdf_url"),
                receipt_url=row.link("receipt_url"),
            )
            for row in page.rows
        ],
        total=await count_payments(user.id, filters),
        limit=limit,
        offset=None if cursor is not None else (offset or 0),
        has_more=page.has_older,
        next_cursor=signer.encode(last) if last else None,
    )


async def portal_session(
    gateway: StripeGateway,
    user: User,
    settings: Any,
    *,
    workflow_type: str,
    return_url: str | None,
    configuration_id: str | None,
    locale: str | None,
) -> PortalSessionOut:
    """A Billing Portal Session for one workflow (see `app.portal.service.open_portal_session`).

    Raises:
        ApiError: 422 unknown configuration or workflow, 409 `no_customer`, 502 Stripe.
    """
    if configuration_id is not None and not await PortalConfiguration.exists().where(
        PortalConfiguration.stripe_configuration_id == configuration_id
    ):
        raise validation_error({"configuration_id": "No portal configuration of this app has that id."})
    try:
        opened = await open_portal_session(
            gateway,
            user,
            workflow_type,
            settings.app.base_url,
            retention_coupon=settings.app.portal_retention_coupon,
            return_url=return_url,
            configuration_id=configuration_id,
            locale=locale,
        )
    except UnknownWorkflow as exc:
        raise validation_error({"workflow_type": "That workflow is not available for you now."}) from exc
    except NoCustomer as exc:
        raise ApiError("no_customer", "You have no billing account yet; buy a plan first.") from exc
    except StripeGatewayError as exc:
        raise stripe_error(exc) from exc
    created = datetime.fromtimestamp(opened.created, UTC) if opened.created else datetime.now(UTC)
    return PortalSessionOut(
        id=opened.id,
        url=opened.url,
        expires_at=created + PORTAL_LINK_LIFETIME,
        return_url=opened.return_url,
        workflow_type=workflow_type,
    )


async def portal_return(
    gateway: StripeGateway, user: User, session_id: str, base_url: str, route_reverse: Any, locale: str, timezone: str
) -> PortalReturn:
    """Sync and compare after a portal visit (the same `complete_return` as `/portal/return`).

    `session_id` is Stripe's `bps_…` (from `POST /api/v1/portal/sessions`) or this app's row id.

    Raises:
        ApiError: 404 when the session is not the caller's, 502 when the sync failed.
    """
    condition = PortalSession.stripe_session_id == session_id
    if session_id.isdigit() and len(session_id) < 10:
        condition = PortalSession.id == int(session_id)
    row = await PortalSession.objects().where(condition & (PortalSession.user == user.id)).first()
    if row is None:
        raise ApiError("not_found", "No portal session of yours has that id.")
    try:
        summary = await complete_return(gateway, user, row.id, locale, timezone)
    except StripeGatewayError as exc:
        raise stripe_error(exc) from exc
    if summary is None:
        raise ApiError("not_found")
    changes = [
        ChangeOut(kind=str(c.get("kind")), before=c.get("before"), after=c.get("after"), text=str(c.get("text")))
        for c in summary.changes
    ]
    kinds = {c.kind for c in changes}
    return PortalReturn(
        workflow_type=summary.workflow,
        customer_updated=bool(kinds & CUSTOMER_KINDS),
        subscription_changed=bool(kinds & SUBSCRIPTION_KINDS),
        payment_method_updated="payment_method" in kinds,
        changes=changes,
        redirect_url=base_url + route_reverse(summary.next_page),
    )
