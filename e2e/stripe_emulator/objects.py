"""Templates of Stripe API objects, shaped like API version 2026-10-28.endive.

Each builder returns a plain dict with the keys and nesting of the real object (compare
https://docs.stripe.com/api and Stripe's `fixtures3.json`); the engine fills in the values.
Deliberate omissions are listed in `omissions.py`.
"""

from __future__ import annotations

from typing import Any

Obj = dict[str, Any]


def address(src: Any = None) -> Obj:
    """https://docs.stripe.com/api/customers/object#customer_object-address"""
    src = src if isinstance(src, dict) else {}
    return {k: src.get(k) or None for k in ("city", "country", "line1", "line2", "postal_code", "state")}


def list_object(data: list[Obj], url: str, has_more: bool = False) -> Obj:
    """https://docs.stripe.com/api/pagination"""
    return {"object": "list", "data": data, "has_more": has_more, "url": url}


def customer(cid: str, created: int) -> Obj:
    """https://docs.stripe.com/api/customers/object"""
    return {
        "id": cid,
        "object": "customer",
        "address": None,
        "balance": 0,
        "created": created,
        "currency": None,
        "default_source": None,
        "delinquent": False,
        "description": None,
        "discount": None,
        "email": None,
        "invoice_prefix": cid[-8:].upper(),
        "invoice_settings": {
            "custom_fields": None,
            "default_payment_method": None,
            "footer": None,
            "rendering_options": None,
        },
        "livemode": False,
        "metadata": {},
        "name": None,
        "next_invoice_sequence": 1,
        "phone": None,
        "preferred_locales": [],
        "shipping": None,
        "tax_exempt": "none",
        "test_clock": None,
    }


def product(pid: str, created: int) -> Obj:
    """https://docs.stripe.com/api/products/object"""
    return {
        "id": pid,
        "object": "product",
        "active": True,
        "created": created,
        "default_price": None,
        "description": None,
        "images": [],
        "livemode": False,
        "marketing_features": [],
        "metadata": {},
        "name": "",
        "package_dimensions": None,
        "shippable": None,
        "statement_descriptor": None,
        "tax_code": None,
        "type": "service",
        "unit_label": None,
        "updated": created,
        "url": None,
    }


def price(pid: str, created: int) -> Obj:
    """https://docs.stripe.com/api/prices/object"""
    return {
        "id": pid,
        "object": "price",
        "active": True,
        "billing_scheme": "per_unit",
        "created": created,
        "currency": "usd",
        "custom_unit_amount": None,
        "livemode": False,
        "lookup_key": None,
        "metadata": {},
        "nickname": None,
        "product": None,
        "recurring": None,
        "tax_behavior": "unspecified",
        "tiers_mode": None,
        "transform_quantity": None,
        "type": "one_time",
        "unit_amount": 0,
        "unit_amount_decimal": "0",
    }


def recurring(interval: str, interval_count: int, trial_period_days: int | None) -> Obj:
    """https://docs.stripe.com/api/prices/object#price_object-recurring"""
    return {
        "interval": interval,
        "interval_count": interval_count,
        "meter": None,
        "trial_period_days": trial_period_days,
        "usage_type": "licensed",
    }


def plan_from_price(p: Obj) -> Obj:
    """The legacy `plan` view of a recurring price (https://docs.stripe.com/api/plans/object)."""
    rec = p.get("recurring") or {}
    return {
        "id": p["id"],
        "object": "plan",
        "active": p["active"],
        "amount": p["unit_amount"],
        "amount_decimal": p["unit_amount_decimal"],
        "billing_scheme": "per_unit",
        "created": p["created"],
        "currency": p["currency"],
        "interval": rec.get("interval"),
        "interval_count": rec.get("interval_count"),
        "livemode": False,
        "metadata": p["metadata"],
        "meter": None,
        "nickname": p["nickname"],
        "product": p["product"],
        "tiers_mode": None,
        "transform_usage": None,
        "trial_period_days": rec.get("trial_period_days"),
        "usage_type": "licensed",
    }


def card_details(brand: str, last4: str, exp_month: int, exp_year: int, funding: str, country: str) -> Obj:
    """https://docs.stripe.com/api/payment_methods/object#payment_method_object-card"""
    return {
        "brand": brand,
        "checks": {"address_line1_check": None, "address_postal_code_check": None, "cvc_check": "pass"},
        "country": country,
        "display_brand": brand,
        "exp_month": exp_month,
        "exp_year": exp_year,
        "fingerprint": f"fp{brand[:2]}{last4}emulator",
        "funding": funding,
        "generated_from": None,
        "last4": last4,
        "networks": {"available": [brand], "preferred": None},
        "regulated_status": "unregulated",
        "three_d_secure_usage": {"supported": True},
        "wallet": None,
    }


def billing_details(email: str | None = None, name: str | None = None, addr: Any = None) -> Obj:
    """https://docs.stripe.com/api/payment_methods/object#payment_method_object-billing_details"""
    return {"address": address(addr), "email": email, "name": name, "phone": None, "tax_id": None}


def payment_method(pmid: str, created: int, card: Obj, details: Obj) -> Obj:
    """https://docs.stripe.com/api/payment_methods/object"""
    return {
        "id": pmid,
        "object": "payment_method",
        "allow_redisplay": "unspecified",
        "billing_details": details,
        "card": card,
        "created": created,
        "customer": None,
        "customer_account": None,
        "livemode": False,
        "metadata": {},
        "type": "card",
    }


def subscription_item(siid: str, created: int, sub_id: str, p: Obj, quantity: int, start: int, end: int) -> Obj:
    """https://docs.stripe.com/api/subscription_items/object"""
    return {
        "id": siid,
        "object": "subscription_item",
        "billing_thresholds": None,
        "created": created,
        "current_period_end": end,
        "current_period_start": start,
        "discounts": [],
        "metadata": {},
        "plan": plan_from_price(p),
        "price": p,
        "quantity": quantity,
        "subscription": sub_id,
        "tax_rates": [],
    }


def subscription(sid: str, created: int, customer_id: str, currency: str) -> Obj:
    """https://docs.stripe.com/api/subscriptions/object"""
    return {
        "id": sid,
        "object": "subscription",
        "application": None,
        "application_fee_percent": None,
        "automatic_tax": {"disabled_reason": None, "enabled": False, "liability": None},
        "billing_cycle_anchor": created,
        "billing_cycle_anchor_config": None,
        "billing_mode": {"flexible": None, "type": "classic"},
        "billing_schedules": [],
        "billing_thresholds": None,
        "cancel_at": None,
        "cancel_at_period_end": False,
        "canceled_at": None,
        "cancellation_details": {"comment": None, "feedback": None, "reason": None},
        "collection_method": "charge_automatically",
        "created": created,
        "currency": currency,
        "customer": customer_id,
        "customer_account": None,
        "days_until_due": None,
        "default_payment_method": None,
        "default_source": None,
        "default_tax_rates": [],
        "description": None,
        "discounts": [],
        "ended_at": None,
        "invoice_settings": {
            "account_tax_ids": None,
            "custom_fields": None,
            "description": None,
            "footer": None,
            "issuer": {"type": "self"},
        },
        "items": list_object([], f"/v1/subscription_items?subscription={sid}"),
        "latest_invoice": None,
        "livemode": False,
        "managed_payments": {"enabled": False},
        "metadata": {},
        "next_pending_invoice_item_invoice": None,
        "on_behalf_of": None,
        "pause_collection": None,
        "payment_settings": {
            "payment_method_options": None,
            "payment_method_types": None,
            "save_default_payment_method": "off",
        },
        "pending_invoice_item_interval": None,
        "pending_setup_intent": None,
        "pending_update": None,
        "schedule": None,
        "start_date": created,
        "status": "incomplete",
        "test_clock": None,
        "transfer_data": None,
        "trial_end": None,
        "trial_settings": {"end_behavior": {"missing_payment_method": "create_invoice"}},
        "trial_start": None,
    }


def invoice(iid: str, created: int, cust: Obj, currency: str) -> Obj:
    """https://docs.stripe.com/api/invoices/object"""
    return {
        "id": iid,
        "object": "invoice",
        "account_country": "US",
        "account_name": None,
        "account_tax_ids": None,
        "amount_due": 0,
        "amount_overpaid": 0,
        "amount_paid": 0,
        "amount_remaining": 0,
        "amount_shipping": 0,
        "application": None,
        "attempt_count": 0,
        "attempted": False,
        "auto_advance": True,
        "automatic_tax": {
            "disabled_reason": None,
            "enabled": False,
            "liability": None,
            "provider": None,
            "status": None,
        },
        "automatically_finalizes_at": None,
        "billing_reason": "manual",
        "collection_method": "charge_automatically",
        "created": created,
        "currency": currency,
        "custom_fields": None,
        "customer": cust["id"],
        "customer_account": None,
        "customer_address": cust.get("address"),
        "customer_email": cust.get("email"),
        "customer_name": cust.get("name"),
        "customer_phone": cust.get("phone"),
        "customer_shipping": cust.get("shipping"),
        "customer_tax_exempt": cust.get("tax_exempt", "none"),
        "customer_tax_ids": [],
        "default_payment_method": None,
        "default_source": None,
        "default_tax_rates": [],
        "description": None,
        "discounts": [],
        "due_date": None,
        "effective_at": None,
        "ending_balance": None,
        "footer": None,
        "from_invoice": None,
        "hosted_invoice_url": None,
        "invoice_pdf": None,
        "issuer": {"type": "self"},
        "last_finalization_error": None,
        "latest_revision": None,
        "lines": list_object([], f"/v1/invoices/{iid}/lines"),
        "livemode": False,
        "metadata": {},
        "next_payment_attempt": None,
        "number": None,
        "on_behalf_of": None,
        "parent": None,
        "payment_settings": {"default_mandate": None, "payment_method_options": None, "payment_method_types": None},
        "period_end": created,
        "period_start": created,
        "post_payment_credit_notes_amount": 0,
        "pre_payment_credit_notes_amount": 0,
        "receipt_number": None,
        "rendering": None,
        "shipping_cost": None,
        "shipping_details": None,
        "starting_balance": 0,
        "statement_descriptor": None,
        "status": "draft",
        "status_transitions": {
            "finalized_at": None,
            "marked_uncollectible_at": None,
            "paid_at": None,
            "voided_at": None,
        },
        "subtotal": 0,
        "subtotal_excluding_tax": 0,
        "test_clock": cust.get("test_clock"),
        "total": 0,
        "total_discount_amounts": [],
        "total_excluding_tax": 0,
        "total_pretax_credit_amounts": [],
        "total_taxes": [],
        "webhooks_delivered_at": created,
    }


def invoice_line(
    lid: str,
    invoice_id: str | None,
    amount: int,
    currency: str,
    description: str,
    quantity: int,
    period: tuple[int, int],
    p: Obj | None,
    parent: Obj,
    subscription_id: str | None,
) -> Obj:
    """https://docs.stripe.com/api/invoice-line-item/object"""
    return {
        "id": lid,
        "object": "line_item",
        "amount": amount,
        "currency": currency,
        "description": description,
        "discount_amounts": [],
        "discountable": True,
        "discounts": [],
        "invoice": invoice_id,
        "livemode": False,
        "metadata": {},
        "parent": parent,
        "period": {"end": period[1], "start": period[0]},
        "pretax_credit_amounts": [],
        "pricing": {
            "price_details": {"price": p["id"], "product": p["product"]} if p else None,
            "type": "price_details",
            "unit_amount_decimal": (p["unit_amount_decimal"] if p else str(amount)),
        },
        "quantity": quantity,
        "quantity_decimal": str(quantity),
        "subscription": subscription_id,
        "subtotal": amount,
        "taxes": [],
    }


def invoiceitem(iiid: str, created: int, cust: Obj, amount: int, currency: str) -> Obj:
    """https://docs.stripe.com/api/invoiceitems/object"""
    return {
        "id": iiid,
        "object": "invoiceitem",
        "amount": amount,
        "currency": currency,
        "customer": cust["id"],
        "customer_account": None,
        "date": created,
        "description": None,
        "discountable": True,
        "discounts": [],
        "invoice": None,
        "livemode": False,
        "metadata": {},
        "net_amount": amount,
        "parent": None,
        "period": {"end": created, "start": created},
        "pricing": None,
        "proration": False,
        "quantity": 1,
        "quantity_decimal": "1",
        "tax_rates": [],
        "test_clock": cust.get("test_clock"),
    }


def invoice_payment(ipid: str, created: int, invoice_id: str, amount: int, currency: str, pi_id: str) -> Obj:
    """https://docs.stripe.com/api/invoice-payment/object"""
    return {
        "id": ipid,
        "object": "invoice_payment",
        "amount_paid": None,
        "amount_requested": amount,
        "created": created,
        "currency": currency,
        "invoice": invoice_id,
        "is_default": True,
        "livemode": False,
        "payment": {"payment_intent": pi_id, "type": "payment_intent"},
        "status": "open",
        "status_transitions": {"canceled_at": None, "paid_at": None},
    }


def payment_intent(piid: str, created: int, amount: int, currency: str) -> Obj:
    """https://docs.stripe.com/api/payment_intents/object"""
    return {
        "id": piid,
        "object": "payment_intent",
        "amount": amount,
        "amount_capturable": 0,
        "amount_details": {"tip": {}},
        "amount_received": 0,
        "application": None,
        "application_fee_amount": None,
        "automatic_payment_methods": None,
        "canceled_at": None,
        "cancellation_reason": None,
        "capture_method": "automatic",
        "client_secret": f"{piid}_secret_emulator",
        "confirmation_method": "automatic",
        "created": created,
        "currency": currency,
        "customer": None,
        "customer_account": None,
        "description": None,
        "excluded_payment_method_types": None,
        "last_payment_error": None,
        "latest_charge": None,
        "livemode": False,
        "managed_payments": {"enabled": False},
        "metadata": {},
        "next_action": None,
        "on_behalf_of": None,
        "payment_method": None,
        "payment_method_configuration_details": None,
        "payment_method_options": {},
        "payment_method_types": ["card"],
        "processing": None,
        "receipt_email": None,
        "review": None,
        "setup_future_usage": None,
        "shipping": None,
        "source": None,
        "statement_descriptor": None,
        "statement_descriptor_suffix": None,
        "status": "requires_payment_method",
        "transfer_data": None,
        "transfer_group": None,
    }


def charge(chid: str, created: int, amount: int, currency: str) -> Obj:
    """https://docs.stripe.com/api/charges/object"""
    return {
        "id": chid,
        "object": "charge",
        "amount": amount,
        "amount_captured": 0,
        "amount_refunded": 0,
        "application": None,
        "application_fee": None,
        "application_fee_amount": None,
        "balance_transaction": None,
        "billing_details": billing_details(),
        "calculated_statement_descriptor": "EMULATOR",
        "captured": False,
        "created": created,
        "currency": currency,
        "customer": None,
        "description": None,
        "disputed": False,
        "failure_balance_transaction": None,
        "failure_code": None,
        "failure_message": None,
        "fraud_details": {},
        "livemode": False,
        "metadata": {},
        "on_behalf_of": None,
        "outcome": None,
        "paid": False,
        "payment_intent": None,
        "payment_method": None,
        "payment_method_details": None,
        "receipt_email": None,
        "receipt_number": None,
        "receipt_url": None,
        "refunded": False,
        "refunds": list_object([], f"/v1/charges/{chid}/refunds"),
        "review": None,
        "shipping": None,
        "source": None,
        "source_transfer": None,
        "statement_descriptor": None,
        "statement_descriptor_suffix": None,
        "status": "pending",
        "transfer_data": None,
        "transfer_group": None,
    }


def charge_card_details(card: Obj, amount: int) -> Obj:
    """https://docs.stripe.com/api/charges/object#charge_object-payment_method_details-card"""
    return {
        "card": {
            "amount_authorized": amount,
            "authorization_code": None,
            "brand": card["brand"],
            "checks": card["checks"],
            "country": card["country"],
            "exp_month": card["exp_month"],
            "exp_year": card["exp_year"],
            "extended_authorization": {"status": "disabled"},
            "fingerprint": card["fingerprint"],
            "funding": card["funding"],
            "incremental_authorization": {"status": "unavailable"},
            "installments": None,
            "last4": card["last4"],
            "mandate": None,
            "multicapture": {"status": "unavailable"},
            "network": card["brand"],
            "network_token": {"used": False},
            "network_transaction_id": None,
            "overcapture": {"maximum_amount_capturable": amount, "status": "unavailable"},
            "regulated_status": "unregulated",
            "three_d_secure": None,
            "transaction_link_id": None,
            "wallet": None,
        },
        "type": "card",
    }


def refund(reid: str, created: int, amount: int, currency: str) -> Obj:
    """https://docs.stripe.com/api/refunds/object"""
    return {
        "id": reid,
        "object": "refund",
        "amount": amount,
        "balance_transaction": None,
        "charge": None,
        "created": created,
        "currency": currency,
        "customer": None,
        "customer_account": None,
        "destination_details": {"card": {"type": "refund"}, "type": "card"},
        "metadata": {},
        "payment_intent": None,
        "payment_method": None,
        "reason": None,
        "receipt_number": None,
        "source_transfer_reversal": None,
        "status": "succeeded",
        "transfer_reversal": None,
    }


def setup_intent(seti: str, created: int) -> Obj:
    """https://docs.stripe.com/api/setup_intents/object"""
    return {
        "id": seti,
        "object": "setup_intent",
        "application": None,
        "automatic_payment_methods": None,
        "cancellation_reason": None,
        "client_secret": f"{seti}_secret_emulator",
        "created": created,
        "customer": None,
        "description": None,
        "excluded_payment_method_types": None,
        "flow_directions": None,
        "last_setup_error": None,
        "latest_attempt": None,
        "livemode": False,
        "mandate": None,
        "metadata": {},
        "next_action": None,
        "on_behalf_of": None,
        "payment_method": None,
        "payment_method_configuration_details": None,
        "payment_method_options": {},
        "payment_method_types": ["card"],
        "single_use_mandate": None,
        "status": "requires_payment_method",
        "usage": "off_session",
    }


def checkout_session(csid: str, created: int) -> Obj:
    """https://docs.stripe.com/api/checkout/sessions/object"""
    return {
        "id": csid,
        "object": "checkout.session",
        "adaptive_pricing": {"enabled": False},
        "after_expiration": None,
        "allow_promotion_codes": None,
        "amount_subtotal": None,
        "amount_total": None,
        "automatic_tax": {"enabled": False, "liability": None, "provider": None, "status": None},
        "billing_address_collection": None,
        "cancel_url": None,
        "client_reference_id": None,
        "client_secret": None,
        "collected_information": None,
        "consent": None,
        "consent_collection": None,
        "created": created,
        "currency": None,
        "currency_conversion": None,
        "custom_fields": [],
        "custom_text": {
            "after_submit": None,
            "shipping_address": None,
            "submit": None,
            "terms_of_service_acceptance": None,
        },
        "customer": None,
        "customer_account": None,
        "customer_creation": None,
        "customer_details": None,
        "customer_email": None,
        "discounts": [],
        "expires_at": created + 86400,
        "integration_identifier": None,
        "invoice": None,
        "invoice_creation": None,
        "livemode": False,
        "locale": None,
        "managed_payments": {"enabled": False},
        "metadata": {},
        "mode": "payment",
        "origin_context": None,
        "payment_intent": None,
        "payment_link": None,
        "payment_method_collection": "always",
        "payment_method_configuration_details": None,
        "payment_method_options": {},
        "payment_method_types": ["card"],
        "payment_status": "unpaid",
        "permissions": None,
        "phone_number_collection": {"enabled": False},
        "recovered_from": None,
        "saved_payment_method_options": None,
        "setup_intent": None,
        "shipping_address_collection": None,
        "shipping_cost": None,
        "shipping_options": [],
        "status": "open",
        "submit_type": None,
        "subscription": None,
        "success_url": None,
        "total_details": {"amount_discount": 0, "amount_shipping": 0, "amount_tax": 0},
        "ui_mode": "hosted",
        "url": None,
        "wallet_options": None,
    }


def checkout_customer_details(email: str | None, name: str | None, addr: Any = None) -> Obj:
    """https://docs.stripe.com/api/checkout/sessions/object#checkout_session_object-customer_details"""
    return {
        "address": address(addr),
        "business_name": None,
        "email": email,
        "individual_name": None,
        "name": name,
        "phone": None,
        "tax_exempt": "none",
        "tax_ids": [],
    }


def checkout_item(liid: str, p: Obj, quantity: int, description: str) -> Obj:
    """https://docs.stripe.com/api/checkout/sessions/line_items"""
    amount = (p["unit_amount"] or 0) * quantity
    return {
        "id": liid,
        "object": "item",
        "adjustable_quantity": None,
        "amount_discount": 0,
        "amount_subtotal": amount,
        "amount_tax": 0,
        "amount_total": amount,
        "currency": p["currency"],
        "description": description,
        "metadata": {},
        "price": p,
        "quantity": quantity,
    }


def portal_configuration(bpcid: str, created: int) -> Obj:
    """https://docs.stripe.com/api/customer_portal/configurations/object"""
    return {
        "id": bpcid,
        "object": "billing_portal.configuration",
        "active": True,
        "application": None,
        "business_profile": {"headline": None, "privacy_policy_url": None, "terms_of_service_url": None},
        "created": created,
        "default_return_url": None,
        "features": {
            "customer_update": {"allowed_updates": [], "enabled": False},
            "invoice_history": {"enabled": False},
            "payment_method_update": {"enabled": False, "payment_method_configuration": None},
            "subscription_cancel": {
                "cancellation_reason": {"enabled": False, "options": []},
                "enabled": False,
                "mode": "at_period_end",
                "proration_behavior": "none",
            },
            "subscription_update": {
                "billing_cycle_anchor": None,
                "default_allowed_updates": [],
                "enabled": False,
                "products": [],
                "proration_behavior": "none",
                "schedule_at_period_end": {"conditions": []},
                "trial_update_behavior": "end_trial",
            },
        },
        "is_default": False,
        "livemode": False,
        "login_page": {"enabled": False, "url": None},
        "metadata": {},
        "name": None,
        "updated": created,
    }


def portal_session(bpsid: str, created: int) -> Obj:
    """https://docs.stripe.com/api/customer_portal/sessions/object"""
    return {
        "id": bpsid,
        "object": "billing_portal.session",
        "configuration": None,
        "created": created,
        "customer": None,
        "customer_account": None,
        "flow": None,
        "livemode": False,
        "locale": None,
        "on_behalf_of": None,
        "return_url": None,
        "url": None,
    }


def event(evid: str, created: int, type_: str, obj: Obj, api_version: str) -> Obj:
    """https://docs.stripe.com/api/events/object"""
    return {
        "id": evid,
        "object": "event",
        "api_version": api_version,
        "created": created,
        "data": {"object": obj},
        "livemode": False,
        "pending_webhooks": 0,
        "request": {"id": None, "idempotency_key": None},
        "type": type_,
    }


def webhook_endpoint(weid: str, created: int, url: str, enabled_events: list[str]) -> Obj:
    """https://docs.stripe.com/api/webhook_endpoints/object"""
    return {
        "id": weid,
        "object": "webhook_endpoint",
        "api_version": None,
        "application": None,
        "created": created,
        "description": None,
        "enabled_events": enabled_events,
        "livemode": False,
        "metadata": {},
        "status": "enabled",
        "url": url,
    }


def test_clock(clid: str, created: int, frozen_time: int, name: str | None) -> Obj:
    """https://docs.stripe.com/api/test_clocks/object"""
    return {
        "id": clid,
        "object": "test_helpers.test_clock",
        "created": created,
        "deletes_after": created + 30 * 86400,
        "frozen_time": frozen_time,
        "livemode": False,
        "name": name,
        "status": "ready",
        "status_details": {},
    }


def tax_id(txid: str, created: int, customer_id: str, type_: str, value: str) -> Obj:
    """https://docs.stripe.com/api/tax_ids/object"""
    return {
        "id": txid,
        "object": "tax_id",
        "country": value[:2].upper() if type_ == "eu_vat" else None,
        "created": created,
        "customer": customer_id,
        "customer_account": None,
        "livemode": False,
        "owner": {"customer": customer_id, "customer_account": None, "type": "customer"},
        "type": type_,
        "value": value,
        "verification": {"status": "pending", "verified_address": None, "verified_name": None},
    }
