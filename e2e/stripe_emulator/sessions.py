"""Checkout Sessions, Customer Portal configurations/sessions, invoices, events and webhook endpoints."""

from __future__ import annotations

import copy
import secrets
from typing import Any

from . import objects as o
from .engine import (
    LIVE_STATUSES,
    Emulator,
    _interval,
    _period_end,
    _period_start,
    add_interval,
    apply_metadata,
    as_bool,
    as_int,
    opt_int,
    require,
)
from .errors import invalid, missing
from .store import Obj, new_id

AFTER_COMPLETION_TYPES = ("redirect", "hosted_confirmation", "portal_homepage")
FLOW_TYPES = ("payment_method_update", "subscription_cancel", "subscription_update", "subscription_update_confirm")
CANCEL_REASONS = [
    "too_expensive",
    "missing_features",
    "switched_service",
    "unused",
    "customer_service",
    "too_complex",
    "low_quality",
    "other",
]


class StripeEmulator(Emulator):
    """The full emulator: resources of `Emulator` plus Checkout, the Customer Portal, invoices and events."""

    # ============================================================ checkout sessions
    def create_checkout_session(self, params: dict[str, Any]) -> Obj:
        """https://docs.stripe.com/api/checkout/sessions/create"""
        mode = params.get("mode")
        if not mode:
            raise missing("mode")
        if mode not in ("payment", "subscription", "setup"):
            raise invalid("Invalid mode: must be one of payment, setup, or subscription", "mode")
        ui_mode = params.get("ui_mode") or "hosted"
        if ui_mode == "hosted" and not params.get("success_url"):
            raise missing("success_url")
        if params.get("customer") and params.get("customer_email"):
            raise invalid("You may only specify one of these parameters: customer, customer_email.", "customer_email")
        cust = self.get(params["customer"], "customer", "customer") if params.get("customer") else None
        now = self.now()
        cs = o.checkout_session(new_id("cs"), now)
        line_items = params.get("line_items") or []
        if mode in ("payment", "subscription") and not line_items:
            raise missing("line_items")
        items = []
        for i, raw in enumerate(line_items):
            if not isinstance(raw, dict):
                raise invalid("Invalid array", f"line_items[{i}]")
            if raw.get("price"):
                p = self.get(raw["price"], "price", f"line_items[{i}][price]")
            elif isinstance(raw.get("price_data"), dict):
                pdata = dict(raw["price_data"])
                if isinstance(pdata.get("product_data"), dict) or pdata.get("product"):
                    p = self.create_price(pdata)
                else:
                    raise missing(f"line_items[{i}][price_data][product]")
            else:
                raise invalid("You must specify either `price` or `price_data` for each line item.", f"line_items[{i}]")
            if not p["active"]:
                raise invalid(f"The price `{p['id']}` is not active.", f"line_items[{i}][price]")
            if mode == "payment" and p["type"] == "recurring":
                raise invalid(
                    "You specified `payment` mode but passed a recurring price. Either switch to `subscription` mode "
                    "or use only one-time prices.",
                    "line_items",
                )
            qty = as_int(raw.get("quantity") or 1, f"line_items[{i}][quantity]")
            prod = self.find(p["product"]) or {"name": p["product"]}
            items.append(o.checkout_item(new_id("li"), copy.deepcopy(p), qty, prod["name"]))
        if mode == "subscription" and not any(it["price"]["type"] == "recurring" for it in items):
            raise invalid(
                "You must provide at least one recurring price in `subscription` mode when using prices.", "line_items"
            )
        currency = items[0]["currency"] if items else (params.get("currency") or None)
        total = sum(it["amount_total"] for it in items)
        cs.update(
            mode=mode,
            ui_mode=ui_mode,
            success_url=params.get("success_url"),
            cancel_url=params.get("cancel_url"),
            return_url=params.get("return_url"),
            client_reference_id=params.get("client_reference_id") or None,
            customer=cust["id"] if cust else None,
            customer_email=params.get("customer_email") or None,
            currency=currency,
            amount_subtotal=total if items else None,
            amount_total=total if items else None,
            locale=params.get("locale") or None,
            submit_type=params.get("submit_type") or None,
            billing_address_collection=params.get("billing_address_collection") or None,
            allow_promotion_codes=as_bool(params["allow_promotion_codes"], "allow_promotion_codes")
            if "allow_promotion_codes" in params
            else None,
            payment_status="no_payment_required" if mode == "setup" else "unpaid",
            url=f"{self.base_url}/c/pay/{cs['id']}" if ui_mode == "hosted" else None,
            customer_creation=None
            if mode == "subscription" or cust
            else (params.get("customer_creation") or "if_required"),
            expires_at=opt_int(params, "expires_at") or now + 86400,
        )
        if cs["return_url"] is None:
            cs.pop("return_url")
        if ui_mode != "hosted":
            cs["client_secret"] = f"{cs['id']}_secret_emulator"
        if cust:
            cs["customer_details"] = o.checkout_customer_details(cust["email"], cust["name"], cust["address"])
        elif cs["customer_email"]:
            cs["customer_details"] = o.checkout_customer_details(cs["customer_email"], None)
        ic = params.get("invoice_creation")
        if mode == "payment":
            enabled = isinstance(ic, dict) and as_bool(ic.get("enabled", False), "invoice_creation[enabled]")
            idata = (ic or {}).get("invoice_data") if isinstance(ic, dict) else None
            cs["invoice_creation"] = {
                "enabled": enabled,
                "invoice_data": {
                    "account_tax_ids": None,
                    "custom_fields": None,
                    "description": (idata or {}).get("description") if isinstance(idata, dict) else None,
                    "footer": None,
                    "issuer": None,
                    "metadata": dict((idata or {}).get("metadata") or {}) if isinstance(idata, dict) else {},
                    "rendering_options": None,
                },
            }
        apply_metadata(cs, params.get("metadata"))
        side = self.side(cs["id"])
        side["line_items"] = items
        side["subscription_data"] = params.get("subscription_data") or {}
        side["payment_intent_data"] = params.get("payment_intent_data") or {}
        side["setup_intent_data"] = params.get("setup_intent_data") or {}
        self.put(cs)
        return cs

    def checkout_line_items(self, cs_id: str) -> list[Obj]:
        """https://docs.stripe.com/api/checkout/sessions/line_items"""
        self.get(cs_id, "checkout.session")
        return list(self.side(cs_id).get("line_items", []))

    def expire_checkout_session(self, cs_id: str) -> Obj:
        """https://docs.stripe.com/api/checkout/sessions/expire"""
        cs = self.get(cs_id, "checkout.session")
        if cs["status"] != "open":
            raise invalid(
                f'Only Checkout Sessions with a status in ["open"] can be expired. This Checkout Session has a '
                f'status of "{cs["status"]}".'
            )
        cs.update(status="expired", url=None)
        self.emit("checkout.session.expired", cs)
        return cs

    def complete_checkout(
        self, cs_id: str, *, email: str, number: str, exp_month: int, exp_year: int, name: str | None
    ) -> Obj:
        """Pay a Checkout Session with a card typed on the hosted page.

        Raises `StripeError` (402 `card_error`) on a declined card; nothing is created then, and the
        session stays open. On success the session is `complete` and checkout.session.completed is sent.
        """
        cs = self.get(cs_id, "checkout.session")
        if cs["status"] != "open":
            raise invalid("This Checkout Session is no longer active.")
        if not email:
            raise missing("email")
        pm = self.payment_method_from_card(number, exp_month, exp_year, name, email)
        card = self.card_of(pm)
        # A declining card never creates anything: it is refused before the customer exists.
        if card.behaviour == "decline" or (card.behaviour == "charge_fail" and cs["mode"] != "setup"):
            self.remove(pm["id"])
            raise self.card_error(card, None)
        side = self.side(cs_id)
        cust = self.find(cs["customer"]) if cs["customer"] else None
        if cust is None and (cs["mode"] in ("subscription", "setup") or cs["customer_creation"] == "always"):
            cust = self.create_customer({"email": email, "name": name or ""})
        elif cust is not None and not cust["email"]:
            # "If the Customer does not have a valid email, Checkout will set the email entered
            # during the session on the Customer" (SessionCreateParams.customer).
            cust = self.update_customer(cust["id"], {"email": email})
        cs["customer"] = cust["id"] if cust else None
        cs["customer_details"] = o.checkout_customer_details(email, name, cust["address"] if cust else None)
        if cust is not None:
            self.attach_payment_method(pm["id"], {"customer": cust["id"]})
            if cs["mode"] in ("subscription", "setup"):
                self.set_default_payment_method(cust["id"], pm["id"], subscriptions=False)
        items = side.get("line_items", [])
        if cs["mode"] == "subscription":
            sd = side.get("subscription_data") or {}
            sub_params: dict[str, Any] = {
                "customer": cust["id"],  # type: ignore[index]
                "items": [
                    {"price": it["price"]["id"], "quantity": it["quantity"]}
                    for it in items
                    if it["price"]["type"] == "recurring"
                ],
                "default_payment_method": pm["id"],
                "metadata": sd.get("metadata") or {},
                "payment_behavior": "allow_incomplete",
            }
            if sd.get("trial_period_days"):
                sub_params["trial_period_days"] = sd["trial_period_days"]
            if sd.get("description"):
                sub_params["description"] = sd["description"]
            for it in items:
                if it["price"]["type"] != "recurring":
                    self.create_invoice_item(
                        {"customer": sub_params["customer"], "price": it["price"]["id"], "quantity": it["quantity"]}
                    )
            sub = self.create_subscription(sub_params)
            cs.update(subscription=sub["id"], invoice=sub["latest_invoice"], payment_status="paid")
        elif cs["mode"] == "payment":
            pid = side.get("payment_intent_data") or {}
            pi = self.create_payment_intent(
                {
                    "amount": cs["amount_total"],
                    "currency": cs["currency"],
                    "customer": cust["id"] if cust else None,
                    "payment_method": pm["id"],
                    "metadata": pid.get("metadata") or {},
                    "description": pid.get("description"),
                    "receipt_email": email,
                }
            )
            error = self._run_payment(pi, pm)
            if error is not None:
                raise error
            cs.update(payment_intent=pi["id"], payment_status="paid")
            if (cs.get("invoice_creation") or {}).get("enabled") and cust is not None:
                cs["invoice"] = self._invoice_for_payment(cust, items, pi, cs)["id"]
        else:
            seti = o.setup_intent(new_id("seti"), self.now())
            seti.update(customer=cust["id"] if cust else None, payment_method=pm["id"], status="succeeded")
            apply_metadata(seti, (side.get("setup_intent_data") or {}).get("metadata"))
            self.put(seti)
            self.emit("setup_intent.created", seti)
            self.emit("setup_intent.succeeded", seti)
            cs["setup_intent"] = seti["id"]
        cs["status"] = "complete"
        cs["url"] = None
        self.dirty = True
        self.emit("checkout.session.completed", cs)
        return cs

    def _invoice_for_payment(self, cust: Obj, items: list[Obj], pi: Obj, cs: Obj) -> Obj:
        """The paid invoice Checkout creates in payment mode with `invoice_creation[enabled]`."""
        now = self.now_for_customer(cust["id"])
        lines = []
        for it in items:
            parent = {"invoice_item_details": None, "subscription_item_details": None, "type": "invoice_item_details"}
            lines.append(
                o.invoice_line(
                    new_id("il"),
                    None,
                    it["amount_total"],
                    it["currency"],
                    it["description"],
                    it["quantity"],
                    (now, now),
                    it["price"],
                    parent,
                    None,
                )
            )
        inv = self._create_invoice(cust, None, lines, "manual", (now, now), now)
        apply_metadata(inv, ((cs.get("invoice_creation") or {}).get("invoice_data") or {}).get("metadata"))
        self._finalize_invoice(inv, now)
        ip = o.invoice_payment(new_id("inpay"), now, inv["id"], inv["amount_due"], inv["currency"], pi["id"])
        ip.update(status="paid", amount_paid=inv["amount_due"])
        ip["status_transitions"]["paid_at"] = now
        self.put(ip)
        self.side(inv["id"])["payments"] = [ip["id"]]
        inv.update(attempted=True, attempt_count=1)
        self._mark_paid(inv, now)
        return inv

    # ============================================================ invoices and invoice items
    def create_invoice_item(self, params: dict[str, Any]) -> Obj:
        """https://docs.stripe.com/api/invoiceitems/create"""
        cust = self.get(require(params, "customer"), "customer", "customer")
        pricing: dict[str, Any] = params["pricing"] if isinstance(params.get("pricing"), dict) else {}
        price_id = params.get("price") or pricing.get("price")
        qty = as_int(params.get("quantity") or 1, "quantity")
        p = self.get(price_id, "price", "pricing[price]") if price_id else None
        if p is not None:
            amount = (p["unit_amount"] or 0) * qty
            currency = p["currency"]
        else:
            amount = as_int(require(params, "amount"), "amount")
            currency = str(require(params, "currency")).lower()
        ii = o.invoiceitem(new_id("ii"), self.now_for_customer(cust["id"]), cust, amount, currency)
        ii.update(
            description=params.get("description") or ((self.find(p["product"]) or {}).get("name") if p else None),
            quantity=qty,
            quantity_decimal=str(qty),
        )
        if p is not None:
            ii["pricing"] = {
                "price_details": {"price": p["id"], "product": p["product"]},
                "type": "price_details",
                "unit_amount_decimal": p["unit_amount_decimal"],
            }
        if params.get("subscription"):
            sub = self.get(params["subscription"], "subscription", "subscription")
            ii["parent"] = {
                "subscription_details": {"subscription": sub["id"], "subscription_item": None},
                "type": "subscription_details",
            }
        if params.get("invoice"):
            inv = self.get(params["invoice"], "invoice", "invoice")
            if inv["status"] != "draft":
                raise invalid("You can only add invoice items to draft invoices.", "invoice")
            ii["invoice"] = inv["id"]
        apply_metadata(ii, params.get("metadata"))
        self.put(ii)
        self.emit("invoiceitem.created", ii)
        if ii["invoice"]:
            self._add_line_from_item(self.get(ii["invoice"], "invoice"), ii)
        return ii

    def _add_line_from_item(self, inv: Obj, ii: Obj) -> None:
        p = self.find((ii["pricing"] or {}).get("price_details", {}).get("price") or "")
        parent = {
            "invoice_item_details": {
                "invoice_item": ii["id"],
                "proration": ii["proration"],
                "proration_details": {"credited_items": None},
                "subscription": None,
            },
            "subscription_item_details": None,
            "type": "invoice_item_details",
        }
        line = o.invoice_line(
            new_id("il"),
            inv["id"],
            ii["amount"],
            ii["currency"],
            ii["description"] or "",
            ii["quantity"],
            (ii["period"]["start"], ii["period"]["end"]),
            p,
            parent,
            None,
        )
        inv["lines"]["data"].append(line)
        total = sum(x["amount"] for x in inv["lines"]["data"])
        inv.update(
            subtotal=total,
            subtotal_excluding_tax=total,
            total=total,
            total_excluding_tax=total,
            amount_due=max(total, 0),
            amount_remaining=max(total, 0),
        )

    def delete_invoice_item(self, ii_id: str) -> Obj:
        """https://docs.stripe.com/api/invoiceitems/delete"""
        ii = self.get(ii_id, "invoiceitem")
        if ii["invoice"]:
            inv = self.find(ii["invoice"])
            if inv and inv["status"] != "draft":
                raise invalid("You can only delete invoice items that are not attached to a finalized invoice.")
        self.remove(ii_id)
        self.emit("invoiceitem.deleted", ii)
        return {"id": ii_id, "object": "invoiceitem", "deleted": True}

    def create_invoice(self, params: dict[str, Any]) -> Obj:
        """https://docs.stripe.com/api/invoices/create (a draft; pending items included by default)."""
        cust = self.get(require(params, "customer"), "customer", "customer")
        sub = self.get(params["subscription"], "subscription", "subscription") if params.get("subscription") else None
        now = self.now_for_customer(cust["id"])
        include = (params.get("pending_invoice_items_behavior") or "exclude") == "include"
        saved = []
        if not include:
            saved = [ii for ii in self.all("invoiceitem") if ii["customer"] == cust["id"] and ii["invoice"] is None]
            for ii in saved:
                ii["invoice"] = "__hold__"
        inv = self._create_invoice(cust, sub, [], "manual", (now, now), now)
        for ii in saved:
            ii["invoice"] = None
        inv["auto_advance"] = as_bool(params.get("auto_advance", False), "auto_advance")
        inv["collection_method"] = params.get("collection_method") or "charge_automatically"
        if inv["collection_method"] == "send_invoice":
            inv["due_date"] = opt_int(params, "due_date") or now + (opt_int(params, "days_until_due") or 30) * 86400
        inv["description"] = params.get("description") or None
        inv["default_payment_method"] = params.get("default_payment_method") or None
        apply_metadata(inv, params.get("metadata"))
        return inv

    def finalize_invoice(self, iid: str, params: dict[str, Any]) -> Obj:
        """https://docs.stripe.com/api/invoices/finalize"""
        inv = self.get(iid, "invoice")
        if inv["status"] != "draft":
            raise invalid("This invoice is already finalized, you can't re-finalize a non-draft invoice.")
        now = self.now_for_customer(inv["customer"])
        self._finalize_invoice(inv, now)
        if inv["amount_due"] == 0:
            self._mark_paid(inv, now)
        return inv

    def void_invoice(self, iid: str) -> Obj:
        """https://docs.stripe.com/api/invoices/void"""
        inv = self.get(iid, "invoice")
        if inv["status"] != "open":
            raise invalid(f"You can only void open invoices (this invoice is {inv['status']}).")
        inv.update(status="void", amount_remaining=0, next_payment_attempt=None)
        inv["status_transitions"]["voided_at"] = self.now_for_customer(inv["customer"])
        self.emit("invoice.voided", inv)
        return inv

    def invoice_payments(self, iid: str) -> list[Obj]:
        """https://docs.stripe.com/api/invoice-payment/list for one invoice, newest first."""
        return [self.objects[i] for i in reversed(self.side(iid).get("payments", [])) if i in self.objects]

    def preview_invoice(self, params: dict[str, Any]) -> Obj:
        """https://docs.stripe.com/api/invoices/create_preview (the next renewal, or a proration preview)."""
        sub = self.get(params["subscription"], "subscription", "subscription") if params.get("subscription") else None
        cid = params.get("customer") or (sub["customer"] if sub else None)
        if not cid:
            raise missing("customer")
        cust = self.get(cid, "customer", "customer")
        now = self.now_for_customer(cid)
        details: dict[str, Any] = (
            params["subscription_details"] if isinstance(params.get("subscription_details"), dict) else {}
        )
        lines: list[Obj] = []
        currency = sub["currency"] if sub else "usd"
        if sub is not None:
            if details.get("items"):
                lines = self.preview_change_lines(
                    sub,
                    details["items"],
                    details.get("proration_behavior") or "create_prorations",
                    opt_int(details, "proration_date") or now,
                )
            else:
                end = _period_end(sub)
                for si in sub["items"]["data"]:
                    rec = si["price"]["recurring"]
                    lines.append(
                        self._sub_line(
                            sub,
                            si,
                            (si["price"]["unit_amount"] or 0) * si["quantity"],
                            (end, add_interval(end, rec["interval"], rec["interval_count"])),
                        )
                    )
        for ii in self.all("invoiceitem"):
            if ii["customer"] == cid and ii["invoice"] is None and not details.get("items"):
                parent = {
                    "invoice_item_details": {
                        "invoice_item": ii["id"],
                        "proration": ii["proration"],
                        "proration_details": {"credited_items": None},
                        "subscription": None,
                    },
                    "subscription_item_details": None,
                    "type": "invoice_item_details",
                }
                p = self.find((ii["pricing"] or {}).get("price_details", {}).get("price") or "")
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
                        None,
                    )
                )
        inv = o.invoice(f"upcoming_{new_id('in')[3:]}", now, cust, lines[0]["currency"] if lines else currency)
        inv["lines"]["data"] = lines
        total = sum(line["amount"] for line in lines)
        inv.update(
            subtotal=total,
            subtotal_excluding_tax=total,
            total=total,
            total_excluding_tax=total,
            amount_due=max(total, 0),
            amount_remaining=max(total, 0),
            billing_reason="upcoming",
        )
        if sub is not None:
            inv["parent"] = {
                "quote_details": None,
                "subscription_details": {"metadata": sub["metadata"], "subscription": sub["id"]},
                "type": "subscription_details",
            }
            inv["period_start"], inv["period_end"] = _period_start(sub), _period_end(sub)
            inv["next_payment_attempt"] = _period_end(sub)
        inv["id"] = None
        return inv

    def preview_change_lines(self, sub: Obj, items: list[dict[str, Any]], behaviour: str, at: int) -> list[Obj]:
        """Invoice lines a change of items would add now (prorations, or the new period after an interval change)."""
        by_id = {si["id"]: si for si in sub["items"]["data"]}
        period = (_period_start(sub), _period_end(sub))
        lines: list[Obj] = []
        new_items = []
        for i, raw in enumerate(items):
            si = by_id.get(raw.get("id") or "")
            if si is None and raw.get("id"):
                raise invalid(
                    f"Subscription item {raw['id']} does not belong to this subscription.",
                    f"subscription_details[items][{i}][id]",
                )
            new_p = (
                self.get(raw["price"], "price", f"subscription_details[items][{i}][price]")
                if raw.get("price")
                else (si["price"] if si else None)
            )
            new_q = (
                as_int(raw["quantity"], "quantity")
                if raw.get("quantity") not in (None, "")
                else (si["quantity"] if si else 1)
            )
            new_items.append((si, new_p, new_q))
        old_interval = _interval(sub)
        new_interval = next(
            ((p["recurring"]["interval"], int(p["recurring"]["interval_count"])) for _, p, _ in new_items if p),
            old_interval,
        )
        reset = new_interval != old_interval
        for si, new_p, new_q in new_items:
            old_p, old_q = (si["price"], si["quantity"]) if si else (None, 0)
            if behaviour != "none" and (old_p is None or new_p is None or old_p["id"] != new_p["id"] or old_q != new_q):
                for line in self.proration_lines(sub, old_p, new_p, old_q, new_q, period, at, reset):
                    parent = {
                        "invoice_item_details": None,
                        "subscription_item_details": {
                            "invoice_item": None,
                            "proration": True,
                            "proration_details": {"credited_items": None},
                            "subscription": sub["id"],
                            "subscription_item": si["id"] if si else None,
                        },
                        "type": "subscription_item_details",
                    }
                    lines.append(
                        o.invoice_line(
                            new_id("il"),
                            None,
                            line["amount"],
                            sub["currency"],
                            line["description"],
                            line["quantity"],
                            line["period"],
                            line["price"],
                            parent,
                            sub["id"],
                        )
                    )
            if reset and new_p is not None:
                fake = {"id": si["id"] if si else None, "price": new_p, "quantity": new_q}
                end = add_interval(at, *new_interval)
                lines.append(self._sub_line(sub, fake, (new_p["unit_amount"] or 0) * new_q, (at, end)))
        return lines

    # ============================================================ customer portal
    def default_portal_configuration(self) -> Obj:
        """The default configuration; made on first use with every feature on (like a fresh Dashboard setup)."""
        for cfg in self.all("billing_portal.configuration"):
            if cfg["is_default"]:
                return cfg
        cfg = self.create_portal_configuration(
            {
                "features": {
                    "customer_update": {"enabled": "true", "allowed_updates": ["email", "address", "tax_id", "name"]},
                    "invoice_history": {"enabled": "true"},
                    "payment_method_update": {"enabled": "true"},
                    "subscription_cancel": {
                        "enabled": "true",
                        "mode": "at_period_end",
                        "cancellation_reason": {"enabled": "true", "options": CANCEL_REASONS},
                    },
                    "subscription_update": {
                        "enabled": "true",
                        "default_allowed_updates": ["price"],
                        "proration_behavior": "create_prorations",
                    },
                },
            },
            default=True,
        )
        self.side(cfg["id"])["auto_products"] = True
        return cfg

    def create_portal_configuration(self, params: dict[str, Any], default: bool = False) -> Obj:
        """https://docs.stripe.com/api/customer_portal/configurations/create"""
        features = params.get("features")
        if not isinstance(features, dict):
            raise missing("features")
        cfg = o.portal_configuration(new_id("bpc"), self.now())
        if default or not any(c["is_default"] for c in self.all("billing_portal.configuration")):
            cfg["is_default"] = True
        self._apply_portal_configuration(cfg, params)
        self.put(cfg)
        self.emit("billing_portal.configuration.created", cfg)
        return cfg

    def _apply_portal_configuration(self, cfg: Obj, params: dict[str, Any]) -> None:
        bp = params.get("business_profile")
        if isinstance(bp, dict):
            for key in ("headline", "privacy_policy_url", "terms_of_service_url"):
                if key in bp:
                    cfg["business_profile"][key] = bp[key] or None
        if "default_return_url" in params:
            cfg["default_return_url"] = params["default_return_url"] or None
        if "name" in params:
            cfg["name"] = params["name"] or None
        if "active" in params:
            cfg["active"] = as_bool(params["active"], "active")
        if isinstance(params.get("login_page"), dict) and "enabled" in params["login_page"]:
            enabled = as_bool(params["login_page"]["enabled"], "login_page[enabled]")
            cfg["login_page"] = {"enabled": enabled, "url": f"{self.base_url}/p/login/{cfg['id']}" if enabled else None}
        apply_metadata(cfg, params.get("metadata"))
        features = params.get("features")
        if not isinstance(features, dict):
            return
        f = cfg["features"]
        cu = features.get("customer_update")
        if isinstance(cu, dict):
            if "enabled" in cu:
                f["customer_update"]["enabled"] = as_bool(cu["enabled"], "features[customer_update][enabled]")
            if "allowed_updates" in cu:
                f["customer_update"]["allowed_updates"] = list(cu["allowed_updates"] or [])
        for name in ("invoice_history", "payment_method_update"):
            sub = features.get(name)
            if isinstance(sub, dict) and "enabled" in sub:
                f[name]["enabled"] = as_bool(sub["enabled"], f"features[{name}][enabled]")
        sc = features.get("subscription_cancel")
        if isinstance(sc, dict):
            target = f["subscription_cancel"]
            if "enabled" in sc:
                target["enabled"] = as_bool(sc["enabled"], "features[subscription_cancel][enabled]")
            if sc.get("mode"):
                if sc["mode"] not in ("at_period_end", "immediately"):
                    raise invalid("Invalid features[subscription_cancel][mode]", "features[subscription_cancel][mode]")
                target["mode"] = sc["mode"]
            if sc.get("proration_behavior"):
                target["proration_behavior"] = sc["proration_behavior"]
            cr = sc.get("cancellation_reason")
            if isinstance(cr, dict):
                if "enabled" in cr:
                    target["cancellation_reason"]["enabled"] = as_bool(
                        cr["enabled"], "features[subscription_cancel][cancellation_reason][enabled]"
                    )
                if "options" in cr:
                    target["cancellation_reason"]["options"] = list(cr["options"] or [])
        su = features.get("subscription_update")
        if isinstance(su, dict):
            target = f["subscription_update"]
            if "enabled" in su:
                target["enabled"] = as_bool(su["enabled"], "features[subscription_update][enabled]")
            if "default_allowed_updates" in su:
                target["default_allowed_updates"] = list(su["default_allowed_updates"] or [])
            if su.get("proration_behavior"):
                target["proration_behavior"] = su["proration_behavior"]
            if isinstance(su.get("schedule_at_period_end"), dict):
                conditions = su["schedule_at_period_end"].get("conditions") or []
                target["schedule_at_period_end"] = {"conditions": [{"type": c["type"]} for c in conditions]}
            if "products" in su:
                products = []
                for i, item in enumerate(su["products"] or []):
                    prod = self.get(
                        require(item, "product"), "product", f"features[subscription_update][products][{i}][product]"
                    )
                    prices = list(item.get("prices") or [])
                    for j, pid in enumerate(prices):
                        p = self.get(pid, "price", f"features[subscription_update][products][{i}][prices][{j}]")
                        if p["product"] != prod["id"]:
                            raise invalid(
                                f"The price {pid} does not belong to product {prod['id']}.",
                                f"features[subscription_update][products][{i}][prices]",
                            )
                    products.append(
                        {
                            "adjustable_quantity": {"enabled": False, "maximum": None, "minimum": 1},
                            "prices": prices,
                            "product": prod["id"],
                        }
                    )
                target["products"] = products
                self.side(cfg["id"]).pop("auto_products", None)
            if (
                target["enabled"]
                and not target["products"]
                and not self.side(cfg["id"]).get("auto_products")
                and params.get("_strict", True)
                and "products" in su
            ):
                raise invalid(
                    "You must specify at least one product when subscription_update is enabled.",
                    "features[subscription_update][products]",
                )

    def update_portal_configuration(self, cfg_id: str, params: dict[str, Any]) -> Obj:
        """https://docs.stripe.com/api/customer_portal/configurations/update"""
        cfg = self.get(cfg_id, "billing_portal.configuration")
        with self.updating(cfg, "billing_portal.configuration.updated"):
            self._apply_portal_configuration(cfg, params)
            cfg["updated"] = self.now()
        return cfg

    def portal_update_options(self, cfg: Obj) -> list[tuple[Obj, list[Obj]]]:
        """(product, prices) pairs a customer may switch to, per `features.subscription_update.products`."""
        su = cfg["features"]["subscription_update"]
        if self.side(cfg["id"]).get("auto_products") and not su["products"]:
            out: dict[str, list[Obj]] = {}
            for p in reversed(self.all("price")):
                if p["active"] and p["type"] == "recurring":
                    out.setdefault(p["product"], []).append(p)
            return [(self.objects[k], v) for k, v in out.items() if k in self.objects and self.objects[k]["active"]]
        return [
            (self.get(item["product"], "product"), [self.get(pid, "price") for pid in item["prices"] if self.find(pid)])
            for item in su["products"]
            if self.find(item["product"])
        ]

    def create_portal_session(self, params: dict[str, Any]) -> Obj:
        """https://docs.stripe.com/api/customer_portal/sessions/create (all four `flow_data` types)."""
        cid = require(params, "customer")
        cust = self.get(cid, "customer", "customer")
        cfg = (
            self.get(params["configuration"], "billing_portal.configuration", "configuration")
            if params.get("configuration")
            else self.default_portal_configuration()
        )
        return_url = params.get("return_url") or cfg["default_return_url"]
        bps = o.portal_session(new_id("bps"), self.now())
        bps.update(
            customer=cust["id"], configuration=cfg["id"], return_url=return_url, locale=params.get("locale") or None
        )
        flow_data = params.get("flow_data")
        if flow_data is not None:
            bps["flow"] = self._build_flow(flow_data, cust, cfg)
        bps["url"] = f"{self.base_url}/p/session/{bps['id']}"
        self.side(bps["id"])["secret"] = secrets.token_urlsafe(16)
        self.put(bps)
        self.emit("billing_portal.session.created", bps)
        return bps

    def _build_flow(self, fd: Any, cust: Obj, cfg: Obj) -> Obj:
        if not isinstance(fd, dict):
            raise invalid("Invalid flow_data", "flow_data")
        ftype = fd.get("type")
        if not ftype:
            raise missing("flow_data[type]")
        if ftype not in FLOW_TYPES:
            raise invalid(f"Invalid flow_data[type]: must be one of {', '.join(FLOW_TYPES)}", "flow_data[type]")
        ac_in = fd.get("after_completion") or {}
        ac_type = ac_in.get("type") or "portal_homepage"
        if ac_type not in AFTER_COMPLETION_TYPES:
            raise invalid("Invalid flow_data[after_completion][type]", "flow_data[after_completion][type]")
        after: Obj = {"hosted_confirmation": None, "redirect": None, "type": ac_type}
        if ac_type == "redirect":
            redirect = ac_in.get("redirect") or {}
            if not redirect.get("return_url"):
                raise missing("flow_data[after_completion][redirect][return_url]")
            after["redirect"] = {"return_url": redirect["return_url"]}
        elif ac_type == "hosted_confirmation":
            after["hosted_confirmation"] = {
                "custom_message": (ac_in.get("hosted_confirmation") or {}).get("custom_message")
            }
        flow: Obj = {
            "after_completion": after,
            "subscription_cancel": None,
            "subscription_update": None,
            "subscription_update_confirm": None,
            "type": ftype,
        }
        features = cfg["features"]
        if ftype == "payment_method_update":
            if not features["payment_method_update"]["enabled"]:
                raise invalid(
                    "The `payment_method_update` feature is not enabled in the portal configuration.", "flow_data[type]"
                )
            return flow
        section = fd.get(ftype) or {}
        sid = section.get("subscription") if isinstance(section, dict) else None
        if not sid:
            raise missing(f"flow_data[{ftype}][subscription]")
        sub = self.get(sid, "subscription", f"flow_data[{ftype}][subscription]")
        if sub["customer"] != cust["id"]:
            raise invalid(
                f"The subscription {sid} does not belong to the customer {cust['id']}.",
                f"flow_data[{ftype}][subscription]",
            )
        if sub["status"] not in LIVE_STATUSES:
            raise invalid(
                "You can't create a portal session that updates a canceled subscription.",
                f"flow_data[{ftype}][subscription]",
            )
        if ftype == "subscription_cancel":
            if not features["subscription_cancel"]["enabled"]:
                raise invalid(
                    "The `subscription_cancel` feature is not enabled in the portal configuration.", "flow_data[type]"
                )
            if sub["cancel_at_period_end"]:
                raise invalid(
                    "This subscription is already set to be canceled at the end of the period.",
                    "flow_data[subscription_cancel][subscription]",
                )
            retention = section.get("retention")
            flow["subscription_cancel"] = {
                "retention": {
                    "coupon_offer": {"coupon": (retention.get("coupon_offer") or {}).get("coupon")},
                    "type": retention.get("type") or "coupon_offer",
                }
                if isinstance(retention, dict)
                else None,
                "subscription": sid,
            }
        elif ftype == "subscription_update":
            if not features["subscription_update"]["enabled"]:
                raise invalid(
                    "The `subscription_update` feature is not enabled in the portal configuration.", "flow_data[type]"
                )
            flow["subscription_update"] = {"subscription": sid}
        else:
            items = section.get("items")
            if not items:
                raise missing("flow_data[subscription_update_confirm][items]")
            own = {si["id"] for si in sub["items"]["data"]}
            out_items = []
            for i, item in enumerate(items):
                if not item.get("id"):
                    raise missing(f"flow_data[subscription_update_confirm][items][{i}][id]")
                if item["id"] not in own:
                    raise invalid(
                        f"The subscription item {item['id']} does not belong to subscription {sid}.",
                        f"flow_data[subscription_update_confirm][items][{i}][id]",
                    )
                if item.get("price"):
                    self.get(item["price"], "price", f"flow_data[subscription_update_confirm][items][{i}][price]")
                entry: Obj = {"id": item["id"], "price": item.get("price") or None}
                if item.get("quantity") not in (None, ""):
                    entry["quantity"] = as_int(
                        item["quantity"], f"flow_data[subscription_update_confirm][items][{i}][quantity]"
                    )
                out_items.append(entry)
            flow["subscription_update_confirm"] = {"discounts": [], "items": out_items, "subscription": sid}
        return flow

    # ============================================================ webhook endpoints
    def create_webhook_endpoint(self, params: dict[str, Any], secret: str | None = None) -> Obj:
        """https://docs.stripe.com/api/webhook_endpoints/create (the response alone carries `secret`)."""
        url = require(params, "url")
        events = params.get("enabled_events")
        if not events:
            raise missing("enabled_events")
        we = o.webhook_endpoint(new_id("we"), self.now(), url, list(events))
        we["description"] = params.get("description") or None
        we["api_version"] = params.get("api_version") or None
        apply_metadata(we, params.get("metadata"))
        self.put(we)
        self.side(we["id"])["secret"] = secret or f"whsec_{secrets.token_hex(16)}"
        return {**we, "secret": self.side(we["id"])["secret"]}

    def update_webhook_endpoint(self, we_id: str, params: dict[str, Any]) -> Obj:
        """https://docs.stripe.com/api/webhook_endpoints/update"""
        we = self.get(we_id, "webhook_endpoint")
        if params.get("url"):
            we["url"] = params["url"]
        if params.get("enabled_events"):
            we["enabled_events"] = list(params["enabled_events"])
        if "disabled" in params:
            we["status"] = "disabled" if as_bool(params["disabled"], "disabled") else "enabled"
        if "description" in params:
            we["description"] = params["description"] or None
        apply_metadata(we, params.get("metadata"))
        self.dirty = True
        return we

    # ============================================================ portal actions (hosted pages)
    def portal_cancel(self, sub_id: str, cfg: Obj, reason: str | None, comment: str | None = None) -> Obj:
        """Cancel as the portal does: at period end or immediately, per `features.subscription_cancel.mode`."""
        sc = cfg["features"]["subscription_cancel"]
        details = {"feedback": reason or "", "comment": comment or ""}
        if sc["mode"] == "immediately":
            return self.cancel_subscription(
                sub_id,
                {
                    "prorate": "true" if sc["proration_behavior"] == "create_prorations" else "false",
                    "cancellation_details": details,
                    "invoice_now": "true" if sc["proration_behavior"] == "create_prorations" else "false",
                },
            )
        return self.update_subscription(sub_id, {"cancel_at_period_end": "true", "cancellation_details": details})

    def portal_switch(self, sub_id: str, cfg: Obj, items: list[dict[str, Any]]) -> Obj:
        """Change price/quantity as the portal does, with the configuration's `proration_behavior`."""
        behaviour = cfg["features"]["subscription_update"]["proration_behavior"]
        return self.update_subscription(sub_id, {"items": items, "proration_behavior": behaviour})
