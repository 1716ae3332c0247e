"""The plan catalogue file (`plans.toml`) and pushing it to Stripe as Products and Prices.

Each plan becomes one Product (`metadata.plan_key`, `metadata.sort`, `marketing_features`) with
three Prices found by lookup key: `<key>_monthly` and `<key>_yearly` (recurring) and
`<key>_lifetime` (one-time). Pushing twice changes nothing; a changed amount creates a new Price,
moves the lookup key to it (`transfer_lookup_key`) and archives the old Price, since Stripe
Prices are immutable. https://docs.stripe.com/products-prices/manage-prices#lookup-keys

Each plan feature (`{ key = "custom_domain", name = "Custom domain" }`) is also a Stripe
Entitlements Feature found by its lookup key (`key`), attached to the plan's Product; pushing adds
missing Features and attachments, renames changed ones and detaches Features a plan no longer lists.
https://docs.stripe.com/billing/entitlements
"""

from __future__ import annotations

import re
import tomllib
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from app.settings import PROJECT_ROOT
from app.stripe_gateway import StripeGateway

DEFAULT_CATALOG = PROJECT_ROOT / "plans.toml"
INTERVALS = {"monthly": "month", "yearly": "year", "lifetime": None}
FEATURE_KEY = re.compile(r"^[a-z0-9][a-z0-9_.-]{0,79}$")


@dataclass(frozen=True)
class FeatureSpec:
    """One plan feature: its stable lookup key and the name people read."""

    key: str
    name: str


@dataclass(frozen=True)
class PlanSpec:
    """One plan of `plans.toml`; amounts in minor units of `currency`."""

    key: str
    name: str
    description: str
    features: tuple[str, ...]
    currency: str
    amounts: dict[str, int]
    sort: int
    entitlements: tuple[FeatureSpec, ...] = ()

    def lookup_key(self, kind: str) -> str:
        """`pro_monthly`, `pro_yearly`, `pro_lifetime`."""
        return f"{self.key}_{kind}"


class CatalogError(ValueError):
    """`plans.toml` is malformed; the message says where."""


def load_catalog(path: Path = DEFAULT_CATALOG) -> list[PlanSpec]:
    """Read and validate the catalogue file.

    Raises:
        CatalogError: a plan lacks a key, name or price, or a key repeats.
    """
    try:
        data = tomllib.loads(path.read_text())
    except (OSError, tomllib.TOMLDecodeError) as exc:
        raise CatalogError(f"{path}: {exc}") from exc
    currency = str(data.get("currency", "usd")).lower()
    plans: list[PlanSpec] = []
    for index, raw in enumerate(data.get("plans", [])):
        key = str(raw.get("key", ""))
        if not key.isidentifier():
            raise CatalogError(f"{path}: plan #{index + 1} needs a key made of letters, digits and _")
        if not raw.get("name"):
            raise CatalogError(f"{path}: plan {key} needs a name")
        amounts = {}
        for kind in INTERVALS:
            amount = raw.get(kind)
            if not isinstance(amount, int) or amount <= 0:
                raise CatalogError(f"{path}: plan {key} needs a positive whole {kind} amount in cents")
            amounts[kind] = amount
        features = [_feature(path, key, f) for f in raw.get("features", [])]
        plans.append(
            PlanSpec(
                key=key,
                name=str(raw["name"]),
                description=str(raw.get("description", "")),
                features=tuple(f.name for f in features),
                entitlements=tuple(features),
                currency=str(raw.get("currency", currency)).lower(),
                amounts=amounts,
                sort=index,
            )
        )
    if len({p.key for p in plans}) != len(plans):
        raise CatalogError(f"{path}: plan keys must be unique")
    names: dict[str, str] = {}
    for plan in plans:
        for feature in plan.entitlements:
            if names.setdefault(feature.key, feature.name) != feature.name:
                raise CatalogError(
                    f"{path}: feature {feature.key} has two names ({names[feature.key]!r}, {feature.name!r})"
                )
    return plans


def _feature(path: Path, plan_key: str, raw: object) -> FeatureSpec:
    """A feature entry: `{ key = "…", name = "…" }`, or a bare name whose key is derived from it."""
    if isinstance(raw, str):
        return FeatureSpec(key=re.sub(r"[^a-z0-9]+", "_", raw.lower()).strip("_")[:80], name=raw)
    if isinstance(raw, dict) and isinstance(raw.get("key"), str) and raw.get("name"):
        if not FEATURE_KEY.match(raw["key"]):
            raise CatalogError(f"{path}: plan {plan_key}: feature key {raw['key']!r} must be lowercase a-z, 0-9, _ . -")
        return FeatureSpec(key=raw["key"], name=str(raw["name"]))
    raise CatalogError(f"{path}: plan {plan_key}: each feature needs a key and a name")


def _price_matches(price: dict[str, Any], plan: PlanSpec, kind: str) -> bool:
    interval = INTERVALS[kind]
    recurring = price.get("recurring") or {}
    return (
        price.get("unit_amount") == plan.amounts[kind]
        and price.get("currency") == plan.currency
        and recurring.get("interval") == interval
        and bool(price.get("active", True))
    )


async def push_catalog(gateway: StripeGateway, plans: list[PlanSpec]) -> list[str]:
    """Create or update every plan's Product and Prices in Stripe; returns what was done, in words.

    Raises:
        StripeUnavailable / StripeRequestRejected: from the gateway; re-running resumes safely.
    """
    actions: list[str] = []
    products = {
        (p.get("metadata") or {}).get("plan_key"): p
        async for p in gateway.products()
        if (p.get("metadata") or {}).get("plan_key")
    }
    for plan in plans:
        wanted: dict[str, Any] = {
            "name": plan.name,
            "description": plan.description or None,
            "metadata": {"plan_key": plan.key, "sort": str(plan.sort)},
            "marketing_features": [{"name": f} for f in plan.features],
            "active": True,
        }
        product = products.get(plan.key)
        if product is None:
            product = await gateway.create_product(wanted)
            actions.append(f"created product {plan.key} ({product['id']})")
        elif (
            product.get("name") != plan.name
            or (product.get("description") or None) != wanted["description"]
            or [f.get("name") for f in product.get("marketing_features") or []] != list(plan.features)
            or not product.get("active", True)
            or (product.get("metadata") or {}).get("sort") != str(plan.sort)
        ):
            product = await gateway.update_product(
                product["id"], {k: v if v is not None else "" for k, v in wanted.items()}
            )
            actions.append(f"updated product {plan.key}")
        products[plan.key] = product
        lookup_keys = [plan.lookup_key(kind) for kind in INTERVALS]
        existing = {p.get("lookup_key"): p async for p in gateway.prices(lookup_keys=lookup_keys)}
        for kind, interval in INTERVALS.items():
            lookup_key = plan.lookup_key(kind)
            current = existing.get(lookup_key)
            if current is not None and _price_matches(current, plan, kind) and current.get("product") == product["id"]:
                continue
            params: dict[str, Any] = {
                "product": product["id"],
                "currency": plan.currency,
                "unit_amount": plan.amounts[kind],
                "lookup_key": lookup_key,
                "transfer_lookup_key": True,
                "nickname": f"{plan.name} {kind}",
                "metadata": {"plan_key": plan.key, "kind": kind},
            }
            if interval:
                params["recurring"] = {"interval": interval}
            created = await gateway.create_price(params)
            actions.append(f"created price {lookup_key} ({created['id']})")
            if current is not None and current.get("active", True):
                await gateway.update_price(current["id"], {"active": False})
                actions.append(f"archived price {current['id']}")
    actions += await push_features(gateway, plans, {str(k): p["id"] for k, p in products.items() if k})
    return actions


async def push_features(gateway: StripeGateway, plans: list[PlanSpec], product_ids: dict[str, str]) -> list[str]:
    """Create the catalogue's Features (by lookup key) and make each plan Product carry exactly its own.

    `product_ids` maps plan keys to Product ids. Features are never deleted at Stripe (customers'
    history refers to them); one no plan lists any more is only detached.
    https://docs.stripe.com/api/entitlements/feature/create, https://docs.stripe.com/api/product-feature/attach
    """
    actions: list[str] = []
    existing = {f.get("lookup_key"): f async for f in gateway.entitlement_features()}
    wanted = {f.key: f for plan in plans for f in plan.entitlements}
    feature_ids: dict[str, str] = {}
    for key, spec in wanted.items():
        current = existing.get(key)
        if current is None:
            current = await gateway.create_entitlement_feature(
                {"name": spec.name, "lookup_key": key, "metadata": {"source": "plans.toml"}}
            )
            actions.append(f"created feature {key} ({current['id']})")
        elif current.get("name") != spec.name or not current.get("active", True):
            current = await gateway.update_entitlement_feature(current["id"], {"name": spec.name, "active": True})
            actions.append(f"updated feature {key}")
        feature_ids[key] = current["id"]
    for plan in plans:
        product_id = product_ids.get(plan.key)
        if product_id is None:
            continue
        attached = {
            (pf.get("entitlement_feature") or {}).get("lookup_key"): pf
            async for pf in gateway.product_features(product_id)
        }
        keys = [f.key for f in plan.entitlements]
        for key in keys:
            if key not in attached:
                await gateway.attach_product_feature(product_id, feature_ids[key])
                actions.append(f"attached feature {key} to {plan.key}")
        for attached_key, product_feature in attached.items():
            if attached_key not in keys:
                await gateway.detach_product_feature(product_id, product_feature["id"])
                actions.append(f"detached feature {attached_key} from {plan.key}")
    return actions
