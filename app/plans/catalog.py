"""The plan catalogue file (`plans.toml`) and pushing it to Stripe as Products and Prices.

Each plan becomes one Product (`metadata.plan_key`, `metadata.sort`, `marketing_features`) with
three Prices found by lookup key: `<key>_monthly` and `<key>_yearly` (recurring) and
`<key>_lifetime` (one-time). Pushing twice changes nothing; a changed amount creates a new Price,
moves the lookup key to it (`transfer_lookup_key`) and archives the old Price, since Stripe
Prices are immutable. https://docs.stripe.com/products-prices/manage-prices#lookup-keys
"""

from __future__ import annotations

import tomllib
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from app.settings import PROJECT_ROOT
from app.stripe_gateway import StripeGateway

DEFAULT_CATALOG = PROJECT_ROOT / "plans.toml"
INTERVALS = {"monthly": "month", "yearly": "year", "lifetime": None}


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
        plans.append(
            PlanSpec(
                key=key,
                name=str(raw["name"]),
                description=str(raw.get("description", "")),
                features=tuple(str(f) for f in raw.get("features", [])),
                currency=str(raw.get("currency", currency)).lower(),
                amounts=amounts,
                sort=index,
            )
        )
    if len({p.key for p in plans}) != len(plans):
        raise CatalogError(f"{path}: plan keys must be unique")
    return plans


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
    return actions
