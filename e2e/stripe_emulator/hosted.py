"""The hosted pages: Checkout, the Customer Portal, hosted invoices, invoice PDFs and receipts.

Plain HTML forms that work without JavaScript, with a `<label for>` on every input, modelled on
https://docs.stripe.com/payments/checkout and https://docs.stripe.com/customer-management.

Like Stripe's, the pages speak the session's `locale` (`auto` or none: the browser's
`Accept-Language`; invoices and receipts: the customer's `preferred_locales`), in the languages
the portal app has catalogs for (`app/translations`: en, de, fr, es); any other is English.
"""

from __future__ import annotations

import re
from contextvars import ContextVar
from dataclasses import dataclass, field
from datetime import UTC, datetime
from functools import lru_cache
from pathlib import Path
from typing import Any
from urllib.parse import parse_qsl, quote

from babel.dates import format_date
from babel.support import NullTranslations, Translations
from jinja2 import Environment, FileSystemLoader, select_autoescape

from .engine import LIVE_STATUSES, _period_end, money
from .errors import StripeError
from .pdf import invoice_pdf
from .sessions import CANCEL_REASONS, StripeEmulator
from .store import Obj

TRANSLATIONS_DIR = Path(__file__).resolve().parents[2] / "app" / "translations"
PAGE_LANGUAGES = ("en", "de", "fr", "es")
_page_language: ContextVar[str] = ContextVar("emulator_page_language", default="en")
_page_locale: ContextVar[str] = ContextVar("emulator_page_locale", default="en_US")


def N_(message: str) -> str:
    """Mark `message` for extraction; translated where it is shown."""
    return message


@lru_cache(maxsize=8)
def _catalog(language: str) -> NullTranslations:
    return Translations.load(str(TRANSLATIONS_DIR), [language], domain="messages")


def _(message: str, /, **variables: Any) -> str:
    """`message` in the page's language, `%(name)s` placeholders filled from `variables`."""
    text = _catalog(_page_language.get()).ugettext(message)
    return text % variables if variables else text


def tr(message: str, /, **variables: Any) -> str:
    """`_` for a message held in a variable (marked with `N_` where it is written)."""
    return _(message, **variables)


def _ngettext(singular: str, plural: str, n: int) -> str:
    return _catalog(_page_language.get()).ungettext(singular, plural, n)


def use_locale(stripe_locale: str | None, accept_language: str | None = None) -> None:
    """Speak `stripe_locale` (`de`, `fr-CA`, `es-419`) on this page; `auto`/None: the first language of
    `accept_language` the pages know; English otherwise. Money and dates follow the same locale."""
    tags = [stripe_locale] if stripe_locale and stripe_locale != "auto" else []
    for part in (accept_language or "")[:512].split(","):
        tag = part.split(";")[0].strip()
        if tag and tag != "*":
            tags.append(tag)
    for tag in tags:
        language = tag.replace("_", "-").split("-")[0].lower()
        if language in PAGE_LANGUAGES:
            region = tag.replace("_", "-").split("-")[1] if "-" in tag.replace("_", "-") else ""
            _page_language.set(language)
            _page_locale.set(f"{language}_{region.upper()}" if region.isalpha() and len(region) == 2 else language)
            return
    _page_language.set("en")
    _page_locale.set("en_US")


def local_money(amount: int, currency: str) -> str:
    """`money` in the page's locale: 1999 usd → "$19.99" (en), "19,99 $" (de)."""
    return money(amount, currency, locale=_page_locale.get())


REASON_LABELS = {
    "too_expensive": N_("It's too expensive"),
    "missing_features": N_("Some features are missing"),
    "switched_service": N_("I'm switching to a different service"),
    "unused": N_("I don't use the service enough"),
    "customer_service": N_("Customer service was less than expected"),
    "too_complex": N_("Ease of use was less than expected"),
    "low_quality": N_("Quality was less than expected"),
    "other": N_("Other reason"),
}
TAX_TYPES = ["eu_vat", "gb_vat", "us_ein", "au_abn", "ca_bn", "ch_vat", "no_vat", "in_gst"]


@dataclass
class Page:
    """An HTML (or PDF) answer or a redirect."""

    status: int = 200
    body: bytes = b""
    content_type: str = "text/html; charset=utf-8"
    headers: list[tuple[str, str]] = field(default_factory=list)


def redirect(url: str) -> Page:
    """A 303 See Other to `url` (Post/Redirect/Get)."""
    return Page(303, b"", headers=[("location", url)])


def day(ts: int | None) -> str:
    """Unix seconds → "January 5, 2027"."""
    if not ts:
        return ""
    return str(format_date(datetime.fromtimestamp(ts, UTC), format="long", locale=_page_locale.get()))


INTERVALS = {
    "day": (N_("%(amount)s per day"), N_("%(amount)s every %(count)s days")),
    "week": (N_("%(amount)s per week"), N_("%(amount)s every %(count)s weeks")),
    "month": (N_("%(amount)s per month"), N_("%(amount)s every %(count)s months")),
    "year": (N_("%(amount)s per year"), N_("%(amount)s every %(count)s years")),
}


def price_label(p: Obj) -> str:
    """ "$10.00 per month", "$100.00 per year", "$5.00" for one-time prices (in the page's language)."""
    amount = local_money(p["unit_amount"] or 0, p["currency"])
    rec = p.get("recurring")
    if not rec:
        return amount
    count = rec["interval_count"]
    one, several = INTERVALS.get(rec["interval"], INTERVALS["month"])
    return tr(one, amount=amount) if count == 1 else tr(several, amount=amount, count=count)


# Stripe's hosted pages show card errors in the page's language; the API's messages stay English.
CARD_ERROR_MESSAGES: dict[str, str] = {
    "incomplete_expiry": N_("Your card's expiration date is incomplete."),
    "invalid_expiry_month": N_("Your card's expiration month is invalid."),
    "invalid_expiry_year": N_("Your card's expiration year is in the past."),
    "incomplete_cvc": N_("Your card's security code is incomplete."),
    "incorrect_number": N_("Your card number is invalid."),
    "insufficient_funds": N_("Your card has insufficient funds."),
    "expired_card": N_("Your card has expired."),
    "generic_decline": N_("Your card was declined."),
    "lost_card": N_("Your card was declined."),
    "card_declined": N_("Your card was declined."),
}


def shown_error(err: StripeError) -> str:
    """An error as a hosted page shows it: a card error in the page's language (by decline code, then
    error code), anything else as the API wrote it."""
    for key in (err.extra.get("decline_code"), err.code):
        if isinstance(key, str) and key in CARD_ERROR_MESSAGES:
            return tr(CARD_ERROR_MESSAGES[key])
    return err.message


def parse_expiry(value: str) -> tuple[int, int]:
    """ "12 / 34", "12/2034" or "1234" → (12, 2034); raises StripeError like Stripe.js's messages."""
    digits = re.sub(r"\D", "", value or "")
    if len(digits) not in (4, 6):
        raise StripeError(
            "Your card's expiration date is incomplete.", status=402, type="card_error", code="incomplete_expiry"
        )
    month, year = int(digits[:2]), int(digits[2:])
    year = year + 2000 if year < 100 else year
    if not 1 <= month <= 12:
        raise StripeError(
            "Your card's expiration month is invalid.", status=402, type="card_error", code="invalid_expiry_month"
        )
    now = datetime.now(UTC)
    if (year, month) < (now.year, now.month):
        raise StripeError(
            "Your card's expiration year is in the past.", status=402, type="card_error", code="invalid_expiry_year"
        )
    return month, year


def check_cvc(value: str) -> None:
    """Stripe.js refuses a CVC that is not 3 or 4 digits."""
    if not re.fullmatch(r"\d{3,4}", (value or "").strip()):
        raise StripeError(
            "Your card's security code is incomplete.", status=402, type="card_error", code="incomplete_cvc"
        )


class HostedPages:
    """Routes `/c/pay/...`, `/p/session/...`, `/invoices/...` and `/receipts/...`."""

    def __init__(self, em: StripeEmulator) -> None:
        self.em = em
        self.accept_language: str | None = None
        self.env = Environment(
            loader=FileSystemLoader(Path(__file__).parent / "templates"),
            autoescape=select_autoescape(["html"]),
            extensions=["jinja2.ext.i18n"],
        )
        self.env.policies["ext.i18n.trimmed"] = True
        self.env.install_gettext_callables(  # type: ignore[attr-defined]
            lambda message: _catalog(_page_language.get()).ugettext(message), _ngettext, newstyle=True
        )

    @property
    def business(self) -> str:
        return self.em.config.business_name

    def render(self, template: str, status: int = 200, **context: Any) -> Page:
        """Render a template with the business name in context."""
        context.setdefault("business", self.business)
        context.setdefault("lang", _page_locale.get().replace("_", "-"))
        return Page(status, self.env.get_template(template).render(**context).encode())

    def handle(
        self, method: str, path: str, query: str, body: bytes, accept_language: str | None = None
    ) -> Page | None:
        """Answer a hosted-page request, or None when the path is not a hosted page."""
        self.accept_language = accept_language
        use_locale(None, accept_language)
        form = dict(parse_qsl(body.decode("utf-8", "replace"), keep_blank_values=True)) if body else {}
        args = dict(parse_qsl(query, keep_blank_values=True))
        try:
            if m := re.fullmatch(r"/c/pay/([^/]+)", path):
                return self.checkout(method, m.group(1), form)
            if m := re.fullmatch(r"/p/session/([^/]+)(/.*)?", path):
                return self.portal(method, m.group(1), m.group(2) or "", form, args)
            if m := re.fullmatch(r"/invoices/([^/]+)(/pdf)?", path):
                return self.invoice(method, m.group(1), bool(m.group(2)), form)
            if m := re.fullmatch(r"/receipts/([^/]+)", path):
                return self.receipt(m.group(1))
        except StripeError as err:
            if err.status == 404:
                return self.render(
                    "portal_flow.html",
                    404,
                    title=_("Not found"),
                    heading=_("This page could not be found"),
                    error=err.message,
                )
            raise
        return None

    # ============================================================ checkout
    def checkout(self, method: str, cs_id: str, form: dict[str, str]) -> Page:
        """GET shows the Checkout page; POST pays, then 303 to `success_url` or re-renders with the error."""
        cs = self.em.get(cs_id, "checkout.session")
        use_locale(cs["locale"], self.accept_language)
        error = None
        if method == "POST" and cs["status"] == "open":
            try:
                month, year = parse_expiry(form.get("cardExpiry", ""))
                check_cvc(form.get("cardCvc", ""))
                # A Customer's email is fixed on the page; without one the person types it (Stripe stores it).
                email = self._customer_email(cs) or form.get("email", "").strip()
                if not re.fullmatch(r"[^@\s]+@[^@\s]+\.[^@\s]+", email):
                    raise StripeError(_("Your email address is invalid."), status=400, code="email_invalid")
                self.em.complete_checkout(
                    cs_id,
                    email=email,
                    number=form.get("cardNumber", ""),
                    exp_month=month,
                    exp_year=year,
                    name=form.get("billingName") or None,
                )
                return redirect(str(cs["success_url"]).replace("{CHECKOUT_SESSION_ID}", cs["id"]))
            except StripeError as err:
                error = shown_error(err)
        items = [
            {
                **it,
                "display": price_label(it["price"])
                if it["quantity"] == 1
                else f"{local_money(it['amount_total'], it['currency'])}",
            }
            for it in self.em.checkout_line_items(cs_id)
        ]
        total = local_money(cs["amount_total"] or 0, cs["currency"] or "usd")
        names = ", ".join(it["description"] for it in items)
        heading = {
            "subscription": _("Subscribe to %(names)s", names=names),
            "payment": _("Pay %(business)s", business=self.business),
            "setup": _("Save your card for future payments"),
        }[cs["mode"]]
        button = {"subscription": _("Subscribe"), "payment": _("Pay"), "setup": _("Save card")}[cs["mode"]]
        email = self._customer_email(cs) or (cs["customer_details"] or {}).get("email") or cs["customer_email"]
        return self.render(
            "checkout.html",
            402 if error else 200,
            title=_("%(business)s – Checkout", business=self.business),
            session=cs,
            items=items,
            total=total,
            heading=heading,
            button=button,
            error=error,
            email=self._customer_email(cs) or form.get("email") or email,
            email_locked=bool(self._customer_email(cs)),
            form=form if error else {},
            action=f"/c/pay/{cs_id}",
        )

    def _customer_email(self, cs: Obj) -> str | None:
        """The email of the session's Customer, when it has one (then Checkout shows it read-only)."""
        cust = self.em.find(cs["customer"]) if cs["customer"] else None
        return (cust or {}).get("email") or None

    # ============================================================ customer portal
    def portal(self, method: str, bps_id: str, rest: str, form: dict[str, str], args: dict[str, str]) -> Page:
        """The Customer Portal: homepage and each flow, per the session's configuration."""
        bps = self.em.get(bps_id, "billing_portal.session")
        cfg = self.em.get(bps["configuration"], "billing_portal.configuration")
        cust = self.em.get(bps["customer"], "customer")
        use_locale(bps["locale"], self.accept_language)
        base = f"/p/session/{bps_id}"
        features = cfg["features"]
        flow = bps["flow"]
        side = self.em.side(bps_id)
        if rest in ("", "/"):
            if flow and not side.get("flow_started"):
                side["flow_started"] = True
                section = flow.get(flow["type"]) or {}
                target = {
                    "payment_method_update": "/payment-method",
                    "subscription_cancel": f"/subscriptions/{section.get('subscription')}/cancel",
                    "subscription_update": f"/subscriptions/{section.get('subscription')}/update",
                    "subscription_update_confirm": f"/subscriptions/{section.get('subscription')}/confirm",
                }[flow["type"]]
                return redirect(base + target)
            return self.portal_home(bps, cfg, cust, args.get("message"))
        if rest == "/done":
            return self.render(
                "portal_flow.html",
                title=_("Done"),
                kind="done",
                heading=_("Done"),
                message=tr(side.get("done_message") or N_("Your changes have been saved.")),
                return_url=bps["return_url"],
            )
        if rest == "/payment-method" and features["payment_method_update"]["enabled"]:
            return self.portal_payment_method(method, bps, cust, form)
        if rest == "/billing" and features["customer_update"]["enabled"]:
            return self.portal_billing(method, bps, cfg, cust, form)
        if m := re.fullmatch(r"/subscriptions/([^/]+)/(cancel|renew|update|update/confirm|confirm)", rest):
            sub = self.em.get(m.group(1), "subscription")
            if sub["customer"] != cust["id"]:
                return self.render(
                    "portal_flow.html", 404, title=_("Not found"), heading=_("This page could not be found")
                )
            action = m.group(2)
            if action == "cancel" and features["subscription_cancel"]["enabled"]:
                return self.portal_cancel(method, bps, cfg, sub, form)
            if action == "renew" and method == "POST":
                self.em.update_subscription(sub["id"], {"cancel_at_period_end": "false"})
                return redirect(f"{base}?message=" + quote(N_("Your subscription has been renewed.")))
            if action == "update" and features["subscription_update"]["enabled"]:
                return self.portal_update(bps, cfg, sub)
            if action == "update/confirm" and features["subscription_update"]["enabled"]:
                current = sub["items"]["data"][0]
                item: dict[str, Any] = {"id": current["id"], "price": form.get("price") or args.get("price") or ""}
                quantity = form.get("quantity") or args.get("quantity") or ""
                if quantity and "quantity" in features["subscription_update"]["default_allowed_updates"]:
                    item["quantity"] = max(1, int(quantity)) if quantity.isdigit() else current["quantity"]
                if not item["price"] and "quantity" in item:
                    item["price"] = current["price"]["id"]
                return self.portal_confirm(
                    method,
                    bps,
                    cfg,
                    sub,
                    [item],
                    "subscription_update",
                )
            if action == "confirm" and flow and flow["type"] == "subscription_update_confirm":
                items = [
                    {k: v for k, v in item.items() if v is not None}
                    for item in flow["subscription_update_confirm"]["items"]
                ]
                return self.portal_confirm(method, bps, cfg, sub, items, "subscription_update_confirm")
        return self.render(
            "portal_flow.html",
            404,
            title=_("Not found"),
            heading=_("This page could not be found"),
            back_url=base,
            back_label=_("Back"),
        )

    def _sub_view(self, sub: Obj, base: str, features: Obj, options: bool) -> dict[str, Any]:
        item = sub["items"]["data"][0]
        prod = self.em.find(item["price"]["product"]) or {"name": item["price"]["product"]}
        canceling = sub["cancel_at_period_end"] or sub["cancel_at"]
        return {
            "name": prod["name"],
            "price": price_label(item["price"]),
            "quantity": item["quantity"],
            "status": sub["status"],
            "status_label": tr(SUBSCRIPTION_STATUSES[sub["status"]])
            if sub["status"] in SUBSCRIPTION_STATUSES
            else sub["status"],
            "renew_date": day(_period_end(sub)),
            "cancel_date": day(sub["cancel_at"]) if canceling else None,
            "can_update": features["subscription_update"]["enabled"] and options and not canceling,
            "can_cancel": features["subscription_cancel"]["enabled"] and not canceling,
            "can_renew": bool(canceling),
            "update_url": f"{base}/subscriptions/{sub['id']}/update",
            "cancel_url": f"{base}/subscriptions/{sub['id']}/cancel",
            "renew_url": f"{base}/subscriptions/{sub['id']}/renew",
        }

    def portal_home(self, bps: Obj, cfg: Obj, cust: Obj, message: str | None) -> Page:
        """The portal homepage: subscriptions, payment methods, billing details, invoice history."""
        base = f"/p/session/{bps['id']}"
        features = cfg["features"]
        has_options = bool(self.em.portal_update_options(cfg))
        subs = [
            self._sub_view(s, base, features, has_options)
            for s in self.em.all("subscription")
            if s["customer"] == cust["id"] and s["status"] in LIVE_STATUSES
        ]
        default_pm = cust["invoice_settings"]["default_payment_method"]
        pms = [
            {
                "brand": pm["card"]["brand"].title(),
                "last4": pm["card"]["last4"],
                "exp": f"{pm['card']['exp_month']:02d}/{pm['card']['exp_year']}",
                "default": pm["id"] == default_pm,
            }
            for pm in self.em.all("payment_method")
            if pm["customer"] == cust["id"]
        ]
        invoices = [
            {
                "date": day(i["created"]),
                "amount": local_money(i["total"], i["currency"]),
                "status": (
                    tr(INVOICE_STATUSES[i["status"]]) if i["status"] in INVOICE_STATUSES else i["status"]
                ).title(),
                "url": i["hosted_invoice_url"],
                "pdf": i["invoice_pdf"],
                "number": i["number"],
            }
            for i in self.em.all("invoice")
            if i["customer"] == cust["id"] and i["status"] in ("open", "paid", "uncollectible")
        ]
        addr = cust["address"] or {}
        address = ", ".join(
            str(addr[k]) for k in ("line1", "line2", "postal_code", "city", "state", "country") if addr.get(k)
        )
        bp = cfg["business_profile"]
        return self.render(
            "portal_home.html",
            title=_("%(business)s – Billing", business=self.business),
            return_url=bps["return_url"],
            headline=tr(bp["headline"]) if bp["headline"] else None,
            message=tr(message) if message else None,
            subscriptions=subs,
            features=features,
            payment_methods=pms,
            pm_url=f"{base}/payment-method",
            customer=cust,
            address=address,
            tax_ids=self.em.tax_ids_of(cust["id"]),
            billing_url=f"{base}/billing",
            invoices=invoices,
            privacy=bp["privacy_policy_url"],
            terms=bp["terms_of_service_url"],
        )

    def _finish(self, bps: Obj, flow_types: tuple[str, ...], message: str) -> Page:
        """Where to go after an action: the flow's `after_completion`, else back to the homepage."""
        flow = bps["flow"]
        base = f"/p/session/{bps['id']}"
        if flow and flow["type"] in flow_types:
            after = flow["after_completion"]
            if after["type"] == "redirect":
                return redirect(after["redirect"]["return_url"])
            if after["type"] == "hosted_confirmation":
                custom = (after["hosted_confirmation"] or {}).get("custom_message")
                self.em.side(bps["id"])["done_message"] = custom or message
                return redirect(f"{base}/done")
        return redirect(f"{base}?message=" + quote(message))

    def _back(self, bps: Obj) -> tuple[str, str]:
        if bps["flow"] and bps["return_url"]:
            return bps["return_url"], _("Return to %(business)s", business=self.business)
        return f"/p/session/{bps['id']}", _("Back")

    def portal_payment_method(self, method: str, bps: Obj, cust: Obj, form: dict[str, str]) -> Page:
        """Add a card and make it the default for the customer and their subscriptions."""
        error = None
        if method == "POST":
            try:
                month, year = parse_expiry(form.get("cardExpiry", ""))
                check_cvc(form.get("cardCvc", ""))
                pm = self.em.payment_method_from_card(
                    form.get("cardNumber", ""), month, year, form.get("billingName") or None, cust["email"]
                )
                try:
                    self.em.attach_payment_method(pm["id"], {"customer": cust["id"]})
                except StripeError:
                    self.em.remove(pm["id"])
                    raise
                self.em.set_default_payment_method(cust["id"], pm["id"])
                return self._finish(bps, ("payment_method_update",), N_("Your payment method has been updated."))
            except StripeError as err:
                error = shown_error(err)
        back_url, back_label = self._back(bps)
        return self.render(
            "portal_flow.html",
            402 if error else 200,
            title=_("Update payment method"),
            kind="payment_method",
            heading=_("Update payment method"),
            action=f"/p/session/{bps['id']}/payment-method",
            error=error,
            back_url=back_url,
            back_label=back_label,
        )

    def portal_billing(self, method: str, bps: Obj, cfg: Obj, cust: Obj, form: dict[str, str]) -> Page:
        """Update the allowed customer details (email, name, phone, address, tax id)."""
        allowed = cfg["features"]["customer_update"]["allowed_updates"]
        error = None
        tax_ids = self.em.tax_ids_of(cust["id"])
        if method == "POST":
            params: dict[str, Any] = {}
            for key in ("name", "email", "phone"):
                if key in allowed and key in form:
                    params[key] = form[key].strip()
            if "address" in allowed:
                address = {
                    k: form.get(k, "").strip() for k in ("line1", "line2", "city", "postal_code", "state", "country")
                }
                # Stripe's portal leaves a customer without an address alone when the form stays blank.
                if any(address.values()) or cust.get("address"):
                    params["address"] = address
            try:
                if (
                    params.get("email") is not None
                    and params["email"]
                    and not re.fullmatch(r"[^@\s]+@[^@\s]+\.[^@\s]+", params["email"])
                ):
                    raise StripeError(_("Invalid email address."), param="email")
                self.em.update_customer(cust["id"], params)
                if "tax_id" in allowed:
                    value = form.get("tax_id_value", "").strip()
                    current = tax_ids[0] if tax_ids else None
                    if current and (
                        not value or value != current["value"] or form.get("tax_id_type") != current["type"]
                    ):
                        self.em.delete_tax_id(cust["id"], current["id"])
                    if value and (
                        not current or value != current["value"] or form.get("tax_id_type") != current["type"]
                    ):
                        self.em.create_tax_id(cust["id"], {"type": form.get("tax_id_type") or "eu_vat", "value": value})
                return self._finish(bps, (), N_("Your billing information has been updated."))
            except StripeError as err:
                error = shown_error(err)
        back_url, back_label = self._back(bps)
        return self.render(
            "portal_flow.html",
            400 if error else 200,
            title=_("Update information"),
            kind="billing",
            heading=_("Update information"),
            action=f"/p/session/{bps['id']}/billing",
            allowed=allowed,
            customer=cust,
            addr=cust["address"] or {},
            tax_types=TAX_TYPES,
            current_tax_type=tax_ids[0]["type"] if tax_ids else "eu_vat",
            current_tax_value=tax_ids[0]["value"] if tax_ids else "",
            error=error,
            back_url=back_url,
            back_label=back_label,
        )

    def portal_cancel(self, method: str, bps: Obj, cfg: Obj, sub: Obj, form: dict[str, str]) -> Page:
        """Cancel with a reason; at period end or immediately per `features.subscription_cancel.mode`."""
        sc = cfg["features"]["subscription_cancel"]
        if method == "POST":
            reason = form.get("reason") or None
            self.em.portal_cancel(sub["id"], cfg, reason, form.get("comment") or None)
            return self._finish(bps, ("subscription_cancel",), N_("Your subscription has been canceled."))
        reasons = (
            [
                (r, tr(REASON_LABELS[r]) if r in REASON_LABELS else r)
                for r in (sc["cancellation_reason"]["options"] or CANCEL_REASONS)
            ]
            if sc["cancellation_reason"]["enabled"]
            else []
        )
        view = self._sub_view(sub, "", cfg["features"], False)
        if sc["mode"] == "immediately":
            effect = _(
                "Your %(name)s subscription (%(price)s) will be canceled immediately.",
                name=view["name"],
                price=view["price"],
            )
        else:
            effect = _(
                "Your %(name)s subscription (%(price)s) will be canceled, but is still available until the end "
                "of your billing period on %(date)s.",
                name=view["name"],
                price=view["price"],
                date=day(_period_end(sub)),
            )
        back_url, back_label = self._back(bps)
        return self.render(
            "portal_flow.html",
            title=_("Cancel subscription"),
            kind="cancel",
            heading=_("Cancel your subscription"),
            sub=view,
            reasons=reasons,
            cancel_effect=effect,
            action=f"/p/session/{bps['id']}/subscriptions/{sub['id']}/cancel",
            back_url=back_url,
            back_label=back_label,
        )

    def portal_update(self, bps: Obj, cfg: Obj, sub: Obj) -> Page:
        """Choose another price among `features.subscription_update.products`."""
        current = sub["items"]["data"][0]["price"]["id"]
        allowed = cfg["features"]["subscription_update"]["default_allowed_updates"]
        options = []
        for prod, prices in self.em.portal_update_options(cfg):
            for p in prices:
                options.append(
                    {"id": p["id"], "label": f"{prod['name']}, {price_label(p)}", "current": p["id"] == current}
                )
        back_url, back_label = self._back(bps)
        return self.render(
            "portal_flow.html",
            title=_("Update subscription"),
            kind="update",
            heading=_("Update your subscription"),
            sub=self._sub_view(sub, "", cfg["features"], False),
            options=options,
            allow_quantity="quantity" in allowed,
            quantity=sub["items"]["data"][0]["quantity"],
            action=f"/p/session/{bps['id']}/subscriptions/{sub['id']}/update/confirm",
            back_url=back_url,
            back_label=back_label,
        )

    def portal_confirm(
        self, method: str, bps: Obj, cfg: Obj, sub: Obj, items: list[dict[str, Any]], flow_type: str
    ) -> Page:
        """Preview the proration of a change, then apply it on "Confirm"."""
        base = f"/p/session/{bps['id']}"
        allowed_prices = {p["id"] for _, prices in self.em.portal_update_options(cfg) for p in prices}
        for item in items:
            current_price = sub["items"]["data"][0]["price"]["id"]
            if (
                flow_type == "subscription_update"
                and item.get("price") not in allowed_prices
                and item.get("price") != current_price
            ):
                return self.render(
                    "portal_flow.html",
                    400,
                    title=_("Update subscription"),
                    kind="none",
                    heading=_("That plan is not available"),
                    error=_("Choose one of the plans offered."),
                    back_url=f"{base}/subscriptions/{sub['id']}/update",
                    back_label=_("Back"),
                )
        if method == "POST":
            self.em.portal_switch(sub["id"], cfg, items)
            return self._finish(bps, (flow_type,), N_("Your subscription has been updated."))
        behaviour = cfg["features"]["subscription_update"]["proration_behavior"]
        now = self.em.now_for_customer(sub["customer"])
        lines = self.em.preview_change_lines(sub, items, behaviour, now)
        new_price = (
            next((self.em.find(i["price"]) for i in items if i.get("price")), None) or sub["items"]["data"][0]["price"]
        )
        new_qty = next(
            (int(i["quantity"]) for i in items if i.get("quantity") not in (None, "")),
            sub["items"]["data"][0]["quantity"],
        )
        old = sub["items"]["data"][0]
        reset = (new_price.get("recurring") or {}).get("interval") != old["price"]["recurring"]["interval"]
        due = sum(line["amount"] for line in lines)
        immediate = reset or behaviour == "always_invoice"
        view = self._sub_view(sub, "", cfg["features"], False)
        change = f"{price_label(old['price'])} × {old['quantity']} → {price_label(new_price)} × {new_qty}"
        hidden = (
            [(key, str(items[0][key])) for key in ("price", "quantity") if items[0].get(key) not in (None, "")]
            if flow_type == "subscription_update"
            else []
        )
        action = (
            f"{base}/subscriptions/{sub['id']}/update/confirm"
            if flow_type == "subscription_update"
            else f"{base}/subscriptions/{sub['id']}/confirm"
        )
        back_url, back_label = (
            self._back(bps)
            if flow_type == "subscription_update_confirm"
            else (f"{base}/subscriptions/{sub['id']}/update", _("Back"))
        )
        return self.render(
            "portal_flow.html",
            title=_("Confirm your update"),
            kind="confirm",
            heading=_("Confirm your update"),
            sub=view,
            change=change,
            lines=[
                {"description": line["description"], "amount": local_money(line["amount"], line["currency"])}
                for line in lines
            ],
            due=local_money(max(due, 0) if immediate else due, sub["currency"]),
            due_label=_("Amount due today") if immediate else _("Adjustment on your next invoice"),
            hidden=hidden,
            action=action,
            back_url=back_url,
            back_label=back_label,
        )

    # ============================================================ invoices and receipts
    def invoice(self, method: str, iid: str, pdf: bool, form: dict[str, str]) -> Page:
        """The hosted invoice page (pay an open invoice by card) and its PDF."""
        inv = self.em.get(iid, "invoice")
        self._use_customer_locale(inv["customer"])
        if pdf:
            filename = f"Invoice-{inv['number'] or inv['id']}.pdf"
            return Page(
                200,
                invoice_pdf(inv, self.business),
                "application/pdf",
                [("content-disposition", f'inline; filename="{filename}"')],
            )
        error = None
        if method == "POST" and inv["status"] == "open":
            try:
                month, year = parse_expiry(form.get("cardExpiry", ""))
                check_cvc(form.get("cardCvc", ""))
                cust = self.em.get(inv["customer"], "customer")
                pm = self.em.payment_method_from_card(
                    form.get("cardNumber", ""), month, year, cust["name"], cust["email"]
                )
                self.em.attach_payment_method(pm["id"], {"customer": cust["id"]})
                self.em.pay_invoice(iid, {"payment_method": pm["id"]})
                return redirect(f"/invoices/{iid}")
            except StripeError as err:
                error = shown_error(err)
        lines = [
            {
                "description": x["description"],
                "quantity": x["quantity"],
                "amount": local_money(x["amount"], x["currency"]),
            }
            for x in inv["lines"]["data"]
        ]
        return self.render(
            "invoice.html",
            402 if error else 200,
            title=_("Invoice %(number)s", number=inv["number"] or inv["id"]),
            inv=inv,
            status_label=tr(INVOICE_STATUSES[inv["status"]]) if inv["status"] in INVOICE_STATUSES else inv["status"],
            lines=lines,
            date=day(inv["created"]),
            total=local_money(inv["total"], inv["currency"]),
            paid=local_money(inv["amount_paid"], inv["currency"]),
            remaining=local_money(inv["amount_remaining"], inv["currency"]),
            error=error,
            action=f"/invoices/{iid}",
        )

    def receipt(self, ch_id: str) -> Page:
        """The receipt page behind `charge.receipt_url`."""
        ch = self.em.get(ch_id, "charge")
        if ch.get("customer"):
            self._use_customer_locale(ch["customer"])
        card = (ch["payment_method_details"] or {}).get("card") or {}
        return self.render(
            "receipt.html",
            title=_("Receipt from %(business)s", business=self.business),
            charge=ch,
            amount=local_money(ch["amount"], ch["currency"]),
            refunded=local_money(ch["amount_refunded"], ch["currency"]) if ch["amount_refunded"] else None,
            date=day(ch["created"]),
            brand=str(card.get("brand", "card")).title(),
            last4=card.get("last4", ""),
        )

    def _use_customer_locale(self, customer_id: str | None) -> None:
        """Invoices and receipts speak the customer's first `preferred_locales`, else the browser's language."""
        cust = self.em.find(customer_id) if customer_id else None
        preferred = (cust or {}).get("preferred_locales") or []
        use_locale(preferred[0] if preferred else None, self.accept_language)


# Shown as Stripe's own words (`paid`), in the page's language.
INVOICE_STATUSES = {
    "draft": N_("draft"),
    "open": N_("open"),
    "paid": N_("paid"),
    "uncollectible": N_("uncollectible"),
    "void": N_("void"),
}
SUBSCRIPTION_STATUSES = {
    "active": N_("active"),
    "trialing": N_("trialing"),
    "past_due": N_("past_due"),
    "unpaid": N_("unpaid"),
    "incomplete": N_("incomplete"),
    "paused": N_("paused"),
}
