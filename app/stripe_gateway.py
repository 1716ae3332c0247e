"""The only module that talks to Stripe (imports `stripe`).

Everything else calls `StripeGateway` and gets plain `dict`s shaped like Stripe's API objects
(`StripeObject.to_dict()`), or one of this module's errors. The API version is pinned once, here,
to the one the installed SDK was generated for (`stripe.api_version`). `STRIPE_API_BASE` points the
SDK at another server speaking Stripe's API (the offline emulator) with no other code path.

Stripe API reference: https://docs.stripe.com/api
"""

from __future__ import annotations

import asyncio
import collections
import json
import logging
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from datetime import UTC, datetime
from typing import Any, TypeVar, cast

import stripe

from app import metrics
from app.settings import StripeSettings

logger = logging.getLogger(__name__)

API_VERSION: str = stripe.api_version
WEBHOOK_TOLERANCE_SECONDS = 300
T = TypeVar("T")


class StripeGatewayError(Exception):
    """Base of every error this module raises; `request_id` is Stripe's `req_…` when known."""

    def __init__(
        self, message: str, *, request_id: str | None = None, code: str | None = None, param: str | None = None
    ) -> None:
        super().__init__(message)
        self.request_id = request_id
        self.code = code
        self.param = param


class StripeUnavailable(StripeGatewayError):
    """Stripe could not be reached, timed out, or answered 5xx: try again later."""


class StripeRateLimited(StripeUnavailable):
    """Stripe answered 429 (about 25 requests/s in test mode, 100 live): back off, then retry."""


class StripeRequestRejected(StripeGatewayError):
    """Stripe refused the request (4xx): a bug or bad input, not worth retrying as is."""


class StripeNotFound(StripeRequestRejected):
    """The object does not exist (404 `resource_missing`)."""


class StripeCardDeclined(StripeRequestRejected):
    """A card was declined (402 `card_error`); `code`/`decline_code` say why."""


class WebhookSignatureError(Exception):
    """A webhook's `Stripe-Signature` is missing, malformed, stale or does not match."""


class WebhookPayloadError(ValueError):
    """A correctly signed webhook body that is not a JSON object."""


def from_unix(value: int | None) -> datetime | None:
    """Stripe's Unix seconds → an aware UTC datetime (None stays None)."""
    return datetime.fromtimestamp(value, tz=UTC) if value is not None else None


def as_dict(obj: Any) -> dict[str, Any]:
    """A Stripe object (or list) as plain nested dicts and lists."""
    if obj is None:
        return {}
    if isinstance(obj, dict) and not isinstance(obj, stripe.StripeObject):
        return obj
    return cast(dict[str, Any], obj.to_dict(recursive=True))


class RequestBudget:
    """At most `per_second` request starts in any sliding window of `window` seconds (default 1 s plus
    50 ms, so that a burst started at the end of one second and delayed on the way is still counted
    within a second at Stripe). Waiters are served in arrival order.

    Stripe limits each account to about 25 requests/s in test mode and 100/s live
    (https://docs.stripe.com/rate-limits); a process that stays under its budget never causes a 429.
    """

    def __init__(self, per_second: float, window: float = 1.05) -> None:
        self.size = max(int(per_second), 1)
        self.window = window
        self._starts: collections.deque[float] = collections.deque()
        self._lock = asyncio.Lock()

    async def acquire(self) -> None:
        """Wait until one more request fits in the budget, then count it as started now."""
        async with self._lock:
            while len(self._starts) >= self.size:
                wait = self._starts[0] + self.window - time.monotonic()
                if wait <= 0:
                    self._starts.popleft()
                    continue
                await asyncio.sleep(wait)
            self._starts.append(time.monotonic())


class _BudgetedHTTPXClient(stripe.HTTPXClient):
    """The SDK's httpx client, with every HTTP attempt (the SDK's own retries included) inside a budget."""

    def __init__(self, budget: RequestBudget | None, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.budget = budget
        self.requests = 0

    async def request_async(self, method: str, url: str, headers: Any, post_data: Any = None) -> tuple[bytes, int, Any]:
        if self.budget is not None:
            await self.budget.acquire()
        self.requests += 1
        return await super().request_async(method, url, headers, post_data)


class StripeGateway:
    """Async access to the Stripe API for one account (`STRIPE_SECRET_KEY`).

    Every method maps `stripe.StripeError` to this module's errors and logs Stripe's request id.
    """

    def __init__(self, settings: StripeSettings, *, rate_limit: float | None = None) -> None:
        """`rate_limit`: at most this many requests per second through this gateway (the event worker's
        budget, `STRIPE_RATE_LIMIT`); None means no budget (pages: one request per click)."""
        self.settings = settings
        # Waiting for the budget happens inside the HTTP client, before each attempt, so it also
        # covers the SDK's retries.
        self._http = _BudgetedHTTPXClient(RequestBudget(rate_limit) if rate_limit else None, timeout=settings.timeout)
        base_addresses: dict[str, str] = {}
        if settings.api_base:
            base_addresses = {"api": settings.api_base, "files": settings.api_base, "connect": settings.api_base}
        self.client = stripe.StripeClient(
            settings.secret_key,
            stripe_version=API_VERSION,
            base_addresses=base_addresses,  # type: ignore[arg-type]
            max_network_retries=settings.max_retries,
            http_client=self._http,
        )
        self.calls = 0
        """API calls made through this gateway (for benchmarks and metrics; `requests` adds the SDK's retries)."""

    @property
    def requests(self) -> int:
        """HTTP requests sent to Stripe, the SDK's retries included (what the budget counts)."""
        return self._http.requests

    async def _call(self, what: str, call: Callable[[], Awaitable[T]]) -> T:
        self.calls += 1
        started = time.perf_counter()
        try:
            return await self._mapped(what, call)
        except StripeGatewayError as exc:
            metrics.STRIPE_REQUEST_ERRORS.labels(operation=what, kind=type(exc).__name__).inc()
            raise
        finally:
            metrics.STRIPE_REQUEST_SECONDS.labels(operation=what).observe(time.perf_counter() - started)

    async def _raw(self, method: str, path: str, params: dict[str, Any] | None = None) -> dict[str, Any]:
        """One API request answered as plain JSON (the SDK's `raw_request_async`: same encoding, errors
        and retries), without the conversion into `StripeObject`s and back, which costs a busy worker
        several milliseconds of CPU per expanded object. For the reads of a customer sync."""
        response = await self.client.raw_request_async(method, path, **(params or {}))
        return cast(dict[str, Any], response.data)

    async def _mapped(self, what: str, call: Callable[[], Awaitable[T]]) -> T:
        try:
            return await call()
        except stripe.CardError as exc:
            raise StripeCardDeclined(
                exc.user_message or "The card was declined.", request_id=exc.request_id, code=exc.code
            ) from exc
        except stripe.RateLimitError as exc:
            logger.warning(
                "Stripe rate limit on %s (request %s)",
                what,
                exc.request_id,
                extra={"stripe_request_id": exc.request_id},
            )
            raise StripeRateLimited("Stripe is rate limiting requests.", request_id=exc.request_id) from exc
        except stripe.InvalidRequestError as exc:
            logger.warning(
                "Stripe refused %s: %s %s (request %s)",
                what,
                exc.code,
                exc.user_message,
                exc.request_id,
                extra={"stripe_request_id": exc.request_id},
            )
            error_cls = StripeNotFound if exc.code == "resource_missing" else StripeRequestRejected
            raise error_cls(
                str(exc.user_message or exc), request_id=exc.request_id, code=exc.code, param=exc.param
            ) from exc
        except (stripe.APIConnectionError, stripe.APIError) as exc:
            logger.error(
                "Stripe unavailable during %s: %s (request %s)",
                what,
                exc,
                exc.request_id,
                extra={"stripe_request_id": exc.request_id},
            )
            raise StripeUnavailable("Stripe did not answer.", request_id=exc.request_id) from exc
        except stripe.StripeError as exc:
            status = exc.http_status or 0
            logger.error(
                "Stripe error during %s: %s (status %s, request %s)",
                what,
                exc,
                status,
                exc.request_id,
                extra={"stripe_request_id": exc.request_id},
            )
            if status >= 500 or status == 0:
                raise StripeUnavailable("Stripe did not answer.", request_id=exc.request_id) from exc
            raise StripeRequestRejected(str(exc.user_message or exc), request_id=exc.request_id) from exc

    async def _list_all(
        self, what: str, list_call: Callable[[dict[str, Any]], Awaitable[Any]], params: dict[str, Any], max_pages: int
    ) -> AsyncIterator[dict[str, Any]]:
        """Page through a list endpoint with `starting_after` (100 per page, at most `max_pages`)."""
        page_params = {**params, "limit": 100}
        for _ in range(max_pages):
            page = as_dict(await self._call(what, lambda p=dict(page_params): list_call(p)))  # type: ignore[misc]
            data = page.get("data", [])
            for item in data:
                yield item
            if not page.get("has_more") or not data:
                return
            page_params["starting_after"] = data[-1]["id"]

    # Customers — https://docs.stripe.com/api/customers

    async def retrieve_customer(self, customer_id: str) -> dict[str, Any]:
        """Retrieve a Customer with its default PaymentMethod and tax ids expanded.

        A deleted customer comes back as Stripe documents it, `{"id", "object": "customer",
        "deleted": true}` (https://docs.stripe.com/api/customers/retrieve: "a subset of the customer's
        information is returned, including a deleted property"); the expansions name fields that
        subset does not have, so when Stripe refuses the expansion the customer is read once more
        without it.

        Raises: StripeNotFound (never existed), StripeUnavailable, StripeRequestRejected.
        """
        try:
            return await self._retrieve_customer_expanded(customer_id)
        except StripeRequestRejected as exc:
            if isinstance(exc, StripeNotFound) or exc.param != "expand":
                raise
        return as_dict(await self._call("customers.retrieve", lambda: self._raw("get", f"/v1/customers/{customer_id}")))

    async def _retrieve_customer_expanded(self, customer_id: str) -> dict[str, Any]:
        return as_dict(
            await self._call(
                "customers.retrieve",
                lambda: self._raw(
                    "get",
                    f"/v1/customers/{customer_id}",
                    {"expand": ["invoice_settings.default_payment_method", "tax_ids"]},
                ),
            )
        )

    async def create_customer(
        self,
        *,
        email: str | None,
        name: str | None,
        metadata: dict[str, str],
        idempotency_key: str,
        preferred_locales: list[str] | None = None,
    ) -> dict[str, Any]:
        """Create a Customer (https://docs.stripe.com/api/customers/create) idempotently.

        `preferred_locales` (e.g. `["de"]`) is the language of Stripe's emails, invoices and receipts
        for this customer."""
        params: dict[str, Any] = {"metadata": metadata}
        if preferred_locales:
            params["preferred_locales"] = preferred_locales
        if email:
            params["email"] = email
        if name:
            params["name"] = name
        return as_dict(
            await self._call(
                "customers.create",
                lambda: self.client.v1.customers.create_async(
                    params=params,  # type: ignore[arg-type]
                    options={"idempotency_key": idempotency_key},
                ),
            )
        )

    async def list_customers_by_email(self, email: str) -> list[dict[str, Any]]:
        """Customers whose email is exactly `email` (https://docs.stripe.com/api/customers/list)."""
        page = await self._call(
            "customers.list", lambda: self.client.v1.customers.list_async(params={"email": email, "limit": 10})
        )
        return list(as_dict(page).get("data", []))

    async def set_preferred_locales(self, customer_id: str, preferred_locales: list[str]) -> dict[str, Any]:
        """Set the languages of Stripe's emails, invoices and receipts for a Customer, e.g. `["fr"]`
        (https://docs.stripe.com/api/customers/update#update_customer-preferred_locales)."""
        params: Any = {"preferred_locales": preferred_locales}
        return as_dict(
            await self._call(
                "customers.update", lambda: self.client.v1.customers.update_async(customer_id, params=params)
            )
        )

    async def update_customer_metadata(self, customer_id: str, metadata: dict[str, str]) -> dict[str, Any]:
        """Merge `metadata` into a Customer's metadata (https://docs.stripe.com/api/customers/update)."""
        return as_dict(
            await self._call(
                "customers.update",
                lambda: self.client.v1.customers.update_async(customer_id, params={"metadata": metadata}),
            )
        )

    # Subscriptions, PaymentIntents, Invoices of one customer

    def subscriptions_of(self, customer_id: str) -> AsyncIterator[dict[str, Any]]:
        """Every Subscription of a customer, any status (https://docs.stripe.com/api/subscriptions/list)."""
        return self._list_all(
            "subscriptions.list",
            lambda p: self._raw("get", "/v1/subscriptions", p),
            {"customer": customer_id, "status": "all"},
            max_pages=10,
        )

    def payment_intents_of(self, customer_id: str, max_pages: int = 1) -> AsyncIterator[dict[str, Any]]:
        """A customer's PaymentIntents, newest first, with `latest_charge` expanded
        (https://docs.stripe.com/api/payment_intents/list)."""
        return self._list_all(
            "payment_intents.list",
            lambda p: self._raw("get", "/v1/payment_intents", p),
            {"customer": customer_id, "expand": ["data.latest_charge"]},
            max_pages=max_pages,
        )

    async def retrieve_payment_intent(self, payment_intent_id: str) -> dict[str, Any]:
        """One PaymentIntent with `latest_charge` expanded (https://docs.stripe.com/api/payment_intents/retrieve)."""
        return as_dict(
            await self._call(
                "payment_intents.retrieve",
                lambda: self._raw("get", f"/v1/payment_intents/{payment_intent_id}", {"expand": ["latest_charge"]}),
            )
        )

    async def create_payment_intent(self, params: dict[str, Any], idempotency_key: str | None = None) -> dict[str, Any]:
        """Create a PaymentIntent (https://docs.stripe.com/api/payment_intents/create); the browser or
        app confirms it with its `client_secret` (Stripe.js `confirmPayment` / `confirmCardPayment`)."""
        options: dict[str, Any] = {"idempotency_key": idempotency_key} if idempotency_key else {}
        return as_dict(
            await self._call(
                "payment_intents.create",
                lambda: self.client.v1.payment_intents.create_async(params=params, options=options),  # type: ignore[arg-type]
            )
        )

    def invoices_of(self, customer_id: str, max_pages: int = 1) -> AsyncIterator[dict[str, Any]]:
        """A customer's Invoices, newest first, with `payments` expanded
        (https://docs.stripe.com/api/invoices/list; `payments` links an invoice to its PaymentIntents)."""
        return self._list_all(
            "invoices.list",
            lambda p: self._raw("get", "/v1/invoices", p),
            {"customer": customer_id, "expand": ["data.payments"]},
            max_pages=max_pages,
        )

    async def retrieve_subscription(self, subscription_id: str) -> dict[str, Any]:
        """One Subscription, any status (https://docs.stripe.com/api/subscriptions/retrieve).

        Raises: StripeNotFound, StripeUnavailable, StripeRequestRejected.
        """
        return as_dict(
            await self._call("subscriptions.retrieve", lambda: self._raw("get", f"/v1/subscriptions/{subscription_id}"))
        )

    async def preview_with_subscription(self, customer_id: str, subscription_id: str) -> dict[str, Any]:
        """The subscription's next invoice as Stripe computes it now, with the Subscription itself expanded
        at `parent.subscription_details.subscription`: one request for both
        (https://docs.stripe.com/api/invoices/create_preview, https://docs.stripe.com/api/expanding_objects).

        Raises: StripeRequestRejected (e.g. the subscription will not be invoiced again), StripeNotFound,
        StripeUnavailable.
        """
        return as_dict(
            await self._call(
                "invoices.create_preview",
                lambda: self._raw(
                    "post",
                    "/v1/invoices/create_preview",
                    {
                        "customer": customer_id,
                        "subscription": subscription_id,
                        "expand": ["parent.subscription_details.subscription"],
                    },
                ),
            )
        )

    def invoice_payments(
        self, *, invoice_id: str | None = None, payment_intent_id: str | None = None
    ) -> AsyncIterator[dict[str, Any]]:
        """The payments of one Invoice, or the invoice payments of one PaymentIntent, each with its Invoice
        and its PaymentIntent (and that one's latest Charge) expanded: an invoice, what paid it and the
        card in one request (https://docs.stripe.com/api/invoice-payment/list; 4 levels of expansion,
        Stripe's maximum).
        """
        params: dict[str, Any] = {"expand": ["data.invoice", "data.payment.payment_intent.latest_charge"]}
        if invoice_id:
            params["invoice"] = invoice_id
        if payment_intent_id:
            params["payment"] = {"type": "payment_intent", "payment_intent": payment_intent_id}
        return self._list_all(
            "invoice_payments.list",
            lambda p: self._raw("get", "/v1/invoice_payments", p),
            params,
            max_pages=5,
        )

    async def withdraw_cancellation(self, subscription_id: str) -> dict[str, Any]:
        """Keep a subscription that was set to cancel at the end of its period: `cancel_at_period_end=false`
        (https://docs.stripe.com/api/subscriptions/update). Returns the updated Subscription.

        Raises: StripeNotFound, StripeRequestRejected (e.g. the subscription already ended), StripeUnavailable.
        """
        return as_dict(
            await self._call(
                "subscriptions.update",
                lambda: self.client.v1.subscriptions.update_async(
                    subscription_id, params={"cancel_at_period_end": False}
                ),
            )
        )

    async def preview_next_invoice(self, customer_id: str, subscription_id: str) -> dict[str, Any]:
        """The invoice Stripe would send at the subscription's next renewal, as Stripe computes it now
        (https://docs.stripe.com/api/invoices/create_preview): `amount_due` in minor units, `currency`,
        `next_payment_attempt` / `period_end` in Unix seconds.

        Raises: StripeNotFound, StripeRequestRejected (e.g. nothing will be invoiced), StripeUnavailable.
        """
        return as_dict(
            await self._call(
                "invoices.create_preview",
                lambda: self._raw(
                    "post", "/v1/invoices/create_preview", {"customer": customer_id, "subscription": subscription_id}
                ),
            )
        )

    # Catalogue — https://docs.stripe.com/api/products, https://docs.stripe.com/api/prices

    def products(self) -> AsyncIterator[dict[str, Any]]:
        """Every Product, active or not."""
        return self._list_all(
            "products.list",
            lambda p: self.client.v1.products.list_async(params=p),  # type: ignore[arg-type]
            {},
            max_pages=20,
        )

    def prices(self, **filters: Any) -> AsyncIterator[dict[str, Any]]:
        """Every Price matching `filters` (e.g. `product=`, `active=`, `lookup_keys=[...]`)."""
        return self._list_all(
            "prices.list",
            lambda p: self.client.v1.prices.list_async(params=p),  # type: ignore[arg-type]
            dict(filters),
            max_pages=50,
        )

    async def create_product(self, params: dict[str, Any]) -> dict[str, Any]:
        """https://docs.stripe.com/api/products/create"""
        return as_dict(
            await self._call("products.create", lambda: self.client.v1.products.create_async(params=params))  # type: ignore[arg-type]
        )

    async def update_product(self, product_id: str, params: dict[str, Any]) -> dict[str, Any]:
        """https://docs.stripe.com/api/products/update"""
        return as_dict(
            await self._call(
                "products.update",
                lambda: self.client.v1.products.update_async(product_id, params=params),  # type: ignore[arg-type]
            )
        )

    async def create_price(self, params: dict[str, Any]) -> dict[str, Any]:
        """https://docs.stripe.com/api/prices/create"""
        return as_dict(await self._call("prices.create", lambda: self.client.v1.prices.create_async(params=params)))  # type: ignore[arg-type]

    async def update_price(self, price_id: str, params: dict[str, Any]) -> dict[str, Any]:
        """https://docs.stripe.com/api/prices/update"""
        return as_dict(
            await self._call(
                "prices.update",
                lambda: self.client.v1.prices.update_async(price_id, params=params),  # type: ignore[arg-type]
            )
        )

    # Checkout — https://docs.stripe.com/api/checkout/sessions

    async def create_checkout_session(
        self, params: dict[str, Any], idempotency_key: str | None = None
    ) -> dict[str, Any]:
        """Create a Checkout Session (https://docs.stripe.com/api/checkout/sessions/create)."""
        options: dict[str, Any] = {"idempotency_key": idempotency_key} if idempotency_key else {}
        return as_dict(
            await self._call(
                "checkout.sessions.create",
                lambda: self.client.v1.checkout.sessions.create_async(params=params, options=options),  # type: ignore[arg-type]
            )
        )

    async def retrieve_checkout_session(self, session_id: str) -> dict[str, Any]:
        """https://docs.stripe.com/api/checkout/sessions/retrieve"""
        return as_dict(
            await self._call(
                "checkout.sessions.retrieve", lambda: self.client.v1.checkout.sessions.retrieve_async(session_id)
            )
        )

    # Customer Portal — https://docs.stripe.com/api/customer_portal

    async def create_portal_session(self, params: dict[str, Any]) -> dict[str, Any]:
        """https://docs.stripe.com/api/customer_portal/sessions/create"""
        return as_dict(
            await self._call(
                "billing_portal.sessions.create",
                lambda: self.client.v1.billing_portal.sessions.create_async(params=params),  # type: ignore[arg-type]
            )
        )

    def portal_configurations(self) -> AsyncIterator[dict[str, Any]]:
        """https://docs.stripe.com/api/customer_portal/configurations/list"""
        return self._list_all(
            "billing_portal.configurations.list",
            lambda p: self.client.v1.billing_portal.configurations.list_async(params=p),  # type: ignore[arg-type]
            {},
            max_pages=5,
        )

    async def create_portal_configuration(self, params: dict[str, Any]) -> dict[str, Any]:
        """https://docs.stripe.com/api/customer_portal/configurations/create"""
        return as_dict(
            await self._call(
                "billing_portal.configurations.create",
                lambda: self.client.v1.billing_portal.configurations.create_async(params=params),  # type: ignore[arg-type]
            )
        )

    async def update_portal_configuration(self, configuration_id: str, params: dict[str, Any]) -> dict[str, Any]:
        """https://docs.stripe.com/api/customer_portal/configurations/update"""
        return as_dict(
            await self._call(
                "billing_portal.configurations.update",
                lambda: self.client.v1.billing_portal.configurations.update_async(configuration_id, params=params),  # type: ignore[arg-type]
            )
        )

    # Entitlements — https://docs.stripe.com/api/entitlements

    def entitlement_features(self) -> AsyncIterator[dict[str, Any]]:
        """Every Feature, active or archived (https://docs.stripe.com/api/entitlements/feature/list)."""
        return self._list_all(
            "entitlements.features.list",
            lambda p: self.client.v1.entitlements.features.list_async(params=p),  # type: ignore[arg-type]
            {},
            max_pages=50,
        )

    async def create_entitlement_feature(self, params: dict[str, Any]) -> dict[str, Any]:
        """https://docs.stripe.com/api/entitlements/feature/create (`name`, `lookup_key`, `metadata`)."""
        return as_dict(
            await self._call(
                "entitlements.features.create",
                lambda: self.client.v1.entitlements.features.create_async(params=params),  # type: ignore[arg-type]
            )
        )

    async def update_entitlement_feature(self, feature_id: str, params: dict[str, Any]) -> dict[str, Any]:
        """https://docs.stripe.com/api/entitlements/feature/update (`name`, `active`, `metadata`)."""
        return as_dict(
            await self._call(
                "entitlements.features.update",
                lambda: self.client.v1.entitlements.features.update_async(feature_id, params=params),  # type: ignore[arg-type]
            )
        )

    def product_features(self, product_id: str) -> AsyncIterator[dict[str, Any]]:
        """The Features attached to a Product (https://docs.stripe.com/api/product-feature/list)."""
        return self._list_all(
            "products.features.list",
            lambda p: self.client.v1.products.features.list_async(product_id, params=p),  # type: ignore[arg-type]
            {},
            max_pages=20,
        )

    async def attach_product_feature(self, product_id: str, feature_id: str) -> dict[str, Any]:
        """Attach a Feature to a Product (https://docs.stripe.com/api/product-feature/attach)."""
        return as_dict(
            await self._call(
                "products.features.create",
                lambda: self.client.v1.products.features.create_async(
                    product_id, params={"entitlement_feature": feature_id}
                ),
            )
        )

    async def detach_product_feature(self, product_id: str, product_feature_id: str) -> dict[str, Any]:
        """Remove a Feature from a Product (https://docs.stripe.com/api/product-feature/detach)."""
        return as_dict(
            await self._call(
                "products.features.delete",
                lambda: self.client.v1.products.features.delete_async(product_id, product_feature_id),
            )
        )

    def active_entitlements(self, customer_id: str) -> AsyncIterator[dict[str, Any]]:
        """Every active entitlement of a customer, all pages (a summary event carries only 10)
        (https://docs.stripe.com/api/entitlements/active-entitlement/list)."""
        return self._list_all(
            "entitlements.active_entitlements.list",
            lambda p: self._raw("get", "/v1/entitlements/active_entitlements", p),
            {"customer": customer_id},
            max_pages=100,
        )

    async def retrieve_portal_configuration(self, configuration_id: str) -> dict[str, Any]:
        """https://docs.stripe.com/api/customer_portal/configurations/retrieve

        Raises:
            StripeNotFound: no such configuration.
        """
        return as_dict(
            await self._call(
                "billing_portal.configurations.retrieve",
                lambda: self.client.v1.billing_portal.configurations.retrieve_async(configuration_id),
            )
        )

    # Events — https://docs.stripe.com/api/events

    def events(self, **filters: Any) -> AsyncIterator[dict[str, Any]]:
        """Events matching `filters` (`type`, `types`, `created`, `delivery_success`), newest first."""
        return self._list_all(
            "events.list",
            lambda p: self.client.v1.events.list_async(params=p),  # type: ignore[arg-type]
            dict(filters),
            max_pages=30,
        )

    # Webhook endpoints — https://docs.stripe.com/api/webhook_endpoints

    def webhook_endpoints(self) -> AsyncIterator[dict[str, Any]]:
        """https://docs.stripe.com/api/webhook_endpoints/list (every endpoint of the account)."""
        return self._list_all(
            "webhook_endpoints.list",
            lambda p: self.client.v1.webhook_endpoints.list_async(params=p),  # type: ignore[arg-type]
            {},
            max_pages=5,
        )

    async def create_webhook_endpoint(self, url: str, enabled_events: list[str]) -> dict[str, Any]:
        """https://docs.stripe.com/api/webhook_endpoints/create, pinned to this app's `API_VERSION`.

        The response is the only time Stripe reveals the endpoint's signing `secret` (`whsec_…`).
        """
        params = {"url": url, "enabled_events": enabled_events, "api_version": API_VERSION}
        return as_dict(
            await self._call(
                "webhook_endpoints.create",
                lambda: self.client.v1.webhook_endpoints.create_async(params=params),  # type: ignore[arg-type]
            )
        )

    async def update_webhook_endpoint(self, endpoint_id: str, enabled_events: list[str]) -> dict[str, Any]:
        """https://docs.stripe.com/api/webhook_endpoints/update (the event types; the version cannot change)."""
        params = {"enabled_events": enabled_events}
        return as_dict(
            await self._call(
                "webhook_endpoints.update",
                lambda: self.client.v1.webhook_endpoints.update_async(endpoint_id, params=params),  # type: ignore[arg-type]
            )
        )

    # Webhooks — https://docs.stripe.com/webhooks#verify-manually

    def verify_webhook(self, payload: bytes, signature_header: str | None, now: float | None = None) -> dict[str, Any]:
        """Check `Stripe-Signature` against every configured secret and return the event as a dict.

        Accepts a timestamp at most 300 s old (Stripe's tolerance) and, unlike the SDK, at most
        300 s in the future, so a captured request cannot be replayed later.

        Raises:
            WebhookSignatureError: missing, malformed, stale or not matching any secret.
            WebhookPayloadError: signed, but the body is not a JSON object.
        """
        if not signature_header:
            raise WebhookSignatureError("missing Stripe-Signature header")
        now = time.time() if now is None else now
        try:
            timestamp = int(dict(part.split("=", 1) for part in signature_header.split(",") if "=" in part)["t"])
        except (KeyError, ValueError) as exc:
            raise WebhookSignatureError("malformed Stripe-Signature header") from exc
        if abs(now - timestamp) > WEBHOOK_TOLERANCE_SECONDS:
            raise WebhookSignatureError("timestamp outside the tolerance zone")
        text = payload.decode("utf-8", errors="replace")
        for secret in self.settings.webhook_secrets:
            try:
                stripe.WebhookSignature.verify_header(text, signature_header, secret, WEBHOOK_TOLERANCE_SECONDS)
            except stripe.SignatureVerificationError:
                continue
            try:
                event = json.loads(payload)
            except ValueError as exc:
                raise WebhookPayloadError("the body is not JSON") from exc
            if not isinstance(event, dict):
                raise WebhookPayloadError("the body is not a JSON object")
            return event
        raise WebhookSignatureError("no matching signature")
