"""Stripe Entitlements: Features, Product features, a customer's active entitlements and the
`entitlements.active_entitlement_summary.updated` event.

https://docs.stripe.com/api/entitlements, https://docs.stripe.com/billing/entitlements.

A customer's active entitlements are the Features attached to the Products of their subscriptions
in `active`, `trialing` or `past_due` status (Stripe has no grace period of its own: a `past_due`
subscription keeps them until it becomes `unpaid` or `canceled`). Like Stripe, a subscription keeps
the feature list it had at the start of its current period: a Feature attached to (or removed
from) a Product reaches existing subscribers at their next renewal, new subscribers at once.
Whenever a customer's set changes the summary event is emitted, carrying at most 10 entitlements
with `has_more` (the rest must be listed).
"""

from __future__ import annotations

import hashlib
from typing import Any

from . import objects as o
from .api import Api, route
from .engine import Emulator, apply_metadata, as_bool, require
from .errors import invalid, missing, not_found
from .store import Obj, clone, new_id

GRANTING_STATUSES = ("active", "trialing", "past_due")
SUMMARY_LIMIT = 10
SUMMARY_EVENT = "entitlements.active_entitlement_summary.updated"


def feature(fid: str, name: str, lookup_key: str) -> Obj:
    """https://docs.stripe.com/api/entitlements/feature/object"""
    return {
        "id": fid,
        "object": "entitlements.feature",
        "active": True,
        "livemode": False,
        "lookup_key": lookup_key,
        "metadata": {},
        "name": name,
    }


def product_feature(pfid: str, feat: Obj) -> Obj:
    """https://docs.stripe.com/api/product-feature/object (the Feature is always embedded)."""
    return {"id": pfid, "object": "product_feature", "entitlement_feature": clone(feat), "livemode": False}


def active_entitlement(entid: str, feat: Obj) -> Obj:
    """https://docs.stripe.com/api/entitlements/active-entitlement/object"""
    return {
        "id": entid,
        "object": "entitlements.active_entitlement",
        "feature": feat["id"],
        "livemode": False,
        "lookup_key": feat["lookup_key"],
    }


class Entitlements:
    """The Entitlements resources over one emulator store; listens to its events to keep
    every customer's active entitlements current."""

    def __init__(self, store: Emulator) -> None:
        self.store = store
        store.event_listeners.append(self._on_event)

    # --- features ----------------------------------------------------------------------------
    def create_feature(self, params: dict[str, Any]) -> Obj:
        """https://docs.stripe.com/api/entitlements/feature/create"""
        name = require(params, "name")
        lookup_key = require(params, "lookup_key")
        if any(f["lookup_key"] == lookup_key for f in self.store.all("entitlements.feature")):
            raise invalid(f"A feature with the lookup_key `{lookup_key}` already exists.", "lookup_key")
        feat = feature(new_id("feat_test", 24), str(name), str(lookup_key))
        apply_metadata(feat, params.get("metadata"))
        return self.store.put(feat)

    def update_feature(self, fid: str, params: dict[str, Any]) -> Obj:
        """https://docs.stripe.com/api/entitlements/feature/update (`name`, `active`, `metadata`)."""
        feat = self.store.get(fid, "entitlements.feature")
        if "name" in params:
            feat["name"] = str(params["name"])
        if "active" in params:
            feat["active"] = as_bool(params["active"], "active")
        apply_metadata(feat, params.get("metadata"))
        for pf in self.store.all("product_feature"):
            if pf["entitlement_feature"]["id"] == fid:
                pf["entitlement_feature"] = clone(feat)
        self.store.dirty = True
        return feat

    def features(self, params: dict[str, Any]) -> list[Obj]:
        """Features, newest first; `archived` and `lookup_key` filter like Stripe's list."""
        archived = as_bool(params["archived"], "archived") if "archived" in params else None
        found = self.store.all("entitlements.feature")
        if archived is not None:
            found = [f for f in found if f["active"] is not archived]
        if params.get("lookup_key"):
            found = [f for f in found if f["lookup_key"] == params["lookup_key"]]
        return found

    # --- product features --------------------------------------------------------------------
    def attach(self, product_id: str, params: dict[str, Any]) -> Obj:
        """https://docs.stripe.com/api/product-feature/attach"""
        self.store.get(product_id, "product", "product")
        fid = require(params, "entitlement_feature")
        feat = self.store.get(str(fid), "entitlements.feature", "entitlement_feature")
        if any(pf["entitlement_feature"]["id"] == fid for pf in self.product_features(product_id)):
            raise invalid("This feature is already attached to this product.", "entitlement_feature")
        pf = product_feature(new_id("prodft", 14), feat)
        self.store.put(pf)
        self.store.side(pf["id"])["product"] = product_id
        return pf

    def product_features(self, product_id: str) -> list[Obj]:
        """The product's features, newest first."""
        return [
            pf for pf in self.store.all("product_feature") if self.store.side(pf["id"]).get("product") == product_id
        ]

    def detach(self, product_id: str, pfid: str) -> Obj:
        """https://docs.stripe.com/api/product-feature/detach"""
        pf = self.store.get(pfid, "product_feature")
        if self.store.side(pfid).get("product") != product_id:
            raise not_found("product feature", pfid)
        self.store.remove(pfid)
        return {"id": pf["id"], "object": "product_feature", "deleted": True}

    # --- active entitlements -----------------------------------------------------------------
    def active_of(self, customer_id: str) -> list[Obj]:
        """The customer's active entitlements, oldest first (the order they were granted)."""
        ids = self.store.side(customer_id).get("active_entitlements") or []
        return [self.store.get(i) for i in ids if self.store.find(i)]

    def _granted_features(self, customer_id: str) -> list[Obj]:
        features: dict[str, Obj] = {}
        for sub in reversed(self.store.all("subscription")):
            if sub["customer"] != customer_id or sub["status"] not in GRANTING_STATUSES:
                continue
            items = sub["items"]["data"]
            period_start = items[0].get("current_period_start") if items else None
            side = self.store.side(sub["id"])
            products = sorted({item["price"]["product"] for item in items})
            if side.get("features_of") != [period_start, products] or "feature_ids" not in side:
                side["feature_ids"] = [
                    pf["entitlement_feature"]["id"]
                    for product in products
                    for pf in reversed(self.product_features(product))
                ]
                side["features_of"] = [period_start, products]
            for fid in side["feature_ids"]:
                feat = self.store.find(fid)
                if feat is not None and feat["active"]:
                    features.setdefault(fid, feat)
        return list(features.values())

    def refresh(self, customer_id: str) -> bool:
        """Recompute a customer's active entitlements; emit the summary event when they changed."""
        if self.store.find(customer_id) is None:
            return False
        granted = self._granted_features(customer_id)
        before = list(self.store.side(customer_id).get("active_entitlements") or [])
        after: list[str] = []
        for feat in granted:
            entid = "ent_test_" + hashlib.sha256(f"{customer_id}:{feat['id']}".encode()).hexdigest()[:24]
            if self.store.find(entid) is None:
                self.store.put(active_entitlement(entid, feat))
            after.append(entid)
        for entid in set(before) - set(after):
            self.store.remove(entid)
            self.store.deleted.discard(entid)
        ordered = [e for e in before if e in after] + [e for e in after if e not in before]
        self.store.side(customer_id)["active_entitlements"] = ordered
        if set(before) == set(after):
            return False
        self.store.emit(SUMMARY_EVENT, self.summary(customer_id))
        return True

    def summary(self, customer_id: str) -> Obj:
        """https://docs.stripe.com/api/entitlements/active-entitlement-summary/object: at most 10
        entitlements, each with its Feature expanded, and `has_more` when there are others."""
        active = self.active_of(customer_id)
        data = []
        for ent in active[:SUMMARY_LIMIT]:
            shown = clone(ent)
            shown["feature"] = clone(self.store.get(ent["feature"]))
            data.append(shown)
        return {
            "object": "entitlements.active_entitlement_summary",
            "customer": customer_id,
            "entitlements": o.list_object(
                data, f"/v1/entitlements/active_entitlements?customer={customer_id}", len(active) > SUMMARY_LIMIT
            ),
            "livemode": False,
        }

    def _on_event(self, event: Obj) -> None:
        if not str(event.get("type", "")).startswith("customer.subscription."):
            return
        customer_id = (event.get("data") or {}).get("object", {}).get("customer")
        if isinstance(customer_id, str):
            self.refresh(customer_id)


def customer_param(params: dict[str, Any]) -> str:
    """The required `customer` of the active entitlements list."""
    customer = params.get("customer")
    if not customer:
        raise missing("customer")
    return str(customer)


def _ent(api: Api) -> Entitlements:
    found: Entitlements = api.resources["entitlements"]
    return found


@route("POST", "/v1/entitlements/features", "entitlements.FeatureCreateParams")
def _features_create(api: Api, p: dict[str, Any]) -> Obj:
    return _ent(api).create_feature(p)


@route("GET", "/v1/entitlements/features", "entitlements.FeatureListParams")
def _features_list(api: Api, p: dict[str, Any]) -> Obj:
    return api.page(_ent(api).features(p), p, "/v1/entitlements/features")


@route("GET", "/v1/entitlements/features/{fid}", "entitlements.FeatureRetrieveParams")
def _features_get(api: Api, p: dict[str, Any], fid: str) -> Obj:
    return api.em.get(fid, "entitlements.feature")


@route("POST", "/v1/entitlements/features/{fid}", "entitlements.FeatureUpdateParams")
def _features_update(api: Api, p: dict[str, Any], fid: str) -> Obj:
    return _ent(api).update_feature(fid, p)


@route("POST", "/v1/products/{pid}/features", "ProductFeatureCreateParams")
def _product_features_create(api: Api, p: dict[str, Any], pid: str) -> Obj:
    return _ent(api).attach(pid, p)


@route("GET", "/v1/products/{pid}/features", "ProductFeatureListParams")
def _product_features_list(api: Api, p: dict[str, Any], pid: str) -> Obj:
    api.em.get(pid, "product", "product")
    return api.page(_ent(api).product_features(pid), p, f"/v1/products/{pid}/features")


@route("GET", "/v1/products/{pid}/features/{pfid}", "ProductFeatureRetrieveParams")
def _product_features_get(api: Api, p: dict[str, Any], pid: str, pfid: str) -> Obj:
    found = api.em.get(pfid, "product_feature")
    if api.em.side(pfid).get("product") != pid:
        raise not_found("product feature", pfid)
    return found


@route("DELETE", "/v1/products/{pid}/features/{pfid}", "ProductFeatureDeleteParams")
def _product_features_delete(api: Api, p: dict[str, Any], pid: str, pfid: str) -> Obj:
    return _ent(api).detach(pid, pfid)


@route("GET", "/v1/entitlements/active_entitlements", "entitlements.ActiveEntitlementListParams")
def _active_entitlements_list(api: Api, p: dict[str, Any]) -> Obj:
    customer = customer_param(p)
    api.em.get(customer, "customer", "customer")
    return api.page(_ent(api).active_of(customer), p, "/v1/entitlements/active_entitlements")


@route("GET", "/v1/entitlements/active_entitlements/{entid}", "entitlements.ActiveEntitlementRetrieveParams")
def _active_entitlements_get(api: Api, p: dict[str, Any], entid: str) -> Obj:
    return api.em.get(entid, "entitlements.active_entitlement")
