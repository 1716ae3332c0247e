"""The `/v1` REST API: routing, authentication, expansion, pagination and idempotency.

https://docs.stripe.com/api/authentication, https://docs.stripe.com/api/expanding_objects,
https://docs.stripe.com/api/pagination, https://docs.stripe.com/api/idempotent_requests.
"""

from __future__ import annotations

import base64
import hashlib
import json
import re
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from .engine import as_bool, as_int
from .errors import StripeError, invalid, missing
from .forms import parse_form
from .params import check_unknown
from .sessions import StripeEmulator
from .store import API_VERSION, Obj, clone, new_id
from .webhooks import Dispatcher

Handler = Callable[..., Any]


@dataclass
class Route:
    method: str
    pattern: re.Pattern[str]
    handler: Handler
    params_type: str | None


ROUTES: list[Route] = []


def route(method: str, path: str, params_type: str | None = None) -> Callable[[Handler], Handler]:
    """Register a handler for `METHOD /v1/...`; `{name}` segments become keyword arguments."""
    regex = "^" + re.sub(r"\{(\w+)\}", r"(?P<\1>[^/]+)", path) + "$"

    def wrap(fn: Handler) -> Handler:
        ROUTES.append(Route(method, re.compile(regex), fn, params_type))
        return fn

    return wrap


@dataclass
class Response:
    """A JSON API answer."""

    status: int
    body: bytes
    headers: list[tuple[bytes, bytes]]


class Api:
    """Serves `/v1/...` requests against one emulator."""

    def __init__(self, emulator: StripeEmulator, dispatcher: Dispatcher) -> None:
        self.em = emulator
        self.dispatcher = dispatcher
        self.idempotency: OrderedDict[str, tuple[str, int, bytes]] = OrderedDict()
        self.resources: dict[str, Any] = {}
        """Resource modules composed over the same store (`entitlements`), registered by the app."""

    def handle(self, method: str, path: str, query: str, headers: dict[str, str], body: bytes) -> Response:
        """Answer one API request; errors become Stripe's error envelope."""
        request_id = new_id("req", 14)
        base_headers = [
            (b"content-type", b"application/json"),
            (b"stripe-version", API_VERSION.encode()),
            (b"request-id", request_id.encode()),
            (b"access-control-allow-origin", b"*"),
        ]
        idem_key = headers.get("idempotency-key")
        fingerprint = ""
        try:
            params = parse_form(query) if query else {}
            if body:
                params.update(parse_form(body))
            found = self._match(method, path)
            publishable = self._publishable_key(headers.get("authorization"), params)
            if publishable:
                params = self._client_secret_call(found, params)
            else:
                self._authenticate(headers.get("authorization"))
            if idem_key and method == "POST":
                fingerprint = hashlib.sha256(
                    f"{method} {path} {json.dumps(params, sort_keys=True)}".encode()
                ).hexdigest()
                cached = self.idempotency.get(idem_key)
                if cached is not None:
                    if cached[0] != fingerprint:
                        raise StripeError(
                            f"Keys for idempotent requests can only be used with the same parameters they were first "
                            f"used with. Try using a key other than '{idem_key}' if you meant to execute a "
                            "different request.",
                            type="idempotency_error",
                        )
                    return Response(
                        cached[1],
                        cached[2],
                        [*base_headers, (b"idempotent-replayed", b"true"), (b"idempotency-key", idem_key.encode())],
                    )
            r, groups = found
            check_unknown(params, r.params_type)
            self.em.request.id = request_id if method != "GET" else None
            self.em.request.idempotency_key = idem_key if method == "POST" else None
            try:
                result = r.handler(self, params, **groups)
            finally:
                self.em.request.id = None
                self.em.request.idempotency_key = None
            expand = params.get("expand") or []
            if isinstance(expand, str):
                expand = [expand]
            # A deleted object is the documented stub ({id, object, deleted}) whatever is asked to expand.
            if expand and not result.get("deleted"):
                result = clone(result)
                self.expand(result, list(expand))
            status, payload = 200, json.dumps(result).encode()
        except StripeError as err:
            status, payload = err.status, json.dumps(err.body()).encode()
        if idem_key and method == "POST" and status != 401:
            if fingerprint and idem_key not in self.idempotency and status < 500:
                self.idempotency[idem_key] = (fingerprint, status, payload)
                while len(self.idempotency) > 50000:
                    self.idempotency.popitem(last=False)
            base_headers.append((b"idempotency-key", idem_key.encode()))
        return Response(status, payload, base_headers)

    @staticmethod
    def _publishable_key(authorization: str | None, params: dict[str, Any]) -> str | None:
        """The `pk_test_…` key of a Stripe.js-style call (form field `key`, or `Authorization: Bearer pk_…`)."""
        scheme, _, credential = (authorization or "").partition(" ")
        key = credential.strip() if scheme.lower() == "bearer" else ""
        if not key.startswith("pk_"):
            key = str(params.get("key") or "")
        return key if key.startswith("pk_") else None

    def _client_secret_call(self, found: tuple[Route, dict[str, str]], params: dict[str, Any]) -> dict[str, Any]:
        """Check a publishable-key call the way Stripe does for Stripe.js: only retrieving or confirming
        a PaymentIntent, with its `client_secret`. Returns the params without Stripe.js's own fields.

        https://docs.stripe.com/api/payment_intents/confirm ("…with a publishable key, using the client_secret")
        """
        route, groups = found
        key = str(params.pop("key", "") or "")
        if key and not re.fullmatch(r"pk_test_[A-Za-z0-9_]+", key):
            raise StripeError(f"Invalid API Key provided: {key[:8]}****", status=401)
        if route.handler not in (_pi_get, _pi_confirm):
            raise StripeError(
                "This API call cannot be made with a publishable API key. Please use a secret API key.", status=401
            )
        secret = str(params.pop("client_secret", "") or "")
        pi = self.em.get(groups["pi"], "payment_intent")
        if secret != pi["client_secret"]:
            raise StripeError(
                "The client_secret provided does not match the client_secret associated with the PaymentIntent.",
                param="client_secret",
            )
        for stripe_js_only in ("use_stripe_sdk", "expected_payment_method_type", "_stripe_version"):
            params.pop(stripe_js_only, None)
        card = (params.pop("payment_method_data", None) or {}).get("card") or {}
        if card.get("token") and not params.get("payment_method"):
            params["payment_method"] = card["token"]
        return params

    def _authenticate(self, value: str | None) -> None:
        if not value:
            raise StripeError(
                "You did not provide an API key. You need to provide your API key in the Authorization header, using "
                "Bearer auth (e.g. 'Authorization: Bearer YOUR_SECRET_KEY'). See "
                "https://stripe.com/docs/api#authentication "
                "for details, or we can help at https://support.stripe.com/.",
                status=401,
            )
        scheme, _, credential = value.partition(" ")
        key = credential.strip()
        if scheme.lower() == "basic":
            try:
                key = base64.b64decode(key).decode().split(":", 1)[0]
            except ValueError:
                key = ""
        elif scheme.lower() != "bearer":
            key = ""
        if not re.fullmatch(r"(sk|rk)_test_[A-Za-z0-9_]+", key):
            shown = (key[:8] + "*" * 4 + key[-4:]) if len(key) > 12 else key
            raise StripeError(f"Invalid API Key provided: {shown}", status=401)

    def _match(self, method: str, path: str) -> tuple[Route, dict[str, str]]:
        for r in ROUTES:
            if r.method == method:
                m = r.pattern.match(path)
                if m:
                    return r, m.groupdict()
        raise StripeError(
            f"Unrecognized request URL ({method}: {path}). Please see https://stripe.com/docs or we can help at "
            "https://support.stripe.com/.",
            status=404,
        )

    # --- expansion ---------------------------------------------------------------------------
    def expand(self, obj: Any, paths: list[str]) -> None:
        """Replace ids by objects along each dotted path (`latest_invoice.payments`, `data.customer`)."""
        for path in paths:
            if not isinstance(path, str) or not path:
                continue
            parts = path.split(".")
            if len([p for p in parts if p != "data"]) > 4:
                raise invalid(f"You cannot expand more than 4 levels of a property. Property: {path}", "expand")
            self._expand(obj, parts, path)

    def _expand(self, obj: Any, parts: list[str], full: str) -> None:
        if isinstance(obj, list):
            for item in obj:
                self._expand(item, parts, full)
            return
        if not isinstance(obj, dict):
            return
        key, rest = parts[0], parts[1:]
        kind = obj.get("object")
        if kind == "checkout.session" and key == "line_items" and "line_items" not in obj:
            items = self.em.checkout_line_items(obj["id"])
            obj["line_items"] = {
                "object": "list",
                "data": clone(items),
                "has_more": False,
                "url": f"/v1/checkout/sessions/{obj['id']}/line_items",
            }
        elif kind == "invoice" and key == "payments" and "payments" not in obj and obj.get("id"):
            obj["payments"] = {
                "object": "list",
                "data": clone(self.em.invoice_payments(obj["id"])),
                "has_more": False,
                "url": f"/v1/invoice_payments?invoice={obj['id']}",
            }
        elif kind == "customer" and key == "subscriptions" and "subscriptions" not in obj:
            subs = [
                s
                for s in self.em.all("subscription")
                if s["customer"] == obj["id"] and s["status"] not in ("canceled", "incomplete_expired")
            ]
            obj["subscriptions"] = {
                "object": "list",
                "data": clone(subs),
                "has_more": False,
                "url": f"/v1/customers/{obj['id']}/subscriptions",
            }
        elif kind == "customer" and key == "sources" and "sources" not in obj:
            obj["sources"] = {
                "object": "list",
                "data": [],
                "has_more": False,
                "url": f"/v1/customers/{obj['id']}/sources",
            }
        elif kind == "customer" and key == "tax_ids" and "tax_ids" not in obj:
            obj["tax_ids"] = {
                "object": "list",
                "data": clone(self.em.tax_ids_of(obj["id"])),
                "has_more": False,
                "url": f"/v1/customers/{obj['id']}/tax_ids",
            }
        elif key not in obj:
            raise invalid(f"This property cannot be expanded ({full}).", "expand")
        value = obj[key]
        if isinstance(value, str) and key != "id":
            found = self.em.find(value)
            if found is None:
                raise invalid(f"This property cannot be expanded ({full}).", "expand")
            obj[key] = clone(found)
        if rest:
            self._expand(obj[key], rest, full)

    # --- lists -------------------------------------------------------------------------------
    def page(self, items: list[Obj], params: dict[str, Any], url: str) -> Obj:
        """One page of a newest-first list: `limit` (1–100, default 10), `starting_after`, `ending_before`."""
        limit = as_int(params.get("limit") or 10, "limit")
        if not 1 <= limit <= 100:
            raise invalid("Invalid limit: must be between 1 and 100", "limit")
        after, before = params.get("starting_after"), params.get("ending_before")
        ids = [i["id"] for i in items]
        if after:
            if after not in ids:
                self.em.get(after, None, "starting_after")
                raise invalid(f"Invalid starting_after: {after}", "starting_after")
            start = ids.index(after) + 1
            chunk = items[start : start + limit]
            has_more = start + limit < len(items)
        elif before:
            if before not in ids:
                self.em.get(before, None, "ending_before")
                raise invalid(f"Invalid ending_before: {before}", "ending_before")
            end = ids.index(before)
            chunk = items[max(0, end - limit) : end]
            has_more = end - limit > 0
        else:
            chunk = items[:limit]
            has_more = len(items) > limit
        return {"object": "list", "data": chunk, "has_more": has_more, "url": url}


def created_filter(params: dict[str, Any], key: str = "created") -> Callable[[Obj], bool]:
    """Stripe's range filters: `created=123` or `created[gte]=...&created[lt]=...`."""
    spec = params.get(key)
    if spec in (None, ""):
        return lambda _o: True
    if not isinstance(spec, dict):
        exact = as_int(spec, key)
        return lambda o: o.get(key) == exact
    bounds = {op: as_int(v, f"{key}[{op}]") for op, v in spec.items()}

    def ok(o: Obj) -> bool:
        value = o.get(key) or 0
        return all(
            {"gt": value > b, "gte": value >= b, "lt": value < b, "lte": value <= b}.get(op, True)
            for op, b in bounds.items()
        )

    return ok


def _eq(params: dict[str, Any], key: str, field: str | None = None) -> Callable[[Obj], bool]:
    value = params.get(key)
    if value in (None, ""):
        return lambda _o: True
    name = field or key
    return lambda o: o.get(name) == value


def _bool_filter(params: dict[str, Any], key: str) -> Callable[[Obj], bool]:
    if key not in params:
        return lambda _o: True
    wanted = as_bool(params[key], key)
    return lambda o: bool(o.get(key)) == wanted


def _filtered(items: list[Obj], *preds: Callable[[Obj], bool]) -> list[Obj]:
    return [i for i in items if all(p(i) for p in preds)]


# ================================================================ customers
@route("POST", "/v1/customers", "CustomerCreateParams")
def _customers_create(api: Api, p: dict[str, Any]) -> Obj:
    return api.em.create_customer(p)


@route("GET", "/v1/customers", "CustomerListParams")
def _customers_list(api: Api, p: dict[str, Any]) -> Obj:
    email = p.get("email")
    items = _filtered(
        api.em.all("customer"),
        created_filter(p),
        _eq(p, "test_clock"),
        (lambda c: (c.get("email") or "").lower() == email.lower()) if email else (lambda _c: True),
    )
    return api.page(items, p, "/v1/customers")


@route("GET", "/v1/customers/search", "CustomerSearchParams")
def _customers_search(api: Api, p: dict[str, Any]) -> Obj:
    query = p.get("query")
    if not query:
        raise missing("query")
    limit = as_int(p.get("limit") or 10, "limit")
    found = api.em.search_customers(query)
    return {
        "object": "search_result",
        "data": found[:limit],
        "has_more": len(found) > limit,
        "next_page": None,
        "url": "/v1/customers/search",
    }


def _search_route(kind: str, path: str, params_type: str) -> None:
    """`GET /v1/<resource>/search`, registered ahead of `/v1/<resource>/{id}`."""

    def handler(api: Api, p: dict[str, Any]) -> Obj:
        query = p.get("query")
        if not query:
            raise missing("query")
        limit = as_int(p.get("limit") or 10, "limit")
        found = api.em.search(kind, query)
        return {
            "object": "search_result",
            "data": found[:limit],
            "has_more": len(found) > limit,
            "next_page": None,
            "url": path,
        }

    ROUTES.insert(0, Route("GET", re.compile("^" + path + "$"), handler, params_type))


for _kind, _path, _params in (
    ("subscription", "/v1/subscriptions/search", "SubscriptionSearchParams"),
    ("price", "/v1/prices/search", "PriceSearchParams"),
    ("product", "/v1/products/search", "ProductSearchParams"),
    ("invoice", "/v1/invoices/search", "InvoiceSearchParams"),
    ("charge", "/v1/charges/search", "ChargeSearchParams"),
    ("payment_intent", "/v1/payment_intents/search", "PaymentIntentSearchParams"),
):
    _search_route(_kind, _path, _params)


@route("GET", "/v1/customers/{cid}", "CustomerRetrieveParams")
def _customers_get(api: Api, p: dict[str, Any], cid: str) -> Obj:
    if cid in api.em.deleted and cid.startswith("cus_"):
        return {"id": cid, "object": "customer", "deleted": True}
    return api.em.get(cid, "customer")


@route("POST", "/v1/customers/{cid}", "CustomerUpdateParams")
def _customers_update(api: Api, p: dict[str, Any], cid: str) -> Obj:
    return api.em.update_customer(cid, p)


@route("DELETE", "/v1/customers/{cid}", "CustomerDeleteParams")
def _customers_delete(api: Api, p: dict[str, Any], cid: str) -> Obj:
    return api.em.delete_customer(cid)


@route("GET", "/v1/customers/{cid}/payment_methods", "CustomerListPaymentMethodsParams")
def _customer_pms(api: Api, p: dict[str, Any], cid: str) -> Obj:
    api.em.get(cid, "customer")
    items = _filtered(api.em.all("payment_method"), lambda pm: pm["customer"] == cid, _eq(p, "type"))
    return api.page(items, p, f"/v1/customers/{cid}/payment_methods")


@route("GET", "/v1/customers/{cid}/tax_ids", "CustomerListTaxIdsParams")
def _customer_tax_ids(api: Api, p: dict[str, Any], cid: str) -> Obj:
    api.em.get(cid, "customer")
    return api.page(api.em.tax_ids_of(cid), p, f"/v1/customers/{cid}/tax_ids")


@route("POST", "/v1/customers/{cid}/tax_ids", "CustomerCreateTaxIdParams")
def _customer_tax_id_create(api: Api, p: dict[str, Any], cid: str) -> Obj:
    return api.em.create_tax_id(cid, p)


@route("DELETE", "/v1/customers/{cid}/tax_ids/{tid}", "CustomerDeleteTaxIdParams")
def _customer_tax_id_delete(api: Api, p: dict[str, Any], cid: str, tid: str) -> Obj:
    return api.em.delete_tax_id(cid, tid)


# ================================================================ products and prices
@route("POST", "/v1/products", "ProductCreateParams")
def _products_create(api: Api, p: dict[str, Any]) -> Obj:
    return api.em.create_product(p)


@route("GET", "/v1/products", "ProductListParams")
def _products_list(api: Api, p: dict[str, Any]) -> Obj:
    ids = p.get("ids")
    items = _filtered(
        api.em.all("product"),
        _bool_filter(p, "active"),
        created_filter(p),
        (lambda x: x["id"] in ids) if ids else (lambda _x: True),
    )
    return api.page(items, p, "/v1/products")


@route("GET", "/v1/products/{pid}", "ProductRetrieveParams")
def _products_get(api: Api, p: dict[str, Any], pid: str) -> Obj:
    return api.em.get(pid, "product")


@route("POST", "/v1/products/{pid}", "ProductUpdateParams")
def _products_update(api: Api, p: dict[str, Any], pid: str) -> Obj:
    return api.em.update_product(pid, p)


@route("DELETE", "/v1/products/{pid}", "ProductDeleteParams")
def _products_delete(api: Api, p: dict[str, Any], pid: str) -> Obj:
    return api.em.delete_product(pid)


@route("POST", "/v1/prices", "PriceCreateParams")
def _prices_create(api: Api, p: dict[str, Any]) -> Obj:
    return api.em.create_price(p)


@route("GET", "/v1/prices", "PriceListParams")
def _prices_list(api: Api, p: dict[str, Any]) -> Obj:
    keys = p.get("lookup_keys")
    if isinstance(keys, str):
        keys = [keys]
    rec: dict[str, Any] = p["recurring"] if isinstance(p.get("recurring"), dict) else {}
    items = _filtered(
        api.em.all("price"),
        _bool_filter(p, "active"),
        _eq(p, "product"),
        _eq(p, "type"),
        _eq(p, "currency"),
        created_filter(p),
        (lambda x: x["lookup_key"] in keys) if keys else (lambda _x: True),
        (lambda x: (x["recurring"] or {}).get("interval") == rec["interval"])
        if rec.get("interval")
        else (lambda _x: True),
    )
    return api.page(items, p, "/v1/prices")


@route("GET", "/v1/prices/{pid}", "PriceRetrieveParams")
def _prices_get(api: Api, p: dict[str, Any], pid: str) -> Obj:
    return api.em.get(pid, "price")


@route("POST", "/v1/prices/{pid}", "PriceUpdateParams")
def _prices_update(api: Api, p: dict[str, Any], pid: str) -> Obj:
    return api.em.update_price(pid, p)


# ================================================================ payment methods
@route("POST", "/v1/payment_methods", "PaymentMethodCreateParams")
def _pm_create(api: Api, p: dict[str, Any]) -> Obj:
    return api.em.create_payment_method(p)


@route("GET", "/v1/payment_methods", "PaymentMethodListParams")
def _pm_list(api: Api, p: dict[str, Any]) -> Obj:
    if p.get("customer"):
        api.em.get(p["customer"], "customer", "customer")
    items = _filtered(
        api.em.all("payment_method"), _eq(p, "customer"), _eq(p, "type"), (lambda pm: pm["customer"] is not None)
    )
    return api.page(items, p, "/v1/payment_methods")


@route("GET", "/v1/payment_methods/{pm}", "PaymentMethodRetrieveParams")
def _pm_get(api: Api, p: dict[str, Any], pm: str) -> Obj:
    return api.em.resolve_payment_method(pm, "payment_method")


@route("POST", "/v1/payment_methods/{pm}", "PaymentMethodUpdateParams")
def _pm_update(api: Api, p: dict[str, Any], pm: str) -> Obj:
    return api.em.update_payment_method(pm, p)


@route("POST", "/v1/payment_methods/{pm}/attach", "PaymentMethodAttachParams")
def _pm_attach(api: Api, p: dict[str, Any], pm: str) -> Obj:
    return api.em.attach_payment_method(pm, p)


@route("POST", "/v1/payment_methods/{pm}/detach", "PaymentMethodDetachParams")
def _pm_detach(api: Api, p: dict[str, Any], pm: str) -> Obj:
    return api.em.detach_payment_method(pm)


# ================================================================ subscriptions
@route("POST", "/v1/subscriptions", "SubscriptionCreateParams")
def _subs_create(api: Api, p: dict[str, Any]) -> Obj:
    return api.em.create_subscription(p)


@route("GET", "/v1/subscriptions", "SubscriptionListParams")
def _subs_list(api: Api, p: dict[str, Any]) -> Obj:
    status = p.get("status")
    price = p.get("price")

    def status_ok(s: Obj) -> bool:
        if status == "all":
            return True
        if status:
            return bool(
                s["status"] == status or (status == "ended" and s["status"] in ("canceled", "incomplete_expired"))
            )
        return s["status"] not in ("canceled", "incomplete_expired")

    items = _filtered(
        api.em.all("subscription"),
        _eq(p, "customer"),
        _eq(p, "test_clock"),
        created_filter(p),
        status_ok,
        (lambda s: any(si["price"]["id"] == price for si in s["items"]["data"])) if price else (lambda _s: True),
    )
    return api.page(items, p, "/v1/subscriptions")


@route("GET", "/v1/subscriptions/{sid}", "SubscriptionRetrieveParams")
def _subs_get(api: Api, p: dict[str, Any], sid: str) -> Obj:
    return api.em.get(sid, "subscription")


@route("POST", "/v1/subscriptions/{sid}", "SubscriptionUpdateParams")
def _subs_update(api: Api, p: dict[str, Any], sid: str) -> Obj:
    return api.em.update_subscription(sid, p)


@route("DELETE", "/v1/subscriptions/{sid}", "SubscriptionCancelParams")
def _subs_cancel(api: Api, p: dict[str, Any], sid: str) -> Obj:
    return api.em.cancel_subscription(sid, p)


@route("GET", "/v1/subscription_items", "SubscriptionItemListParams")
def _si_list(api: Api, p: dict[str, Any]) -> Obj:
    sub = api.em.get(p.get("subscription") or "", "subscription", "subscription") if p.get("subscription") else None
    if sub is None:
        raise missing("subscription")
    return api.page(list(sub["items"]["data"]), p, f"/v1/subscription_items?subscription={sub['id']}")


# ================================================================ invoices
@route("POST", "/v1/invoices", "InvoiceCreateParams")
def _inv_create(api: Api, p: dict[str, Any]) -> Obj:
    return api.em.create_invoice(p)


@route("POST", "/v1/invoices/create_preview", "InvoiceCreatePreviewParams")
def _inv_preview(api: Api, p: dict[str, Any]) -> Obj:
    return api.em.preview_invoice(p)


@route("GET", "/v1/invoices", "InvoiceListParams")
def _inv_list(api: Api, p: dict[str, Any]) -> Obj:
    sub = p.get("subscription")
    items = _filtered(
        api.em.all("invoice"),
        _eq(p, "customer"),
        _eq(p, "status"),
        _eq(p, "collection_method"),
        created_filter(p),
        (lambda i: ((i["parent"] or {}).get("subscription_details") or {}).get("subscription") == sub)
        if sub
        else (lambda _i: True),
    )
    return api.page(items, p, "/v1/invoices")


@route("GET", "/v1/invoices/{iid}", "InvoiceRetrieveParams")
def _inv_get(api: Api, p: dict[str, Any], iid: str) -> Obj:
    return api.em.get(iid, "invoice")


@route("GET", "/v1/invoices/{iid}/lines", "InvoiceListLinesParams")
def _inv_lines(api: Api, p: dict[str, Any], iid: str) -> Obj:
    inv = api.em.get(iid, "invoice")
    return api.page(list(inv["lines"]["data"]), p, f"/v1/invoices/{iid}/lines")


@route("POST", "/v1/invoices/{iid}/finalize", "InvoiceFinalizeInvoiceParams")
def _inv_finalize(api: Api, p: dict[str, Any], iid: str) -> Obj:
    return api.em.finalize_invoice(iid, p)


@route("POST", "/v1/invoices/{iid}/pay", "InvoicePayParams")
def _inv_pay(api: Api, p: dict[str, Any], iid: str) -> Obj:
    return api.em.pay_invoice(iid, p)


@route("POST", "/v1/invoices/{iid}/void", "InvoiceVoidInvoiceParams")
def _inv_void(api: Api, p: dict[str, Any], iid: str) -> Obj:
    return api.em.void_invoice(iid)


@route("GET", "/v1/invoice_payments", "InvoicePaymentListParams")
def _inv_payments(api: Api, p: dict[str, Any]) -> Obj:
    if p.get("invoice"):
        items = api.em.invoice_payments(p["invoice"])
    else:
        items = api.em.all("invoice_payment")
    payment: dict[str, Any] = p["payment"] if isinstance(p.get("payment"), dict) else {}
    if payment.get("payment_intent"):
        items = [i for i in items if (i.get("payment") or {}).get("payment_intent") == payment["payment_intent"]]
    if p.get("status"):
        items = [i for i in items if i.get("status") == p["status"]]
    return api.page(items, p, "/v1/invoice_payments")


@route("GET", "/v1/invoice_payments/{ipid}", "InvoicePaymentRetrieveParams")
def _inv_payment_get(api: Api, p: dict[str, Any], ipid: str) -> Obj:
    return api.em.get(ipid, "invoice_payment")


@route("POST", "/v1/invoiceitems", "InvoiceItemCreateParams")
def _ii_create(api: Api, p: dict[str, Any]) -> Obj:
    return api.em.create_invoice_item(p)


@route("GET", "/v1/invoiceitems", "InvoiceItemListParams")
def _ii_list(api: Api, p: dict[str, Any]) -> Obj:
    pending = p.get("pending")
    items = _filtered(
        api.em.all("invoiceitem"),
        _eq(p, "customer"),
        _eq(p, "invoice"),
        created_filter(p),
        (lambda i: (i["invoice"] is None) == as_bool(pending, "pending"))
        if pending not in (None, "")
        else (lambda _i: True),
    )
    return api.page(items, p, "/v1/invoiceitems")


@route("GET", "/v1/invoiceitems/{iiid}", "InvoiceItemRetrieveParams")
def _ii_get(api: Api, p: dict[str, Any], iiid: str) -> Obj:
    return api.em.get(iiid, "invoiceitem")


@route("DELETE", "/v1/invoiceitems/{iiid}", "InvoiceItemDeleteParams")
def _ii_delete(api: Api, p: dict[str, Any], iiid: str) -> Obj:
    return api.em.delete_invoice_item(iiid)


# ================================================================ payment intents, charges, refunds
@route("POST", "/v1/payment_intents", "PaymentIntentCreateParams")
def _pi_create(api: Api, p: dict[str, Any]) -> Obj:
    return api.em.create_payment_intent(p)


@route("GET", "/v1/payment_intents", "PaymentIntentListParams")
def _pi_list(api: Api, p: dict[str, Any]) -> Obj:
    return api.page(
        _filtered(api.em.all("payment_intent"), _eq(p, "customer"), created_filter(p)), p, "/v1/payment_intents"
    )


@route("GET", "/v1/payment_intents/{pi}", "PaymentIntentRetrieveParams")
def _pi_get(api: Api, p: dict[str, Any], pi: str) -> Obj:
    return api.em.get(pi, "payment_intent")


@route("POST", "/v1/payment_intents/{pi}/confirm", "PaymentIntentConfirmParams")
def _pi_confirm(api: Api, p: dict[str, Any], pi: str) -> Obj:
    return api.em.confirm_payment_intent(pi, p)


@route("GET", "/v1/charges", "ChargeListParams")
def _ch_list(api: Api, p: dict[str, Any]) -> Obj:
    return api.page(
        _filtered(api.em.all("charge"), _eq(p, "customer"), _eq(p, "payment_intent"), created_filter(p)),
        p,
        "/v1/charges",
    )


@route("GET", "/v1/charges/{ch}", "ChargeRetrieveParams")
def _ch_get(api: Api, p: dict[str, Any], ch: str) -> Obj:
    return api.em.get(ch, "charge")


@route("POST", "/v1/refunds", "RefundCreateParams")
def _re_create(api: Api, p: dict[str, Any]) -> Obj:
    return api.em.create_refund(p)


@route("GET", "/v1/refunds", "RefundListParams")
def _re_list(api: Api, p: dict[str, Any]) -> Obj:
    return api.page(
        _filtered(api.em.all("refund"), _eq(p, "charge"), _eq(p, "payment_intent"), created_filter(p)), p, "/v1/refunds"
    )


@route("GET", "/v1/refunds/{re}", "RefundRetrieveParams")
def _re_get(api: Api, p: dict[str, Any], re: str) -> Obj:
    return api.em.get(re, "refund")


@route("GET", "/v1/setup_intents/{seti}", "SetupIntentRetrieveParams")
def _seti_get(api: Api, p: dict[str, Any], seti: str) -> Obj:
    return api.em.get(seti, "setup_intent")


# ================================================================ checkout
@route("POST", "/v1/checkout/sessions", "checkout.SessionCreateParams")
def _cs_create(api: Api, p: dict[str, Any]) -> Obj:
    return api.em.create_checkout_session(p)


@route("GET", "/v1/checkout/sessions", "checkout.SessionListParams")
def _cs_list(api: Api, p: dict[str, Any]) -> Obj:
    items = _filtered(
        api.em.all("checkout.session"),
        _eq(p, "customer"),
        _eq(p, "subscription"),
        _eq(p, "payment_intent"),
        _eq(p, "status"),
        created_filter(p),
    )
    return api.page(items, p, "/v1/checkout/sessions")


@route("GET", "/v1/checkout/sessions/{cs}", "checkout.SessionRetrieveParams")
def _cs_get(api: Api, p: dict[str, Any], cs: str) -> Obj:
    return api.em.get(cs, "checkout.session")


@route("GET", "/v1/checkout/sessions/{cs}/line_items", "checkout.SessionListLineItemsParams")
def _cs_lines(api: Api, p: dict[str, Any], cs: str) -> Obj:
    return api.page(api.em.checkout_line_items(cs), p, f"/v1/checkout/sessions/{cs}/line_items")


@route("POST", "/v1/checkout/sessions/{cs}/expire", "checkout.SessionExpireParams")
def _cs_expire(api: Api, p: dict[str, Any], cs: str) -> Obj:
    return api.em.expire_checkout_session(cs)


# ================================================================ billing portal
@route("POST", "/v1/billing_portal/sessions", "billing_portal.SessionCreateParams")
def _bps_create(api: Api, p: dict[str, Any]) -> Obj:
    return api.em.create_portal_session(p)


@route("POST", "/v1/billing_portal/configurations", "billing_portal.ConfigurationCreateParams")
def _bpc_create(api: Api, p: dict[str, Any]) -> Obj:
    return api.em.create_portal_configuration(p)


@route("GET", "/v1/billing_portal/configurations", "billing_portal.ConfigurationListParams")
def _bpc_list(api: Api, p: dict[str, Any]) -> Obj:
    items = _filtered(
        api.em.all("billing_portal.configuration"), _bool_filter(p, "active"), _bool_filter(p, "is_default")
    )
    return api.page(items, p, "/v1/billing_portal/configurations")


@route("GET", "/v1/billing_portal/configurations/{bpc}", "billing_portal.ConfigurationRetrieveParams")
def _bpc_get(api: Api, p: dict[str, Any], bpc: str) -> Obj:
    return api.em.get(bpc, "billing_portal.configuration")


@route("POST", "/v1/billing_portal/configurations/{bpc}", "billing_portal.ConfigurationUpdateParams")
def _bpc_update(api: Api, p: dict[str, Any], bpc: str) -> Obj:
    return api.em.update_portal_configuration(bpc, p)


# ================================================================ events and webhook endpoints
@route("GET", "/v1/events", "EventListParams")
def _events_list(api: Api, p: dict[str, Any]) -> Obj:
    types = p.get("types")
    if isinstance(types, str):
        types = [types]
    one = p.get("type")

    def type_ok(e: Obj) -> bool:
        if one:
            return bool(e["type"] == one or (one.endswith("*") and e["type"].startswith(one[:-1])))
        if types:
            return e["type"] in types
        return True

    preds = [type_ok, created_filter(p)]
    if "delivery_success" in p:
        wanted = as_bool(p["delivery_success"], "delivery_success")
        preds.append(lambda e: api.dispatcher.delivery_success(e["id"]) is wanted)
    return api.page(_filtered(api.em.all("event"), *preds), p, "/v1/events")


@route("GET", "/v1/events/{evt}", "EventRetrieveParams")
def _events_get(api: Api, p: dict[str, Any], evt: str) -> Obj:
    return api.em.get(evt, "event")


@route("POST", "/v1/webhook_endpoints", "WebhookEndpointCreateParams")
def _we_create(api: Api, p: dict[str, Any]) -> Obj:
    return api.em.create_webhook_endpoint(p)


@route("GET", "/v1/webhook_endpoints", "WebhookEndpointListParams")
def _we_list(api: Api, p: dict[str, Any]) -> Obj:
    return api.page(api.em.all("webhook_endpoint"), p, "/v1/webhook_endpoints")


@route("GET", "/v1/webhook_endpoints/{we}", "WebhookEndpointRetrieveParams")
def _we_get(api: Api, p: dict[str, Any], we: str) -> Obj:
    return api.em.get(we, "webhook_endpoint")


@route("POST", "/v1/webhook_endpoints/{we}", "WebhookEndpointUpdateParams")
def _we_update(api: Api, p: dict[str, Any], we: str) -> Obj:
    return api.em.update_webhook_endpoint(we, p)


@route("DELETE", "/v1/webhook_endpoints/{we}", "WebhookEndpointDeleteParams")
def _we_delete(api: Api, p: dict[str, Any], we: str) -> Obj:
    api.em.get(we, "webhook_endpoint")
    api.em.remove(we)
    return {"id": we, "object": "webhook_endpoint", "deleted": True}


# ================================================================ test clocks
@route("POST", "/v1/test_helpers/test_clocks", "test_helpers.TestClockCreateParams")
def _clock_create(api: Api, p: dict[str, Any]) -> Obj:
    return api.em.create_test_clock(p)


@route("GET", "/v1/test_helpers/test_clocks", "test_helpers.TestClockListParams")
def _clock_list(api: Api, p: dict[str, Any]) -> Obj:
    return api.page(api.em.all("test_helpers.test_clock"), p, "/v1/test_helpers/test_clocks")


@route("GET", "/v1/test_helpers/test_clocks/{clock}", "test_helpers.TestClockRetrieveParams")
def _clock_get(api: Api, p: dict[str, Any], clock: str) -> Obj:
    return api.em.get(clock, "test_helpers.test_clock")


@route("POST", "/v1/test_helpers/test_clocks/{clock}/advance", "test_helpers.TestClockAdvanceParams")
def _clock_advance(api: Api, p: dict[str, Any], clock: str) -> Obj:
    return api.em.advance_test_clock(clock, p)


@route("DELETE", "/v1/test_helpers/test_clocks/{clock}", "test_helpers.TestClockDeleteParams")
def _clock_delete(api: Api, p: dict[str, Any], clock: str) -> Obj:
    return api.em.delete_test_clock(clock)
