"""Stripe's behaviour: the resources, payments, renewals and dunning of the emulator.

Every public method follows one Stripe API operation (named in its docstring) and takes the decoded
form parameters (strings, nested dicts and lists) as Stripe receives them.
"""

from __future__ import annotations

import calendar
import copy
import re
from datetime import UTC, datetime
from typing import Any

from . import objects as o
from .cards import CARDS, DECLINE_MESSAGES, TOKENS, TestCard, card_for_number
from .config import EmulatorConfig
from .errors import StripeError, invalid, missing, not_found
from .store import Obj, Store, diff, new_id

ACTIVE_STATUSES = ("active", "trialing", "past_due")
LIVE_STATUSES = ("active", "trialing", "past_due", "unpaid", "incomplete", "paused")


# --- parameter coercion ----------------------------------------------------------------------
def as_int(value: Any, param: str) -> int:
    """Stripe's integer parameter, or 400 `parameter_invalid_integer`."""
    try:
        return int(value)
    except (TypeError, ValueError):
        raise StripeError(f"Invalid integer: {value}", code="parameter_invalid_integer", param=param) from None


def as_bool(value: Any, param: str) -> bool:
    """Stripe's boolean parameter ("true"/"false")."""
    if isinstance(value, bool):
        return value
    if str(value).lower() in ("true", "1"):
        return True
    if str(value).lower() in ("false", "0", ""):
        return False
    raise StripeError(f"Invalid boolean: {value}", code="parameter_invalid_boolean", param=param)


def opt_int(params: dict[str, Any], key: str) -> int | None:
    """An optional integer parameter; "" means unset."""
    value = params.get(key)
    return None if value in (None, "") else as_int(value, key)


def require(params: dict[str, Any], key: str) -> Any:
    """A required parameter, or 400 `parameter_missing`."""
    value = params.get(key)
    if value is None or value == "":
        raise missing(key)
    return value


def apply_metadata(obj: Obj, value: Any) -> None:
    """Metadata updates: "" clears everything; a key set to "" is removed (https://docs.stripe.com/api/metadata)."""
    if value is None:
        return
    if value == "":
        obj["metadata"] = {}
        return
    if not isinstance(value, dict):
        raise invalid("Invalid hash", "metadata")
    meta = dict(obj.get("metadata") or {})
    for k, v in value.items():
        if v == "":
            meta.pop(k, None)
        else:
            meta[k] = str(v)
    obj["metadata"] = meta


def add_interval(ts: int, interval: str, count: int, anchor_day: int | None = None) -> int:
    """`ts` plus `count` intervals (day/week/month/year), clamping month ends like Stripe."""
    if interval == "day":
        return ts + 86400 * count
    if interval == "week":
        return ts + 7 * 86400 * count
    dt = datetime.fromtimestamp(ts, UTC)
    months = count * (12 if interval == "year" else 1)
    month_index = dt.month - 1 + months
    year, month = dt.year + month_index // 12, month_index % 12 + 1
    day = min(anchor_day or dt.day, calendar.monthrange(year, month)[1])
    return int(dt.replace(year=year, month=month, day=day).timestamp())


def money(amount: int, currency: str, locale: str = "en_US") -> str:
    """Amount in minor units → "$12.00" (Babel, en_US; "12,00 $" with `locale="de"`)."""
    from babel.numbers import format_currency

    zero_decimal = currency.lower() in {
        "jpy",
        "krw",
        "vnd",
        "clp",
        "xaf",
        "xof",
        "bif",
        "djf",
        "gnf",
        "kmf",
        "mga",
        "pyg",
        "rwf",
        "ugx",
        "vuv",
        "xpf",
    }
    value = amount if zero_decimal else amount / 100
    return str(format_currency(value, currency.upper(), locale=locale))


class Emulator(Store):
    """The emulator's state and Stripe's rules for changing it."""

    def __init__(self, config: EmulatorConfig) -> None:
        super().__init__()
        self.config = config

    @property
    def base_url(self) -> str:
        return self.config.base_url

    # ============================================================ customers
    def create_customer(self, params: dict[str, Any]) -> Obj:
        """https://docs.stripe.com/api/customers/create

        `payment_method` is attached first, so `invoice_settings[default_payment_method]` may name the same
        test id (`pm_card_visa`), as Stripe's own examples do.
        """
        clock_id = params.get("test_clock")
        created = self.now()
        if clock_id:
            created = int(self.get(clock_id, "test_helpers.test_clock", "test_clock")["frozen_time"])
        cust = o.customer(new_id("cus", 14), created)
        cust["test_clock"] = clock_id or None
        pm_id = params.get("payment_method")
        settings = params.get("invoice_settings")
        deferred_default = None
        if (
            isinstance(settings, dict)
            and settings.get("default_payment_method")
            and (settings["default_payment_method"] == pm_id or settings["default_payment_method"] not in self.objects)
        ):
            settings = dict(settings)
            deferred_default = settings.pop("default_payment_method")
            params = {**params, "invoice_settings": settings}
        if pm_id and pm_id not in TOKENS:
            self.get(pm_id, "payment_method", "payment_method")
        self._apply_customer_fields(cust, params)
        self.put(cust)
        self.emit("customer.created", cust)
        if pm_id:
            pm = self.attach_payment_method(pm_id, {"customer": cust["id"]})
            if deferred_default == pm_id:
                deferred_default = pm["id"]
        if deferred_default:
            self.update_customer(cust["id"], {"invoice_settings": {"default_payment_method": deferred_default}})
        for item in params.get("tax_id_data") or []:
            self.create_tax_id(cust["id"], item)
        return cust

    def _apply_customer_fields(self, cust: Obj, params: dict[str, Any]) -> None:
        for key in ("email", "name", "description", "phone"):
            if key in params:
                cust[key] = params[key] or None
        if "address" in params:
            cust["address"] = o.address(params["address"]) if params["address"] else None
        if "shipping" in params:
            ship = params["shipping"]
            cust["shipping"] = (
                {"address": o.address(ship.get("address")), "name": ship.get("name"), "phone": ship.get("phone")}
                if ship
                else None
            )
        if "preferred_locales" in params:
            cust["preferred_locales"] = list(params["preferred_locales"] or [])
        if "tax_exempt" in params:
            cust["tax_exempt"] = params["tax_exempt"] or "none"
        if "invoice_prefix" in params:
            cust["invoice_prefix"] = params["invoice_prefix"]
        apply_metadata(cust, params.get("metadata"))
        settings = params.get("invoice_settings")
        if isinstance(settings, dict):
            if "default_payment_method" in settings:
                pm_id = settings["default_payment_method"] or None
                if pm_id:
                    pm = self.get(pm_id, "payment_method", "invoice_settings[default_payment_method]")
                    if pm["customer"] != cust["id"]:
                        raise invalid(
                            f"The customer does not have a payment method with the ID {pm_id}. The payment "
                            "method must be attached to the customer.",
                            "invoice_settings[default_payment_method]",
                            "resource_missing",
                        )
                cust["invoice_settings"]["default_payment_method"] = pm_id
            if "footer" in settings:
                cust["invoice_settings"]["footer"] = settings["footer"] or None
            if "custom_fields" in settings:
                cust["invoice_settings"]["custom_fields"] = settings["custom_fields"] or None

    def update_customer(self, cid: str, params: dict[str, Any]) -> Obj:
        """https://docs.stripe.com/api/customers/update"""
        cust = self.get(cid, "customer")
        with self.updating(cust, "customer.updated"):
            self._apply_customer_fields(cust, params)
        return cust

    def delete_customer(self, cid: str) -> Obj:
        """https://docs.stripe.com/api/customers/delete (also cancels the customer's subscriptions)."""
        cust = self.get(cid, "customer")
        for sub in self.all("subscription"):
            if sub["customer"] == cid and sub["status"] not in ("canceled", "incomplete_expired"):
                self.cancel_subscription(sub["id"], {})
        self.remove(cid)
        self.emit("customer.deleted", cust)
        return {"id": cid, "object": "customer", "deleted": True}

    def search_customers(self, query: str) -> list[Obj]:
        """https://docs.stripe.com/api/customers/search with `field:'value'` clauses joined by AND/OR."""
        return self.search("customer", query)

    def search(self, kind: str, query: str) -> list[Obj]:
        """Search objects of one type, newest first (https://docs.stripe.com/search#search-query-language)."""
        return [obj for obj in self.all(kind) if _match_query(obj, query)]

    # ============================================================ tax ids
    def create_tax_id(self, cid: str, params: dict[str, Any]) -> Obj:
        """https://docs.stripe.com/api/tax_ids/create"""
        cust = self.get(cid, "customer")
        tid = o.tax_id(new_id("txi", 14), self.now(), cust["id"], require(params, "type"), require(params, "value"))
        self.put(tid)
        self.emit("customer.tax_id.created", tid)
        return tid

    def delete_tax_id(self, cid: str, txid: str) -> Obj:
        """https://docs.stripe.com/api/tax_ids/delete"""
        tid = self.get(txid, "tax_id")
        if tid["customer"] != cid:
            raise not_found("tax_id", txid)
        self.remove(txid)
        self.emit("customer.tax_id.deleted", tid)
        return {"id": txid, "object": "tax_id", "deleted": True}

    def tax_ids_of(self, cid: str) -> list[Obj]:
        """The customer's tax ids, newest first."""
        return [t for t in self.all("tax_id") if t["customer"] == cid]

    # ============================================================ products and prices
    def create_product(self, params: dict[str, Any]) -> Obj:
        """https://docs.stripe.com/api/products/create"""
        name = require(params, "name")
        pid = params.get("id") or new_id("prod", 14)
        if pid in self.objects:
            raise invalid("Product already exists.", "id", "resource_already_exists")
        prod = o.product(pid, self.now())
        prod["name"] = name
        self._apply_product_fields(prod, params)
        self.put(prod)
        self.emit("product.created", prod)
        dpd = params.get("default_price_data")
        if isinstance(dpd, dict):
            p = self.create_price({**dpd, "product": pid})
            with self.updating(prod, "product.updated"):
                prod["default_price"] = p["id"]
        return prod

    def _apply_product_fields(self, prod: Obj, params: dict[str, Any]) -> None:
        for key in ("name", "description", "statement_descriptor", "unit_label", "url", "tax_code"):
            if key in params:
                prod[key] = params[key] or None
        if "active" in params:
            prod["active"] = as_bool(params["active"], "active")
        if "images" in params:
            prod["images"] = list(params["images"] or [])
        if "marketing_features" in params:
            prod["marketing_features"] = [{"name": f.get("name")} for f in params["marketing_features"] or []]
        if "default_price" in params:
            prod["default_price"] = params["default_price"] or None
        apply_metadata(prod, params.get("metadata"))

    def update_product(self, pid: str, params: dict[str, Any]) -> Obj:
        """https://docs.stripe.com/api/products/update"""
        prod = self.get(pid, "product")
        with self.updating(prod, "product.updated"):
            self._apply_product_fields(prod, params)
            prod["updated"] = self.now()
        return prod

    def delete_product(self, pid: str) -> Obj:
        """https://docs.stripe.com/api/products/delete (refused while the product has prices, like Stripe)."""
        prod = self.get(pid, "product")
        if any(p["product"] == pid for p in self.all("price")):
            raise invalid("This product cannot be deleted because it has one or more user-created prices.")
        self.remove(pid)
        self.emit("product.deleted", prod)
        return {"id": pid, "object": "product", "deleted": True}

    def create_price(self, params: dict[str, Any]) -> Obj:
        """https://docs.stripe.com/api/prices/create"""
        currency = str(require(params, "currency")).lower()
        pdata = params.get("product_data")
        if params.get("product"):
            prod = self.get(params["product"], "product", "product")
        elif isinstance(pdata, dict):
            prod = self.create_product(pdata)
        else:
            raise missing("product")
        p = o.price(new_id("price"), self.now())
        p["currency"] = currency
        p["product"] = prod["id"]
        amount = params.get("unit_amount")
        if amount in (None, "") and params.get("unit_amount_decimal") not in (None, ""):
            amount = int(float(params["unit_amount_decimal"]))
        if amount in (None, ""):
            raise missing("unit_amount")
        p["unit_amount"] = as_int(amount, "unit_amount")
        p["unit_amount_decimal"] = str(p["unit_amount"])
        rec = params.get("recurring")
        if isinstance(rec, dict):
            interval = require(rec, "interval")
            if interval not in ("day", "week", "month", "year"):
                raise invalid(
                    "Invalid recurring[interval]: must be one of day, week, month, or year", "recurring[interval]"
                )
            p["recurring"] = o.recurring(
                interval,
                as_int(rec.get("interval_count") or 1, "recurring[interval_count]"),
                opt_int(rec, "trial_period_days"),
            )
            p["type"] = "recurring"
        for key in ("nickname", "tax_behavior"):
            if key in params:
                p[key] = params[key] or p[key]
        if "active" in params:
            p["active"] = as_bool(params["active"], "active")
        apply_metadata(p, params.get("metadata"))
        self._set_lookup_key(p, params)
        self.put(p)
        self.emit("price.created", p)
        return p

    def _set_lookup_key(self, p: Obj, params: dict[str, Any]) -> None:
        if "lookup_key" not in params:
            return
        key = params["lookup_key"] or None
        if key:
            holder = next((q for q in self.all("price") if q["lookup_key"] == key and q["id"] != p["id"]), None)
            if holder is not None:
                if not as_bool(params.get("transfer_lookup_key", False), "transfer_lookup_key"):
                    raise invalid(f"A price (`{holder['id']}`) already uses that lookup key.", "lookup_key")
                with self.updating(holder, "price.updated"):
                    holder["lookup_key"] = None
        p["lookup_key"] = key

    def update_price(self, pid: str, params: dict[str, Any]) -> Obj:
        """https://docs.stripe.com/api/prices/update"""
        p = self.get(pid, "price")
        with self.updating(p, "price.updated"):
            if "active" in params:
                p["active"] = as_bool(params["active"], "active")
            if "nickname" in params:
                p["nickname"] = params["nickname"] or None
            if "tax_behavior" in params:
                p["tax_behavior"] = params["tax_behavior"]
            apply_metadata(p, params.get("metadata"))
            self._set_lookup_key(p, params)
        for sub in self.all("subscription"):
            for item in sub["items"]["data"]:
                if item["price"]["id"] == pid:
                    item["price"] = copy.deepcopy(p)
                    item["plan"] = o.plan_from_price(p)
        return p

    # ============================================================ payment methods
    def _new_payment_method(self, card: TestCard, exp_month: int, exp_year: int, details: Obj) -> Obj:
        pm = o.payment_method(
            new_id("pm"),
            self.now(),
            o.card_details(card.brand, card.last4, exp_month, exp_year, card.funding, card.country),
            details,
        )
        self.put(pm)
        self.side(pm["id"])["card"] = card.number
        return pm

    def card_of(self, pm: Obj) -> TestCard:
        """The test card behind a PaymentMethod."""
        number = self.side(pm["id"]).get("card", "4242424242424242")
        return CARDS.get(number) or card_for_number(number) or CARDS["4242424242424242"]

    def create_payment_method(self, params: dict[str, Any]) -> Obj:
        """https://docs.stripe.com/api/payment_methods/create (type `card`; raw test numbers or `tok_*`)."""
        if params.get("type", "card") != "card":
            raise invalid("The emulator only supports card PaymentMethods.", "type")
        card_params = params.get("card") or {}
        if not isinstance(card_params, dict):
            raise invalid("Invalid card", "card")
        number = str(card_params.get("number") or TOKENS.get(str(card_params.get("token")), "") or "")
        card = card_for_number(number) if number else None
        if card is None:
            raise StripeError(
                "Your card number is incorrect.",
                status=402,
                type="card_error",
                code="incorrect_number",
                param="card[number]",
            )
        bd = params.get("billing_details") or {}
        pm = self._new_payment_method(
            card,
            as_int(card_params.get("exp_month") or 12, "card[exp_month]"),
            as_int(card_params.get("exp_year") or datetime.now(UTC).year + 3, "card[exp_year]"),
            o.billing_details(bd.get("email"), bd.get("name"), bd.get("address")),
        )
        apply_metadata(pm, params.get("metadata"))
        return pm

    def payment_method_from_card(
        self, number: str, exp_month: int, exp_year: int, name: str | None, email: str | None
    ) -> Obj:
        """A PaymentMethod for a card typed on a hosted page; 402 `incorrect_number` for invalid numbers."""
        card = card_for_number(number)
        if card is None:
            raise StripeError(
                "Your card number is invalid.", status=402, type="card_error", code="incorrect_number", param="number"
            )
        return self._new_payment_method(card, exp_month, exp_year, o.billing_details(email, name))

    def resolve_payment_method(self, pm_id: str, param: str = "payment_method") -> Obj:
        """A stored PaymentMethod, or a fresh one for a test id such as `pm_card_visa`."""
        if pm_id in TOKENS:
            card = CARDS[TOKENS[pm_id]]
            return self._new_payment_method(card, 12, datetime.now(UTC).year + 3, o.billing_details())
        return self.get(pm_id, "payment_method", param)

    def attach_payment_method(self, pm_id: str, params: dict[str, Any]) -> Obj:
        """https://docs.stripe.com/api/payment_methods/attach (declining test cards fail, like Stripe)."""
        cid = require(params, "customer")
        cust = self.get(cid, "customer", "customer")
        pm = self.resolve_payment_method(pm_id)
        if pm["customer"] == cust["id"]:
            return pm
        if pm["customer"]:
            raise invalid("The payment method you provided has already been attached to a customer.", "payment_method")
        card = self.card_of(pm)
        if card.behaviour == "decline":
            raise self.card_error(card, None)
        with self.updating(pm, None):
            pm["customer"] = cust["id"]
        self.emit("payment_method.attached", pm)
        return pm

    def detach_payment_method(self, pm_id: str) -> Obj:
        """https://docs.stripe.com/api/payment_methods/detach"""
        pm = self.get(pm_id, "payment_method")
        cid = pm["customer"]
        if not cid:
            raise invalid(f"The payment method {pm_id} is not attached to a customer.", "payment_method")
        prev = copy.deepcopy(pm)
        pm["customer"] = None
        self.emit("payment_method.detached", pm, {"customer": prev["customer"]})
        cust = self.find(cid)
        if cust and cust["invoice_settings"]["default_payment_method"] == pm_id:
            with self.updating(cust, "customer.updated"):
                cust["invoice_settings"]["default_payment_method"] = None
        for sub in self.all("subscription"):
            if sub["default_payment_method"] == pm_id:
                with self.updating(sub, "customer.subscription.updated"):
                    sub["default_payment_method"] = None
        return pm

    def update_payment_method(self, pm_id: str, params: dict[str, Any]) -> Obj:
        """https://docs.stripe.com/api/payment_methods/update"""
        pm = self.get(pm_id, "payment_method")
        with self.updating(pm, "payment_method.updated"):
            bd = params.get("billing_details")
            if isinstance(bd, dict):
                for key in ("email", "name", "phone"):
                    if key in bd:
                        pm["billing_details"][key] = bd[key] or None
                if "address" in bd:
                    pm["billing_details"]["address"] = o.address(bd["address"])
            card = params.get("card")
            if isinstance(card, dict):
                for key in ("exp_month", "exp_year"):
                    if key in card:
                        pm["card"][key] = as_int(card[key], f"card[{key}]")
            apply_metadata(pm, params.get("metadata"))
        return pm

    def card_error(self, card: TestCard, charge_id: str | None, pm_id: str | None = None) -> StripeError:
        """Stripe's 402 `card_error` for a declined test card."""
        code = "expired_card" if card.decline_code == "expired_card" else "card_declined"
        decline = card.decline_code or "generic_decline"
        extra: dict[str, Any] = {"decline_code": decline}
        if charge_id:
            extra["charge"] = charge_id
        return StripeError(
            DECLINE_MESSAGES.get(decline, "Your card was declined."), status=402, type="card_error", code=code, **extra
        )

    def set_default_payment_method(self, cid: str, pm_id: str, subscriptions: bool = True) -> None:
        """Make a PaymentMethod the customer's default (and each live subscription's), as the portal does."""
        cust = self.get(cid, "customer")
        with self.updating(cust, "customer.updated"):
            cust["invoice_settings"]["default_payment_method"] = pm_id
        if subscriptions:
            for sub in self.all("subscription"):
                if sub["customer"] == cid and sub["status"] in LIVE_STATUSES and sub["default_payment_method"] != pm_id:
                    with self.updating(sub, "customer.subscription.updated"):
                        sub["default_payment_method"] = pm_id

    # ============================================================ charges and payment intents
    def _charge(self, pi: Obj, pm: Obj) -> tuple[Obj, StripeError | None]:
        """Charge a card for a PaymentIntent; the test card decides the outcome."""
        card = self.card_of(pm)
        created = self.now()
        ch = o.charge(new_id("ch"), created, pi["amount"], pi["currency"])
        ch.update(
            customer=pi["customer"],
            description=pi["description"],
            metadata=copy.deepcopy(pi["metadata"]),
            payment_intent=pi["id"],
            payment_method=pm["id"],
            billing_details=copy.deepcopy(pm["billing_details"]),
            payment_method_details=o.charge_card_details(pm["card"], pi["amount"]),
            receipt_email=pi.get("receipt_email"),
        )
        error: StripeError | None = None
        if card.behaviour == "ok":
            ch.update(
                status="succeeded",
                paid=True,
                captured=True,
                amount_captured=pi["amount"],
                balance_transaction=new_id("txn"),
                receipt_url=f"{self.base_url}/receipts/{ch['id']}",
                outcome={
                    "advice_code": None,
                    "network_advice_code": None,
                    "network_decline_code": None,
                    "network_status": "approved_by_network",
                    "reason": None,
                    "risk_level": "normal",
                    "risk_score": 20,
                    "seller_message": "Payment complete.",
                    "type": "authorized",
                },
            )
        else:
            error = self.card_error(card, ch["id"])
            ch.update(
                status="failed",
                failure_code=error.code,
                failure_message=error.message,
                outcome={
                    "advice_code": "try_again_later",
                    "network_advice_code": None,
                    "network_decline_code": None,
                    "network_status": "declined_by_network",
                    "reason": card.decline_code or "generic_decline",
                    "risk_level": "normal",
                    "risk_score": 20,
                    "seller_message": "The bank did not return any further details with this decline.",
                    "type": "issuer_declined",
                },
            )
        self.put(ch)
        self.emit("charge.succeeded" if error is None else "charge.failed", ch)
        return ch, error

    def create_payment_intent(self, params: dict[str, Any]) -> Obj:
        """https://docs.stripe.com/api/payment_intents/create"""
        amount = as_int(require(params, "amount"), "amount")
        currency = str(require(params, "currency")).lower()
        if amount < 50:
            raise invalid("Amount must be at least $0.50 usd", "amount", "amount_too_small")
        cid = params.get("customer")
        if cid:
            self.get(cid, "customer", "customer")
        pi = o.payment_intent(new_id("pi"), self.now(), amount, currency)
        pi["customer"] = cid or None
        pi["description"] = params.get("description") or None
        pi["receipt_email"] = params.get("receipt_email") or None
        pi["setup_future_usage"] = params.get("setup_future_usage") or None
        apply_metadata(pi, params.get("metadata"))
        if params.get("payment_method"):
            pm = self.resolve_payment_method(params["payment_method"])
            pi["payment_method"] = pm["id"]
            pi["status"] = "requires_confirmation"
        self.put(pi)
        self.emit("payment_intent.created", pi)
        if as_bool(params.get("confirm", False), "confirm"):
            self.confirm_payment_intent(pi["id"], {})
        return pi

    def confirm_payment_intent(self, pi_id: str, params: dict[str, Any]) -> Obj:
        """https://docs.stripe.com/api/payment_intents/confirm (402 `card_error` when the card declines)."""
        pi = self.get(pi_id, "payment_intent")
        if pi["status"] == "succeeded":
            raise invalid(
                "This PaymentIntent's payment_method could not be updated because it has a status of succeeded.",
                code="payment_intent_unexpected_state",
            )
        if params.get("payment_method"):
            pi["payment_method"] = self.resolve_payment_method(params["payment_method"])["id"]
        if not pi["payment_method"]:
            raise invalid(
                "You cannot confirm this PaymentIntent because it's missing a payment method.",
                "payment_method",
                "payment_intent_unexpected_state",
            )
        pm = self.get(pi["payment_method"], "payment_method", "payment_method")
        error = self._run_payment(pi, pm)
        invoice_id = self.side(pi["id"]).get("invoice")
        if invoice_id:
            self._after_invoice_payment(self.get(invoice_id, "invoice"), pi, error)
        if error is not None:
            error.extra["payment_intent"] = copy.deepcopy(pi)
            raise error
        return pi

    def _run_payment(self, pi: Obj, pm: Obj) -> StripeError | None:
        """Charge `pm` for `pi`, updating the PaymentIntent and emitting its events."""
        if pi["customer"] and not pm["customer"] and pi.get("setup_future_usage"):
            self.attach_payment_method(pm["id"], {"customer": pi["customer"]})
        ch, error = self._charge(pi, pm)
        pi["payment_method"] = pm["id"]
        pi["latest_charge"] = ch["id"]
        if error is None:
            pi.update(status="succeeded", amount_received=pi["amount"], last_payment_error=None)
            self.emit("payment_intent.succeeded", pi)
        else:
            pi["status"] = "requires_payment_method"
            pi["last_payment_error"] = {
                "advice_code": None,
                "charge": ch["id"],
                "code": error.code,
                "decline_code": error.extra.get("decline_code"),
                "doc_url": f"https://stripe.com/docs/error-codes/{(error.code or '').replace('_', '-')}",
                "message": error.message,
                "network_advice_code": None,
                "network_decline_code": None,
                "param": None,
                "payment_method": copy.deepcopy(pm),
                "payment_method_type": "card",
                "type": "card_error",
            }
            self.emit("payment_intent.payment_failed", pi)
        self.dirty = True
        return error

    def create_refund(self, params: dict[str, Any]) -> Obj:
        """https://docs.stripe.com/api/refunds/create (updates `charge.amount_refunded`, emits charge.refunded)."""
        if params.get("charge"):
            ch = self.get(params["charge"], "charge", "charge")
        elif params.get("payment_intent"):
            pi = self.get(params["payment_intent"], "payment_intent", "payment_intent")
            if not pi["latest_charge"] or pi["status"] != "succeeded":
                raise invalid("This PaymentIntent does not have a successful charge to refund.", "payment_intent")
            ch = self.get(pi["latest_charge"], "charge")
        else:
            raise missing("charge")
        if ch["status"] != "succeeded":
            raise invalid(f"Charge {ch['id']} has not been captured or has failed.", "charge")
        remaining = ch["amount"] - ch["amount_refunded"]
        amount = as_int(params.get("amount") or remaining, "amount")
        if amount > remaining or remaining == 0:
            raise invalid(
                f"Refund amount ({money(amount, ch['currency'])}) is greater than unrefunded amount on charge "
                f"({money(remaining, ch['currency'])})",
                "amount",
                "charge_already_refunded" if remaining == 0 else None,
            )
        re_ = o.refund(new_id("re"), self.now(), amount, ch["currency"])
        re_.update(
            charge=ch["id"],
            payment_intent=ch["payment_intent"],
            customer=ch["customer"],
            payment_method=ch["payment_method"],
            reason=params.get("reason") or None,
        )
        apply_metadata(re_, params.get("metadata"))
        self.put(re_)
        self.emit("refund.created", re_)
        with self.updating(ch, None):
            ch["amount_refunded"] += amount
            ch["refunded"] = ch["amount_refunded"] >= ch["amount"]
            ch["refunds"]["data"].insert(0, copy.deepcopy(re_))
        self.emit("charge.refunded", ch, {"amount_refunded": ch["amount_refunded"] - amount, "refunded": False})
        return re_

    # ============================================================ subscriptions
    def _price_for_item(self, item: dict[str, Any], param: str) -> Obj:
        if item.get("price"):
            p = self.get(item["price"], "price", f"{param}[price]")
        elif isinstance(item.get("price_data"), dict):
            p = self.create_price(item["price_data"])
        else:
            raise missing(f"{param}[price]")
        if not p["active"]:
            raise invalid("The price specified is inactive. This field only accepts active prices.", f"{param}[price]")
        return p

    def create_subscription(self, params: dict[str, Any]) -> Obj:
        """https://docs.stripe.com/api/subscriptions/create

        `payment_behavior`: `allow_incomplete` (default) charges now and leaves the subscription
        `incomplete` on decline; `error_if_incomplete` answers 402 instead; `default_incomplete` leaves
        the first invoice open for the client to confirm its PaymentIntent.
        """
        cid = require(params, "customer")
        cust = self.get(cid, "customer", "customer")
        items = params.get("items")
        if not items:
            raise missing("items")
        prices = []
        for i, item in enumerate(items):
            p = self._price_for_item(item, f"items[{i}]")
            if p["type"] != "recurring":
                raise invalid(
                    "The price specified is set to `type=one_time` but this field only accepts prices with "
                    "`type=recurring`.",
                    f"items[{i}][price]",
                )
            prices.append((p, as_int(item.get("quantity") or 1, f"items[{i}][quantity]"), item))
        intervals = {(p["recurring"]["interval"], p["recurring"]["interval_count"]) for p, _, _ in prices}
        if len(intervals) > 1:
            raise invalid(
                "All prices on a subscription must have the same `recurring.interval` and `recurring.interval_count`.",
                "items",
            )
        currency = prices[0][0]["currency"]
        behaviour = params.get("payment_behavior") or "allow_incomplete"
        pm_id = params.get("default_payment_method") or None
        pm: Obj | None = None
        if pm_id:
            pm = self.get(pm_id, "payment_method", "default_payment_method")
            if pm["customer"] != cid:
                raise invalid(
                    f"The customer does not have a payment method with the ID {pm_id}. The payment method must be "
                    "attached to the customer.",
                    "default_payment_method",
                    "resource_missing",
                )
        elif cust["invoice_settings"]["default_payment_method"]:
            pm = self.find(cust["invoice_settings"]["default_payment_method"])
        now = self.now_for_customer(cid)
        trial_end = opt_int(params, "trial_end") if params.get("trial_end") != "now" else None
        trial_days = opt_int(params, "trial_period_days")
        if trial_days:
            trial_end = now + trial_days * 86400
        collection = params.get("collection_method") or "charge_automatically"
        if (
            pm is None
            and behaviour in ("allow_incomplete", "error_if_incomplete")
            and not trial_end
            and collection == "charge_automatically"
            and sum((p["unit_amount"] or 0) * q for p, q, _ in prices) > 0
        ):
            raise invalid(
                "This customer has no attached payment source or default payment method. Please consider adding "
                "a default payment method. For more information, visit https://docs.stripe.com/billing/subscriptions/payment-methods-setting#payment-method-priority.",
                code="resource_missing",
            )
        if (
            pm is not None
            and behaviour == "error_if_incomplete"
            and self.card_of(pm).behaviour != "ok"
            and not trial_end
        ):
            raise self.card_error(self.card_of(pm), None)

        sub = o.subscription(new_id("sub"), now, cid, currency)
        sub["test_clock"] = cust["test_clock"]
        sub["default_payment_method"] = pm_id
        sub["collection_method"] = collection
        if collection == "send_invoice":
            sub["days_until_due"] = opt_int(params, "days_until_due") or 30
        sub["description"] = params.get("description") or None
        apply_metadata(sub, params.get("metadata"))
        rec = prices[0][0]["recurring"]
        period_end = trial_end or add_interval(now, rec["interval"], rec["interval_count"])
        for p, qty, raw in prices:
            si = o.subscription_item(new_id("si", 14), now, sub["id"], copy.deepcopy(p), qty, now, period_end)
            apply_metadata(si, raw.get("metadata"))
            sub["items"]["data"].append(si)
        if trial_end:
            sub.update(trial_start=now, trial_end=trial_end, status="trialing")
        if "cancel_at_period_end" in params:
            sub["cancel_at_period_end"] = as_bool(params["cancel_at_period_end"], "cancel_at_period_end")
        if params.get("cancel_at"):
            sub["cancel_at"] = as_int(params["cancel_at"], "cancel_at")
        if sub["cancel_at_period_end"]:
            sub["cancel_at"] = period_end
            sub["canceled_at"] = now
        self.side(sub["id"])["anchor_day"] = datetime.fromtimestamp(now, UTC).day
        self.put(sub)
        self.emit("customer.subscription.created", sub)

        lines = []
        for si in sub["items"]["data"]:
            amount = 0 if trial_end else (si["price"]["unit_amount"] or 0) * si["quantity"]
            lines.append(self._sub_line(sub, si, amount, (now, period_end), trial=bool(trial_end)))
        inv = self._create_invoice(cust, sub, lines, "subscription_create", (now, now), now)
        self._finalize_invoice(inv, now)
        sub["latest_invoice"] = inv["id"]
        before = copy.deepcopy(sub)
        if inv["amount_due"] == 0:
            self._mark_paid(inv, now)
            if not trial_end:
                sub["status"] = "active"
        elif collection == "send_invoice":
            sub["status"] = "active"
        elif behaviour == "default_incomplete" or pm is None:
            self._pending_invoice_intent(inv, pm)
        else:
            sub["status"] = "paying"  # announced once below, not by _after_invoice_payment
            ok = self._pay_invoice(inv, pm, now)
            sub["status"] = "active" if ok else "incomplete"
        prev = diff(before, sub)
        if prev:
            self.emit("customer.subscription.updated", sub, prev)
        return sub

    def _sub_line(
        self,
        sub: Obj,
        si: Obj,
        amount: int,
        period: tuple[int, int],
        trial: bool = False,
        proration: bool = False,
        description: str | None = None,
    ) -> Obj:
        p = si["price"]
        prod = self.find(p["product"]) or {"name": p["product"]}
        desc = description or (
            f"Trial period for {prod['name']}"
            if trial
            else f"{si['quantity']} × {prod['name']} "
            f"(at {money(p['unit_amount'] or 0, p['currency'])} / {p['recurring']['interval']})"
        )
        parent = {
            "invoice_item_details": None,
            "subscription_item_details": {
                "invoice_item": None,
                "proration": proration,
                "proration_details": {"credited_items": None},
                "subscription": sub["id"],
                "subscription_item": si["id"],
            },
            "type": "subscription_item_details",
        }
        return o.invoice_line(
            new_id("il"), None, amount, p["currency"], desc, si["quantity"], period, p, parent, sub["id"]
        )

    def _create_invoice(
        self, cust: Obj, sub: Obj | None, lines: list[Obj], reason: str, period: tuple[int, int], now: int
    ) -> Obj:
        """A draft invoice with `lines` plus the customer's pending invoice items (for `sub` if given)."""
        currency = lines[0]["currency"] if lines else (sub["currency"] if sub else "usd")
        inv = o.invoice(new_id("in"), now, cust, currency)
        inv["billing_reason"] = reason
        inv["period_start"], inv["period_end"] = period
        if sub is not None:
            inv["parent"] = {
                "quote_details": None,
                "subscription_details": {"metadata": copy.deepcopy(sub["metadata"]), "subscription": sub["id"]},
                "type": "subscription_details",
            }
            inv["collection_method"] = sub["collection_method"]
            if sub["collection_method"] == "send_invoice":
                inv["due_date"] = now + (sub["days_until_due"] or 30) * 86400
        pending = [
            ii
            for ii in reversed(self.all("invoiceitem"))
            if ii["customer"] == cust["id"]
            and ii["invoice"] is None
            and (
                sub is None
                or (ii["parent"] or {}).get("subscription_details", {}).get("subscription") in (None, sub["id"])
            )
        ]
        for ii in pending:
            ii["invoice"] = inv["id"]
            p = self.find((ii["pricing"] or {}).get("price_details", {}).get("price") or "")
            sd = (ii["parent"] or {}).get("subscription_details") or {}
            parent = {
                "invoice_item_details": {
                    "invoice_item": ii["id"],
                    "proration": ii["proration"],
                    "proration_details": {"credited_items": None},
                    "subscription": sd.get("subscription"),
                },
                "subscription_item_details": None,
                "type": "invoice_item_details",
            }
            lines.append(
                o.invoice_line(
                    new_id("il"),
                    None,
                    ii["amount"],
                    ii["currency"],
                    ii["description"] or "",
                    ii["quantity"],
                    (ii["period"]["start"], ii["period"]["end"]),
                    p,
                    parent,
                    sd.get("subscription"),
                )
            )
        for line in lines:
            line["invoice"] = inv["id"]
        inv["lines"]["data"] = lines
        total = sum(line["amount"] for line in lines)
        starting = cust.get("balance") or 0
        applied = max(-total, starting) if starting < 0 else 0
        inv.update(
            subtotal=total,
            subtotal_excluding_tax=total,
            total=total,
            total_excluding_tax=total,
            starting_balance=starting,
            amount_due=max(total + applied, 0),
            amount_remaining=max(total + applied, 0),
        )
        if total < 0:
            # A credit (e.g. a downgrade) goes to the customer's balance, like Stripe does.
            inv.update(amount_due=0, amount_remaining=0)
        self.put(inv)
        self.side(inv["id"])["credit"] = min(total, 0)
        self.emit("invoice.created", inv)
        return inv

    def _finalize_invoice(self, inv: Obj, now: int) -> None:
        cust = self.get(inv["customer"], "customer")
        seq = cust["next_invoice_sequence"]
        cust["next_invoice_sequence"] = seq + 1
        inv.update(
            status="open",
            number=f"{cust['invoice_prefix']}-{seq:04d}",
            hosted_invoice_url=f"{self.base_url}/invoices/{inv['id']}",
            invoice_pdf=f"{self.base_url}/invoices/{inv['id']}/pdf",
            effective_at=now,
            ending_balance=inv["starting_balance"],
        )
        inv["status_transitions"]["finalized_at"] = now
        credit = self.side(inv["id"]).get("credit", 0)
        if credit or inv["starting_balance"]:
            with self.updating(cust, "customer.updated"):
                cust["balance"] = (
                    cust["balance"] + credit + (inv["total"] - inv["amount_due"] if inv["total"] > 0 else 0)
                )
            inv["ending_balance"] = cust["balance"]
        self.emit("invoice.finalized", inv)

    def _mark_paid(self, inv: Obj, now: int) -> None:
        inv.update(status="paid", amount_paid=inv["amount_due"], amount_remaining=0, next_payment_attempt=None)
        inv["status_transitions"]["paid_at"] = now
        self.emit("invoice.paid", inv)
        self.emit("invoice.payment_succeeded", inv)

    def _pending_invoice_intent(self, inv: Obj, pm: Obj | None) -> Obj:
        """The open invoice's PaymentIntent, waiting for confirmation (`default_incomplete`)."""
        pi = o.payment_intent(new_id("pi"), inv["created"], inv["amount_due"], inv["currency"])
        pi.update(customer=inv["customer"], description=_invoice_description(inv["billing_reason"]))
        if pm is not None:
            pi.update(payment_method=pm["id"], status="requires_confirmation")
        self.put(pi)
        self.side(pi["id"])["invoice"] = inv["id"]
        ip = o.invoice_payment(new_id("inpay"), inv["created"], inv["id"], inv["amount_due"], inv["currency"], pi["id"])
        self.put(ip)
        self.side(inv["id"])["payments"] = [*self.side(inv["id"]).get("payments", []), ip["id"]]
        self.emit("payment_intent.created", pi)
        return pi

    def _pay_invoice(self, inv: Obj, pm: Obj | None, now: int) -> bool:
        """Attempt payment of an open invoice with `pm`; updates the invoice and emits invoice.* events."""
        if pm is None:
            inv.update(attempted=True, attempt_count=inv["attempt_count"] + 1)
            self.emit("invoice.payment_failed", inv)
            return False
        pi = self._pending_invoice_intent(inv, pm)
        error = self._run_payment(pi, pm)
        self._after_invoice_payment(inv, pi, error)
        return error is None

    def _after_invoice_payment(self, inv: Obj, pi: Obj, error: StripeError | None) -> None:
        now = self.now_for_customer(inv["customer"])
        ip_ids = self.side(inv["id"]).get("payments", [])
        for ip_id in ip_ids:
            ip = self.find(ip_id)
            if ip and ip["payment"]["payment_intent"] == pi["id"] and error is None:
                ip.update(status="paid", amount_paid=pi["amount"])
                ip["status_transitions"]["paid_at"] = now
        inv.update(attempted=True, attempt_count=inv["attempt_count"] + 1)
        if error is None:
            self._mark_paid(inv, now)
            sub_id = ((inv.get("parent") or {}).get("subscription_details") or {}).get("subscription")
            sub = self.find(sub_id or "")
            if sub and sub["latest_invoice"] == inv["id"] and sub["status"] in ("incomplete", "past_due", "unpaid"):
                with self.updating(sub, "customer.subscription.updated"):
                    sub["status"] = "active"
        else:
            self.emit("invoice.payment_failed", inv)

    def pay_invoice(self, iid: str, params: dict[str, Any]) -> Obj:
        """https://docs.stripe.com/api/invoices/pay"""
        inv = self.get(iid, "invoice")
        if inv["status"] == "paid":
            raise invalid("Invoice is already paid", code="invoice_already_paid")
        if inv["status"] != "open":
            raise invalid(
                f"You can only pay an invoice that is open (this invoice is {inv['status']}).", code="invoice_not_open"
            )
        pm_id = params.get("payment_method") or self._default_pm_for(inv)
        if not pm_id:
            raise invalid(
                "This customer has no attached payment source or default payment method.",
                code="invoice_no_customer_line_items",
            )
        pm = self.resolve_payment_method(pm_id)
        now = self.now_for_customer(inv["customer"])
        inv["next_payment_attempt"] = None
        if not self._pay_invoice(inv, pm, now):
            self._schedule_retry(inv, now)
            latest_pi = self.find(self.find(self.side(inv["id"])["payments"][-1])["payment"]["payment_intent"])  # type: ignore[index]
            raise self.card_error(self.card_of(pm), latest_pi["latest_charge"] if latest_pi else None)
        return inv

    def _default_pm_for(self, inv: Obj) -> str | None:
        """Stripe's precedence: the subscription's default PaymentMethod, then the customer's."""
        sub_id = ((inv.get("parent") or {}).get("subscription_details") or {}).get("subscription")
        sub = self.find(sub_id or "")
        if sub and sub["default_payment_method"]:
            return str(sub["default_payment_method"])
        cust = self.find(inv["customer"])
        return cust["invoice_settings"]["default_payment_method"] if cust else None

    def _schedule_retry(self, inv: Obj, now: int) -> None:
        side = self.side(inv["id"])
        first = side.setdefault("first_failure", now)
        days = self.config.dunning_retry_days
        failures = side["failures"] = side.get("failures", 0) + 1
        inv["next_payment_attempt"] = first + days[failures - 1] * 86400 if failures <= len(days) else None

    def update_subscription(self, sid: str, params: dict[str, Any]) -> Obj:
        """https://docs.stripe.com/api/subscriptions/update (items, prorations, cancel_at_period_end, cancel_at)."""
        sub = self.get(sid, "subscription")
        if sub["status"] in ("canceled", "incomplete_expired") and set(params) - {
            "metadata",
            "cancellation_details",
            "expand",
        }:
            raise invalid("A canceled subscription can only update its cancellation_details and metadata.")
        now = self.now_for_customer(sub["customer"])
        behaviour = params.get("proration_behavior") or "create_prorations"
        proration_date = opt_int(params, "proration_date") or now
        invoice_now = False
        with self.updating(sub, "customer.subscription.updated"):
            if params.get("items"):
                invoice_now = self._change_items(sub, params["items"], behaviour, proration_date, now)
            if "cancel_at_period_end" in params:
                flag = as_bool(params["cancel_at_period_end"], "cancel_at_period_end")
                sub["cancel_at_period_end"] = flag
                sub["cancel_at"] = _period_end(sub) if flag else None
                sub["canceled_at"] = now if flag else None
                if not flag:
                    sub["cancellation_details"] = {"comment": None, "feedback": None, "reason": None}
                else:
                    sub["cancellation_details"]["reason"] = "cancellation_requested"
            if "cancel_at" in params:
                at = params["cancel_at"]
                if at in ("", None):
                    sub["cancel_at"] = None
                    sub["canceled_at"] = None
                    sub["cancel_at_period_end"] = False
                else:
                    value = _period_end(sub) if at in ("min_period_end", "max_period_end") else as_int(at, "cancel_at")
                    sub["cancel_at"] = value
                    sub["canceled_at"] = now
                    sub["cancel_at_period_end"] = value == _period_end(sub)
                    sub["cancellation_details"]["reason"] = "cancellation_requested"
            if isinstance(params.get("cancellation_details"), dict):
                cd = params["cancellation_details"]
                for key in ("comment", "feedback"):
                    if key in cd:
                        sub["cancellation_details"][key] = cd[key] or None
            if "default_payment_method" in params:
                pm_id = params["default_payment_method"] or None
                if pm_id:
                    pm = self.get(pm_id, "payment_method", "default_payment_method")
                    if pm["customer"] != sub["customer"]:
                        raise invalid(
                            f"The customer does not have a payment method with the ID {pm_id}. The payment method "
                            "must be attached to the customer.",
                            "default_payment_method",
                            "resource_missing",
                        )
                sub["default_payment_method"] = pm_id
            if "description" in params:
                sub["description"] = params["description"] or None
            apply_metadata(sub, params.get("metadata"))
            if params.get("trial_end") == "now" and sub["status"] == "trialing":
                sub["trial_end"] = now
                self._renew(sub, now)
            if invoice_now or (behaviour == "always_invoice" and params.get("items")):
                self._invoice_now(sub, now, "subscription_update", new_period=invoice_now)
        return sub

    def _change_items(self, sub: Obj, items: list[dict[str, Any]], behaviour: str, at: int, now: int) -> bool:
        """Apply item changes with proration invoice items; True when the billing period was reset."""
        by_id = {si["id"]: si for si in sub["items"]["data"]}
        old_interval = _interval(sub)
        period = (_period_start(sub), _period_end(sub))
        changes: list[tuple[Obj | None, Obj | None, int, int]] = []  # (old price, new price, old qty, new qty)
        for i, raw in enumerate(items):
            param = f"items[{i}]"
            if raw.get("id"):
                si = by_id.get(raw["id"])
                if si is None:
                    raise invalid(
                        f"Subscription item {raw['id']} does not belong to this subscription.", f"{param}[id]"
                    )
                if raw.get("deleted") and as_bool(raw["deleted"], f"{param}[deleted]"):
                    changes.append((si["price"], None, si["quantity"], 0))
                    sub["items"]["data"].remove(si)
                    continue
                old_p, old_q = si["price"], si["quantity"]
                if raw.get("price") or raw.get("price_data"):
                    p = self._price_for_item(raw, param)
                    si["price"] = copy.deepcopy(p)
                    si["plan"] = o.plan_from_price(p)
                if raw.get("quantity") not in (None, ""):
                    si["quantity"] = as_int(raw["quantity"], f"{param}[quantity]")
                apply_metadata(si, raw.get("metadata"))
                if si["price"]["id"] != old_p["id"] or si["quantity"] != old_q:
                    changes.append((old_p, si["price"], old_q, si["quantity"]))
            else:
                p = self._price_for_item(raw, param)
                qty = as_int(raw.get("quantity") or 1, f"{param}[quantity]")
                si = o.subscription_item(new_id("si", 14), now, sub["id"], copy.deepcopy(p), qty, *period)
                sub["items"]["data"].append(si)
                changes.append((None, p, 0, qty))
        if not sub["items"]["data"]:
            raise invalid("A subscription must have at least one active plan.", "items")
        new_interval = _interval(sub)
        reset = new_interval != old_interval
        if reset:
            # A change of billing interval restarts the period now and invoices immediately (Stripe's rule).
            end = add_interval(now, *new_interval)
            for si in sub["items"]["data"]:
                si["current_period_start"], si["current_period_end"] = now, end
            sub["billing_cycle_anchor"] = now
            self.side(sub["id"])["anchor_day"] = datetime.fromtimestamp(now, UTC).day
        if behaviour != "none":
            for old_p, new_p, old_q, new_q in changes:
                for line in self.proration_lines(sub, old_p, new_p, old_q, new_q, period, at, reset):
                    self._add_invoice_item(sub, line)
        return reset

    def proration_lines(
        self,
        sub: Obj,
        old_p: Obj | None,
        new_p: Obj | None,
        old_q: int,
        new_q: int,
        period: tuple[int, int],
        at: int,
        reset: bool,
    ) -> list[dict[str, Any]]:
        """Stripe's proration: credit the unused time of the old price, charge the rest of the period at the new one.

        https://docs.stripe.com/billing/subscriptions/prorations
        """
        start, end = period
        fraction = max(0.0, min(1.0, (end - at) / max(1, end - start)))
        when = datetime.fromtimestamp(at, UTC).strftime("%d %b %Y")
        out = []
        if old_p is not None and old_q:
            prod = self.find(old_p["product"]) or {"name": old_p["product"]}
            out.append(
                {
                    "amount": -round((old_p["unit_amount"] or 0) * old_q * fraction),
                    "price": old_p,
                    "quantity": old_q,
                    "description": f"Unused time on {old_q} × {prod['name']} after {when}",
                    "period": (at, end),
                }
            )
        if new_p is not None and new_q and not reset:
            prod = self.find(new_p["product"]) or {"name": new_p["product"]}
            out.append(
                {
                    "amount": round((new_p["unit_amount"] or 0) * new_q * fraction),
                    "price": new_p,
                    "quantity": new_q,
                    "description": f"Remaining time on {new_q} × {prod['name']} after {when}",
                    "period": (at, end),
                }
            )
        return out

    def _add_invoice_item(self, sub: Obj, line: dict[str, Any]) -> Obj:
        cust = self.get(sub["customer"], "customer")
        ii = o.invoiceitem(new_id("ii"), self.now_for_customer(cust["id"]), cust, line["amount"], sub["currency"])
        p = line["price"]
        ii.update(
            description=line["description"],
            proration=True,
            quantity=line["quantity"],
            quantity_decimal=str(line["quantity"]),
            period={"start": line["period"][0], "end": line["period"][1]},
            parent={
                "subscription_details": {"subscription": sub["id"], "subscription_item": None},
                "type": "subscription_details",
            },
            pricing={
                "price_details": {"price": p["id"], "product": p["product"]},
                "type": "price_details",
                "unit_amount_decimal": p["unit_amount_decimal"],
            },
        )
        self.put(ii)
        self.emit("invoiceitem.created", ii)
        return ii

    def _invoice_now(self, sub: Obj, now: int, reason: str, new_period: bool = False) -> Obj:
        """Invoice pending items (and, after a period reset, the new period) immediately and pay it."""
        cust = self.get(sub["customer"], "customer")
        lines = []
        if new_period:
            for si in sub["items"]["data"]:
                lines.append(
                    self._sub_line(
                        sub,
                        si,
                        (si["price"]["unit_amount"] or 0) * si["quantity"],
                        (si["current_period_start"], si["current_period_end"]),
                    )
                )
        inv = self._create_invoice(cust, sub, lines, reason, (now, now), now)
        self._finalize_invoice(inv, now)
        # The caller's `updating` block reports these subscription changes in one event.
        sub["latest_invoice"] = inv["id"]
        if inv["amount_due"] <= 0:
            self._mark_paid(inv, now)
        elif sub["collection_method"] == "charge_automatically":
            pm_id = self._default_pm_for(inv)
            pm = self.find(pm_id) if pm_id else None
            previous = sub["status"]
            sub["status"] = "paying"  # keeps _after_invoice_payment from announcing a status change of its own
            ok = self._pay_invoice(inv, pm, now)
            sub["status"] = previous if previous in ("canceled", "trialing") else "active" if ok else "past_due"
            if not ok:
                self._schedule_retry(inv, now)
        return inv

    def cancel_subscription(self, sid: str, params: dict[str, Any], *, at: int | None = None) -> Obj:
        """https://docs.stripe.com/api/subscriptions/cancel"""
        sub = self.get(sid, "subscription")
        if sub["status"] in ("canceled", "incomplete_expired"):
            raise invalid("This subscription has already been canceled.")
        now = at if at is not None else self.now_for_customer(sub["customer"])
        prorate = as_bool(params.get("prorate", False), "prorate")
        if prorate:
            for si in sub["items"]["data"]:
                for line in self.proration_lines(
                    sub,
                    si["price"],
                    None,
                    si["quantity"],
                    0,
                    (si["current_period_start"], si["current_period_end"]),
                    now,
                    False,
                ):
                    self._add_invoice_item(sub, line)
        prev = copy.deepcopy(sub)
        sub.update(status="canceled", ended_at=now, canceled_at=sub["canceled_at"] or now)
        cd = params.get("cancellation_details")
        if isinstance(cd, dict):
            for key in ("comment", "feedback"):
                if key in cd:
                    sub["cancellation_details"][key] = cd[key] or None
        if not sub["cancellation_details"]["reason"]:
            sub["cancellation_details"]["reason"] = params.get("_reason") or "cancellation_requested"
        self.emit("customer.subscription.deleted", sub, diff(prev, sub))
        if as_bool(params.get("invoice_now", False), "invoice_now"):
            self._invoice_now(sub, now, "subscription_update")
        return sub

    # ============================================================ time
    def advance_clock(self, clock_id: str | None, to: int) -> None:
        """Move a test clock (or the global clock) to `to` and run everything that became due, in time order.

        https://docs.stripe.com/api/test_clocks/advance
        """
        if clock_id is None:
            if to > self.now():
                self.clock_offset += to - self.now()
                self.dirty = True
        else:
            clock = self.get(clock_id, "test_helpers.test_clock")
            clock["frozen_time"] = to
            self.dirty = True
        for _ in range(5000):
            due = self._next_due(clock_id, to)
            if due is None:
                break
            when, sub, what = due
            self._run_due(sub, what, when)
        if clock_id is None:
            # Checkout Sessions expire 24 hours after creation unless completed (or at `expires_at`).
            for cs in self.all("checkout.session"):
                if cs["status"] == "open" and cs["expires_at"] <= to:
                    cs.update(status="expired", url=None)
                    self.emit("checkout.session.expired", cs)

    def _next_due(self, clock_id: str | None, to: int) -> tuple[int, Obj, str] | None:
        best: tuple[int, Obj, str] | None = None
        for sub in self.by_type.get("subscription", {}).values():
            if sub["test_clock"] != clock_id:
                continue
            candidates: list[tuple[int, str]] = []
            status = sub["status"]
            if status == "incomplete":
                candidates.append((sub["created"] + 23 * 3600, "expire"))
            if status == "trialing" and sub["trial_end"] and not self.side(sub["id"]).get("trial_will_end"):
                # Stripe announces the end of a trial three days ahead.
                candidates.append((max(sub["created"], sub["trial_end"] - 3 * 86400), "trial_will_end"))
            if status in ACTIVE_STATUSES or status == "unpaid":
                if sub["cancel_at"] and sub["cancel_at"] < _period_end(sub):
                    candidates.append((sub["cancel_at"], "cancel"))
                candidates.append(
                    (
                        _period_end(sub),
                        "cancel" if sub["cancel_at_period_end"] or sub["cancel_at"] == _period_end(sub) else "renew",
                    )
                )
                inv = self.find(sub["latest_invoice"] or "")
                if inv and inv["status"] == "open" and inv["next_payment_attempt"]:
                    candidates.append((inv["next_payment_attempt"], "retry"))
            for when, what in candidates:
                if when <= to and (best is None or when < best[0]):
                    best = (when, sub, what)
        return best

    def _run_due(self, sub: Obj, what: str, when: int) -> None:
        if what == "expire":
            with self.updating(sub, "customer.subscription.updated"):
                sub["status"] = "incomplete_expired"
                sub["ended_at"] = when
        elif what == "trial_will_end":
            self.side(sub["id"])["trial_will_end"] = True
            self.emit("customer.subscription.trial_will_end", sub)
        elif what == "cancel":
            self.cancel_subscription(sub["id"], {}, at=when)
        elif what == "renew":
            self._renew(sub, when)
        elif what == "retry":
            self._retry(sub, when)

    def _renew(self, sub: Obj, when: int) -> None:
        """Start the next period: invoice it (with pending prorations) and charge the default PaymentMethod."""
        cust = self.get(sub["customer"], "customer")
        interval, count = _interval(sub)
        anchor_day = self.side(sub["id"]).get("anchor_day")
        end = add_interval(when, interval, count, anchor_day if interval in ("month", "year") else None)
        trial_ended = sub["status"] == "trialing"
        # One customer.subscription.updated for the new period and its invoice, after invoice.created/finalized.
        with self.updating(sub, "customer.subscription.updated"):
            for si in sub["items"]["data"]:
                si["current_period_start"], si["current_period_end"] = when, end
            if trial_ended:
                sub["status"] = "active"
            lines = [
                self._sub_line(sub, si, (si["price"]["unit_amount"] or 0) * si["quantity"], (when, end))
                for si in sub["items"]["data"]
            ]
            inv = self._create_invoice(cust, sub, lines, "subscription_cycle", (when, when), when)
            self._finalize_invoice(inv, when)
            sub["latest_invoice"] = inv["id"]
        if inv["amount_due"] <= 0:
            self._mark_paid(inv, when)
            return
        if sub["collection_method"] != "charge_automatically":
            return
        pm_id = self._default_pm_for(inv)
        pm = self.find(pm_id) if pm_id else None
        if not self._pay_invoice(inv, pm, when):
            self._schedule_retry(inv, when)
            if sub["status"] != "past_due":
                with self.updating(sub, "customer.subscription.updated"):
                    sub["status"] = "past_due"

    def _retry(self, sub: Obj, when: int) -> None:
        """One of Stripe's automatic retries of a failed renewal (Smart Retries, compressed schedule)."""
        inv = self.get(sub["latest_invoice"], "invoice")
        pm_id = self._default_pm_for(inv)
        pm = self.find(pm_id) if pm_id else None
        inv["next_payment_attempt"] = None
        if self._pay_invoice(inv, pm, when):
            return
        self._schedule_retry(inv, when)
        if inv["next_payment_attempt"] is None:
            if self.config.dunning_final_status == "unpaid":
                with self.updating(sub, "customer.subscription.updated"):
                    sub["status"] = "unpaid"
            else:
                sub["cancellation_details"]["reason"] = "payment_failed"
                self.cancel_subscription(sub["id"], {"_reason": "payment_failed"}, at=when)

    # ============================================================ test clocks
    def create_test_clock(self, params: dict[str, Any]) -> Obj:
        """https://docs.stripe.com/api/test_clocks/create"""
        frozen = as_int(require(params, "frozen_time"), "frozen_time")
        clock = o.test_clock(new_id("clock"), self.now(), frozen, params.get("name") or None)
        self.put(clock)
        return clock

    def advance_test_clock(self, clock_id: str, params: dict[str, Any]) -> Obj:
        """https://docs.stripe.com/api/test_clocks/advance (runs synchronously; the clock is `ready` at once)."""
        clock = self.get(clock_id, "test_helpers.test_clock")
        to = as_int(require(params, "frozen_time"), "frozen_time")
        if to <= clock["frozen_time"]:
            raise invalid("The frozen_time must be after the current frozen_time of the test clock.", "frozen_time")
        self.advance_clock(clock_id, to)
        self.emit("test_helpers.test_clock.ready", clock)
        return clock

    def delete_test_clock(self, clock_id: str) -> Obj:
        """https://docs.stripe.com/api/test_clocks/delete (deletes the clock's customers too)."""
        self.get(clock_id, "test_helpers.test_clock")
        for cust in self.all("customer"):
            if cust["test_clock"] == clock_id:
                self.delete_customer(cust["id"])
        self.remove(clock_id)
        return {"id": clock_id, "object": "test_helpers.test_clock", "deleted": True}


def _invoice_description(reason: str) -> str:
    return {
        "subscription_create": "Subscription creation",
        "subscription_cycle": "Subscription update",
        "subscription_update": "Subscription update",
    }.get(reason, "Payment for Invoice")


def _period_end(sub: Obj) -> int:
    return min(int(si["current_period_end"]) for si in sub["items"]["data"])


def _period_start(sub: Obj) -> int:
    return max(int(si["current_period_start"]) for si in sub["items"]["data"])


def _interval(sub: Obj) -> tuple[str, int]:
    rec = sub["items"]["data"][0]["price"]["recurring"]
    return rec["interval"], int(rec["interval_count"])


_CLAUSE = re.compile(r"""(-?)([a-z_]+(?:\[['"][^'"]+['"]\])?)\s*(:|~|>=|<=|>|<)\s*(?:'([^']*)'|"([^"]*)"|(\S+))""")


def _field(obj: Obj, name: str) -> Any:
    if name.startswith("metadata["):
        return (obj.get("metadata") or {}).get(name[10:-2])
    value = obj.get(name)
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, dict) and "id" in value:
        return value["id"]
    return value


def _match_query(obj: Obj, query: str) -> bool:
    """Stripe's search query language, for `field:'value'`, `field~'part'`, `-field:...`, AND/OR.

    https://docs.stripe.com/search#search-query-language
    """

    def clause_ok(m: re.Match[str]) -> bool:
        neg, name, op, v1, v2, v3 = m.groups()
        value = v1 if v1 is not None else v2 if v2 is not None else v3
        actual = _field(obj, name)
        if op == ":":
            ok = (
                actual is not None and str(actual).lower() == value.lower()
                if name == "email"
                else str(actual) == value
                if actual is not None
                else value == "null"
            )
        elif op == "~":
            ok = actual is not None and value.lower() in str(actual).lower()
        else:
            try:
                a, b = float(actual), float(value)
            except (TypeError, ValueError):
                return False
            ok = {">": a > b, "<": a < b, ">=": a >= b, "<=": a <= b}[op]
        return not ok if neg else ok

    groups = re.split(r"\s+OR\s+", query.strip())
    for group in groups:
        clauses = [c for c in re.split(r"\s+AND\s+", group) if c.strip()]
        matches = [_CLAUSE.fullmatch(c.strip()) for c in clauses]
        if any(m is None for m in matches):
            raise invalid(f"Invalid search query: {query}", "query", "parameter_invalid_string")
        if all(clause_ok(m) for m in matches if m is not None):
            return True
    return False
