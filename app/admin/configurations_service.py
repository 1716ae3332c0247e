"""Customer Portal configurations for operators: list, show, create/edit with Stripe's limits checked
before any call, activate/deactivate, choose which configuration a workflow uses, drift against
`portal.toml`, and an export of Stripe's current state as TOML.

Stripe API: https://docs.stripe.com/api/customer_portal/configurations (object, create, update, list).
Stripe's account-wide default (`is_default`) cannot be set through the API (only in the Dashboard);
what this app uses per workflow is its own `portal_configuration` table, which "Use for" changes.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any
from urllib.parse import urlsplit

import tomli_w

from app.admin.audit import record_action
from app.auth.tables import User
from app.billing.tables import Plan, Price
from app.portal.service import PortalSpec, configuration_params, load_portal_spec
from app.portal.tables import PortalConfiguration
from app.stripe_gateway import StripeGateway
from app.web.i18n import N_, Message

HEADLINE_MAX = 60
MAX_PRODUCTS = 10
CUSTOMER_UPDATE_FIELDS = ("email", "address", "shipping", "phone", "tax_id", "name")
CANCELLATION_REASONS = (
    "too_expensive",
    "missing_features",
    "switched_service",
    "unused",
    "customer_service",
    "too_complex",
    "low_quality",
    "other",
)
CANCEL_MODES = ("at_period_end", "immediately")
CANCEL_PRORATIONS = ("none", "create_prorations")
UPDATE_PRORATIONS = ("none", "create_prorations", "always_invoice")
UPDATE_ALLOWED = ("price", "quantity", "promotion_code")
DOWNGRADE_CONDITIONS = [{"type": "decreasing_item_amount"}, {"type": "shortening_interval"}]
FEATURE_WORDS = {
    "customer_update": "update billing details",
    "invoice_history": "invoice history",
    "payment_method_update": "update payment method",
    "subscription_cancel": "cancel subscription",
    "subscription_update": "switch plan",
}


class ConfigurationInvalid(ValueError):
    """The form breaks one of Stripe's documented limits; `errors` maps field names to messages."""

    def __init__(self, errors: dict[str, str]) -> None:
        super().__init__("; ".join(f"{k}: {v}" for k, v in errors.items()))
        self.errors = errors


def features_in_words(cfg: Mapping[str, Any]) -> list[str]:
    """The enabled features of a configuration as short phrases ("switch plan", "invoice history")."""
    features = cfg.get("features") or {}
    return [words for key, words in FEATURE_WORDS.items() if (features.get(key) or {}).get("enabled")]


async def list_configurations(gateway: StripeGateway) -> list[dict[str, Any]]:
    """Every configuration in Stripe (newest first, as Stripe lists them), each with `features_words`
    and `used_by` (the workflows of this app that use it).

    Raises:
        StripeUnavailable / StripeRequestRejected: Stripe failed.
    """
    used: dict[str, list[str]] = {}
    for row in await PortalConfiguration.select(
        PortalConfiguration.workflow, PortalConfiguration.stripe_configuration_id
    ):
        used.setdefault(row["stripe_configuration_id"], []).append(row["workflow"])
    out = []
    async for cfg in gateway.portal_configurations():
        out.append({**cfg, "features_words": features_in_words(cfg), "used_by": sorted(used.get(cfg["id"], []))})
    return out


async def get_configuration(gateway: StripeGateway, configuration_id: str) -> dict[str, Any]:
    """One configuration with `features_words` and `used_by`.

    Raises:
        StripeNotFound: no such configuration. StripeUnavailable: Stripe failed.
    """
    cfg = await gateway.retrieve_portal_configuration(configuration_id)
    rows = await PortalConfiguration.select(PortalConfiguration.workflow).where(
        PortalConfiguration.stripe_configuration_id == configuration_id
    )
    return {**cfg, "features_words": features_in_words(cfg), "used_by": sorted(r["workflow"] for r in rows)}


@dataclass
class ConfigurationForm:
    """The edit form's values (also what an HTML form posts, field by field)."""

    name: str = ""
    headline: str = ""
    privacy_policy_url: str = ""
    terms_of_service_url: str = ""
    default_return_url: str = ""
    customer_update: bool = False
    customer_update_fields: list[str] = field(default_factory=list)
    invoice_history: bool = False
    payment_method_update: bool = False
    cancel: bool = False
    cancel_mode: str = "at_period_end"
    cancel_proration: str = "none"
    cancel_reasons: list[str] = field(default_factory=list)
    update: bool = False
    update_allowed: list[str] = field(default_factory=lambda: ["price"])
    update_proration: str = "create_prorations"
    update_prices: list[str] = field(default_factory=list)
    schedule_downgrades: bool = False

    @classmethod
    def from_post(cls, form: Mapping[str, Sequence[str]]) -> ConfigurationForm:
        """From a posted form given as lists of values per name (checkboxes post `on`)."""

        def one(name: str, default: str = "") -> str:
            values = form.get(name) or []
            return str(values[-1]).strip() if values else default

        def many(name: str) -> list[str]:
            return [str(v) for v in form.get(name) or [] if str(v).strip()]

        return cls(
            name=one("name"),
            headline=one("headline"),
            privacy_policy_url=one("privacy_policy_url"),
            terms_of_service_url=one("terms_of_service_url"),
            default_return_url=one("default_return_url"),
            customer_update=bool(one("customer_update")),
            customer_update_fields=many("customer_update_fields"),
            invoice_history=bool(one("invoice_history")),
            payment_method_update=bool(one("payment_method_update")),
            cancel=bool(one("cancel")),
            cancel_mode=one("cancel_mode", "at_period_end"),
            cancel_proration=one("cancel_proration", "none"),
            cancel_reasons=many("cancel_reasons"),
            update=bool(one("update")),
            update_allowed=many("update_allowed"),
            update_proration=one("update_proration", "create_prorations"),
            update_prices=many("update_prices"),
            schedule_downgrades=bool(one("schedule_downgrades")),
        )

    @classmethod
    def from_configuration(cls, cfg: Mapping[str, Any]) -> ConfigurationForm:
        """The form showing a Stripe configuration object as it is."""
        bp = cfg.get("business_profile") or {}
        f = cfg.get("features") or {}
        cu, sc, su = (
            f.get("customer_update") or {},
            f.get("subscription_cancel") or {},
            f.get("subscription_update") or {},
        )
        return cls(
            name=cfg.get("name") or "",
            headline=bp.get("headline") or "",
            privacy_policy_url=bp.get("privacy_policy_url") or "",
            terms_of_service_url=bp.get("terms_of_service_url") or "",
            default_return_url=cfg.get("default_return_url") or "",
            customer_update=bool(cu.get("enabled")),
            customer_update_fields=list(cu.get("allowed_updates") or []),
            invoice_history=bool((f.get("invoice_history") or {}).get("enabled")),
            payment_method_update=bool((f.get("payment_method_update") or {}).get("enabled")),
            cancel=bool(sc.get("enabled")),
            cancel_mode=sc.get("mode") or "at_period_end",
            cancel_proration=sc.get("proration_behavior") or "none",
            cancel_reasons=list(((sc.get("cancellation_reason") or {}).get("options")) or [])
            if (sc.get("cancellation_reason") or {}).get("enabled")
            else [],
            update=bool(su.get("enabled")),
            update_allowed=list(su.get("default_allowed_updates") or []),
            update_proration=su.get("proration_behavior") or "none",
            update_prices=[p for prod in su.get("products") or [] for p in prod.get("prices") or []],
            schedule_downgrades=bool((su.get("schedule_at_period_end") or {}).get("conditions")),
        )


def _url_error(value: str, *, allow_local_http: bool = False) -> str | None:
    parts = urlsplit(value)
    if not parts.netloc or parts.scheme not in ("https", "http"):
        return Message(N_("Give a full https:// address."))
    if parts.scheme == "http" and not (allow_local_http and parts.hostname in {"localhost", "127.0.0.1"}):
        return Message(N_("Use an https:// address."))
    return None


async def catalogue_prices() -> list[dict[str, Any]]:
    """Active recurring prices of active plans, for the form: `stripe_price_id`, `product`, `plan`,
    `interval`, `interval_count`, `unit_amount_cents`, `currency` (ordered by plan, then interval)."""
    rows: list[dict[str, Any]] = await Price.raw(
        "SELECT price.stripe_price_id, plan.stripe_product_id AS product, plan.name AS plan, price.interval, "
        "price.interval_count, price.unit_amount_cents, price.currency FROM price JOIN plan ON plan.id = price.plan_id "
        "WHERE price.active AND plan.active AND price.type = 'recurring' ORDER BY plan.sort_order, plan.name, "
        "price.interval"
    )
    return rows


async def validate_form(form: ConfigurationForm) -> dict[str, Any]:
    """Check `form` against Stripe's documented limits and return the create/update parameters.

    Limits: headline at most 60 characters; privacy, terms and return URLs are full URLs (https;
    http only for a localhost return URL); at most 10 products and one price per billing interval
    per product for `subscription_update`, which also needs at least one price and one allowed
    update; enum values as Stripe lists them; cancellation reasons from Stripe's list.

    Raises:
        ConfigurationInvalid: with a message per field name.
    """
    errors: dict[str, str] = {}
    if len(form.headline) > HEADLINE_MAX:
        errors["headline"] = Message(
            N_("At most %(max)s characters (%(given)s given)."), max=HEADLINE_MAX, given=len(form.headline)
        )
    for key in ("privacy_policy_url", "terms_of_service_url", "default_return_url"):
        value = getattr(form, key)
        if value and (problem := _url_error(value, allow_local_http=key == "default_return_url")):
            errors[key] = problem
    if form.customer_update and (
        not form.customer_update_fields or set(form.customer_update_fields) - set(CUSTOMER_UPDATE_FIELDS)
    ):
        errors["customer_update_fields"] = Message(
            N_("Choose at least one of the fields Stripe lets customers update.")
        )
    if form.cancel_mode not in CANCEL_MODES:
        errors["cancel_mode"] = Message(N_("Choose at the end of the period or immediately."))
    if form.cancel_proration not in CANCEL_PRORATIONS:
        errors["cancel_proration"] = Message(N_("Choose none or create prorations."))
    if set(form.cancel_reasons) - set(CANCELLATION_REASONS):
        errors["cancel_reasons"] = Message(N_("Choose reasons from Stripe's list."))
    if form.update_proration not in UPDATE_PRORATIONS:
        errors["update_proration"] = Message(N_("Choose none, create prorations or always invoice."))
    products: dict[str, list[str]] = {}
    if form.update:
        if not form.update_allowed or set(form.update_allowed) - set(UPDATE_ALLOWED):
            errors["update_allowed"] = Message(
                N_("Choose what customers may change: price, quantity or promotion code.")
            )
        catalogue = {p["stripe_price_id"]: p for p in await catalogue_prices()}
        unknown = [p for p in form.update_prices if p not in catalogue]
        intervals: dict[tuple[str, str, int], str] = {}
        for price_id in form.update_prices:
            if price_id in unknown:
                continue
            price = catalogue[price_id]
            slot = (str(price["product"]), str(price["interval"]), int(price["interval_count"] or 1))
            if slot in intervals:
                errors["update_prices"] = Message(
                    N_("%(plan)s has two prices per %(interval)s; Stripe allows one price per interval per product."),
                    plan=price["plan"],
                    interval=price["interval"],
                )
            intervals[slot] = price_id
            products.setdefault(price["product"], []).append(price_id)
        if unknown:
            errors["update_prices"] = Message(N_("Unknown or inactive prices: %(prices)s."), prices=", ".join(unknown))
        elif not products:
            errors["update_prices"] = Message(N_("Choose at least one price customers can switch to."))
        elif len(products) > MAX_PRODUCTS:
            errors["update_prices"] = Message(
                N_("Stripe allows at most %(max)s products (%(given)s chosen)."), max=MAX_PRODUCTS, given=len(products)
            )
    if errors:
        raise ConfigurationInvalid(errors)
    features: dict[str, Any] = {
        "customer_update": {"enabled": form.customer_update},
        "invoice_history": {"enabled": form.invoice_history},
        "payment_method_update": {"enabled": form.payment_method_update},
        "subscription_cancel": {"enabled": form.cancel},
        "subscription_update": {"enabled": form.update},
    }
    if form.customer_update:
        features["customer_update"]["allowed_updates"] = form.customer_update_fields
    if form.cancel:
        features["subscription_cancel"].update(
            mode=form.cancel_mode,
            proration_behavior=form.cancel_proration,
            cancellation_reason={"enabled": bool(form.cancel_reasons), "options": form.cancel_reasons or ["other"]},
        )
    if form.update:
        features["subscription_update"].update(
            default_allowed_updates=form.update_allowed,
            proration_behavior=form.update_proration,
            products=[{"product": product, "prices": prices} for product, prices in products.items()],
            schedule_at_period_end={"conditions": DOWNGRADE_CONDITIONS if form.schedule_downgrades else []},
        )
    return {
        "name": form.name,
        "business_profile": {
            "headline": form.headline,
            "privacy_policy_url": form.privacy_policy_url,
            "terms_of_service_url": form.terms_of_service_url,
        },
        "default_return_url": form.default_return_url,
        "features": features,
    }


def _summary(cfg: Mapping[str, Any]) -> dict[str, Any]:
    """The fields an audit entry keeps of a configuration."""
    return {k: cfg.get(k) for k in ("name", "active", "business_profile", "default_return_url", "features")}


async def save_configuration(
    gateway: StripeGateway, configuration_id: str | None, form: ConfigurationForm, actor: User
) -> dict[str, Any]:
    """Validate, then create (`configuration_id` None) or update the configuration in Stripe; audit it.

    Raises:
        ConfigurationInvalid: before any Stripe call. StripeRequestRejected / StripeUnavailable: Stripe failed.
    """
    params = await validate_form(form)
    if configuration_id is None:
        before = None
        cfg = await gateway.create_portal_configuration(params)
    else:
        before = _summary(await gateway.retrieve_portal_configuration(configuration_id))
        cfg = await gateway.update_portal_configuration(configuration_id, params)
    await record_action(actor, "portal_configuration.saved", cfg["id"], before, _summary(cfg))
    return cfg


async def set_active(gateway: StripeGateway, configuration_id: str, active: bool, actor: User) -> dict[str, Any]:
    """Activate or deactivate a configuration in Stripe (Stripe refuses to deactivate its default); audit it."""
    cfg = await gateway.update_portal_configuration(configuration_id, {"active": active})
    await record_action(
        actor,
        "portal_configuration.activated" if active else "portal_configuration.deactivated",
        configuration_id,
        {"active": not active},
        {"active": active},
    )
    return cfg


async def use_for_workflow(gateway: StripeGateway, configuration_id: str, workflow: str, actor: User) -> None:
    """Make this app's `workflow` use `configuration_id` (checked to exist and be active in Stripe).

    Raises:
        ConfigurationInvalid: unknown workflow, inactive configuration, or one that already serves another
            workflow. StripeNotFound: no such configuration.
    """
    from app.portal.service import WORKFLOWS

    if workflow not in WORKFLOWS:
        raise ConfigurationInvalid({"workflow": Message(N_("Unknown workflow."))})
    cfg = await gateway.retrieve_portal_configuration(configuration_id)
    if not cfg.get("active"):
        raise ConfigurationInvalid({"workflow": Message(N_("Activate the configuration first."))})
    serving = await PortalConfiguration.select(PortalConfiguration.workflow).where(
        (PortalConfiguration.stripe_configuration_id == configuration_id) & (PortalConfiguration.workflow != workflow)
    )
    if serving:
        # `portal_configuration.stripe_configuration_id` is unique: each workflow keeps its own configuration.
        raise ConfigurationInvalid(
            {
                "workflow": Message(
                    N_("This configuration already serves the %(workflow)s workflow; create another."),
                    workflow=serving[0]["workflow"],
                )
            }
        )
    previous = (
        await PortalConfiguration.select(PortalConfiguration.stripe_configuration_id)
        .where(PortalConfiguration.workflow == workflow)
        .first()
    )
    await PortalConfiguration.insert(
        PortalConfiguration(workflow=workflow, stripe_configuration_id=configuration_id, updated_at=datetime.now(UTC))
    ).on_conflict(
        target=PortalConfiguration.workflow,
        action="DO UPDATE",
        values=[PortalConfiguration.stripe_configuration_id, PortalConfiguration.updated_at],
    )
    await record_action(
        actor,
        "portal_configuration.used_for",
        workflow,
        {"configuration": previous["stripe_configuration_id"] if previous else None},
        {"configuration": configuration_id},
    )


def _flatten(value: Any, prefix: str = "") -> dict[str, Any]:
    if isinstance(value, dict):
        out: dict[str, Any] = {}
        for key, sub in value.items():
            out.update(_flatten(sub, f"{prefix}.{key}" if prefix else key))
        return out
    return {prefix: value}


def _normalise(path: str, value: Any) -> Any:
    if path.endswith(".products") and isinstance(value, list):
        return sorted((p.get("product"), tuple(sorted(p.get("prices") or []))) for p in value)
    if isinstance(value, list):
        return sorted(str(v) for v in value)
    return value if value != "" else None


@dataclass(frozen=True)
class Drift:
    """One field whose value in `portal.toml` differs from Stripe's (`stripe` None: no configuration)."""

    workflow: str
    field: str
    file: Any
    stripe: Any


async def drift(gateway: StripeGateway, spec: PortalSpec | None = None) -> list[Drift]:
    """Compare what `litestar billing portal push` would send for each workflow of `portal.toml` with the
    configuration in Stripe whose `metadata.workflow` names it, field by field (only the fields the file sets).

    Raises:
        StripeUnavailable / StripeRequestRejected: Stripe failed.
    """
    from app.portal.service import _switchable_products

    spec = spec or load_portal_spec()
    products = await _switchable_products()
    existing = {
        (c.get("metadata") or {}).get("workflow"): c
        async for c in gateway.portal_configurations()
        if (c.get("metadata") or {}).get("workflow")
    }
    out: list[Drift] = []
    for key, workflow in spec.workflows.items():
        expected = _flatten(configuration_params(spec, workflow, products))
        current = existing.get(key)
        if current is None:
            out.append(Drift(key, "configuration", "defined", None))
            continue
        actual = _flatten(current)
        for path, want in sorted(expected.items()):
            have = actual.get(path)
            if _normalise(path, want) != _normalise(path, have):
                out.append(Drift(key, path, want, have))
    return out


def _toml_safe(value: Any) -> Any:
    """TOML has no null: drop None values (an absent key means "not set")."""
    if isinstance(value, dict):
        return {k: _toml_safe(v) for k, v in value.items() if v is not None}
    if isinstance(value, list):
        return [_toml_safe(v) for v in value if v is not None]
    return value


async def export_toml(gateway: StripeGateway) -> str:
    """Stripe's current configurations as TOML: one `[configurations.<id>]` table each, with name,
    active, default, metadata, business profile, default return URL and features as Stripe holds them.

    Raises:
        StripeUnavailable / StripeRequestRejected: Stripe failed.
    """
    configurations: dict[str, Any] = {}
    async for cfg in gateway.portal_configurations():
        configurations[cfg["id"]] = _toml_safe(
            {
                "name": cfg.get("name"),
                "active": cfg.get("active"),
                "is_default": cfg.get("is_default"),
                "metadata": cfg.get("metadata") or {},
                "business_profile": cfg.get("business_profile") or {},
                "default_return_url": cfg.get("default_return_url"),
                "features": cfg.get("features") or {},
            }
        )
    header = (
        "# Stripe's Customer Portal configurations as they are now, exported by the billing portal.\n"
        "# https://docs.stripe.com/api/customer_portal/configurations/object\n"
    )
    return header + tomli_w.dumps({"configurations": configurations})


async def plan_names() -> dict[str, str]:
    """Stripe product id → plan name, for showing configurations in words."""
    return {r["stripe_product_id"]: r["name"] for r in await Plan.select(Plan.stripe_product_id, Plan.name)}
