"""In-memory state: objects by id and type, private side data, the clock, events and snapshots."""

from __future__ import annotations

import json
import os
import random
import string
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import stripe

from . import objects as o
from .errors import not_found

Obj = dict[str, Any]
API_VERSION: str = stripe.api_version
_ALPHABET = string.ascii_letters + string.digits
_random = random.SystemRandom()

# Prefix of an id → the `object` value and the noun Stripe uses in "No such ...: 'x'".
PREFIXES: dict[str, tuple[str, str]] = {
    "cus": ("customer", "customer"),
    "prod": ("product", "product"),
    "price": ("price", "price"),
    "pm": ("payment_method", "PaymentMethod"),
    "sub": ("subscription", "subscription"),
    "si": ("subscription_item", "subscription item"),
    "in": ("invoice", "invoice"),
    "il": ("line_item", "invoice line item"),
    "ii": ("invoiceitem", "invoiceitem"),
    "inpay": ("invoice_payment", "invoice payment"),
    "pi": ("payment_intent", "payment_intent"),
    "ch": ("charge", "charge"),
    "re": ("refund", "refund"),
    "seti": ("setup_intent", "setup_intent"),
    "cs": ("checkout.session", "checkout.session"),
    "bps": ("billing_portal.session", "billing portal session"),
    "bpc": ("billing_portal.configuration", "configuration"),
    "evt": ("event", "event"),
    "we": ("webhook_endpoint", "webhook endpoint"),
    "clock": ("test_helpers.test_clock", "test_clock"),
    "txi": ("tax_id", "tax_id"),
    "feat": ("entitlements.feature", "feature"),
    "ent": ("entitlements.active_entitlement", "active entitlement"),
    "prodft": ("product_feature", "product feature"),
}


def clone(obj: Any) -> Any:
    """A deep copy of JSON-like data (the C JSON codec is several times faster than `copy.deepcopy`)."""
    return json.loads(json.dumps(obj))


def new_id(prefix: str, length: int = 24) -> str:
    """A Stripe-looking id: `cus_` + random letters and digits."""
    body = "".join(_random.choices(_ALPHABET, k=length))
    if prefix == "cs":
        return f"cs_test_{body}{body[::-1]}"
    return f"{prefix}_{body}"


def prefix_of(object_id: str) -> str:
    """`cs_test_x` → `cs`; `cus_x` → `cus`."""
    return object_id.split("_", 1)[0]


def diff(before: Any, after: Any) -> Any:
    """Stripe's `previous_attributes`: the old values of keys that changed, nested for sub-hashes."""
    out: dict[str, Any] = {}
    for key in set(before) | set(after):
        old, new = before.get(key), after.get(key)
        if old == new:
            continue
        if isinstance(old, dict) and isinstance(new, dict) and old.get("object") != "list" and "object" not in old:
            out[key] = diff(old, new)
        else:
            out[key] = old
    return out


@dataclass
class RequestInfo:
    """The API request being served, recorded on the events it causes (`event.request`)."""

    id: str | None = None
    idempotency_key: str | None = None


class Store:
    """Objects keyed by id, with per-type insertion order (lists are newest first)."""

    def __init__(self) -> None:
        self.by_type: dict[str, dict[str, Obj]] = {}
        self.objects: dict[str, Obj] = {}
        self.meta: dict[str, dict[str, Any]] = {}
        self.deleted: set[str] = set()
        self.clock_offset: int = 0
        self.request = RequestInfo()
        self.event_listeners: list[Callable[[Obj], None]] = []
        self.dirty = False

    # --- clock -------------------------------------------------------------------------------
    def now(self) -> int:
        """The emulator's global time (real time plus `POST /_emulator/clock/advance` offsets), Unix seconds."""
        return int(time.time()) + self.clock_offset

    def now_for_customer(self, customer_id: str | None) -> int:
        """The frozen time of the customer's test clock, else the global time."""
        if customer_id:
            cust = self.objects.get(customer_id)
            if cust and cust.get("test_clock"):
                clock = self.objects.get(cust["test_clock"])
                if clock:
                    return int(clock["frozen_time"])
        return self.now()

    # --- objects -----------------------------------------------------------------------------
    def put(self, obj: Obj) -> Obj:
        """Store a new object under its id and type."""
        self.objects[obj["id"]] = obj
        self.by_type.setdefault(obj["object"], {})[obj["id"]] = obj
        self.dirty = True
        return obj

    def remove(self, object_id: str) -> None:
        """Forget an object (deleted customers, products, webhook endpoints, ...)."""
        obj = self.objects.pop(object_id, None)
        if obj is not None:
            self.by_type.get(obj["object"], {}).pop(object_id, None)
            self.deleted.add(object_id)
            self.dirty = True

    def get(self, object_id: str, kind: str | None = None, param: str = "id") -> Obj:
        """The stored object, or Stripe's 404 `resource_missing` naming the kind of object."""
        obj = self.objects.get(object_id) if isinstance(object_id, str) else None
        expected = PREFIXES.get(prefix_of(object_id) if isinstance(object_id, str) else "", ("", "object"))
        if obj is None or (kind is not None and obj["object"] != kind):
            noun = next((n for t, n in PREFIXES.values() if t == kind), kind or expected[1])
            raise not_found(noun, str(object_id), param)
        return obj

    def find(self, object_id: str) -> Obj | None:
        """The stored object or None."""
        return self.objects.get(object_id)

    def all(self, kind: str) -> list[Obj]:
        """Objects of a type, newest first."""
        return list(reversed(self.by_type.get(kind, {}).values()))

    def side(self, object_id: str) -> dict[str, Any]:
        """Private data the emulator keeps next to an object (never returned by the API)."""
        return self.meta.setdefault(object_id, {})

    # --- events ------------------------------------------------------------------------------
    def emit(self, type_: str, obj: Obj, previous: dict[str, Any] | None = None) -> Obj:
        """Record an event with a snapshot of `obj` and hand it to the webhook dispatcher.

        https://docs.stripe.com/api/events/object
        """
        ev = o.event(new_id("evt"), self.now(), type_, clone(obj), API_VERSION)
        if previous is not None:
            ev["data"]["previous_attributes"] = clone(previous)
        ev["request"] = {"id": self.request.id, "idempotency_key": self.request.idempotency_key}
        self.put(ev)
        for listener in self.event_listeners:
            listener(ev)
        return ev

    @contextmanager
    def updating(self, obj: Obj, event_type: str | None) -> Iterator[None]:
        """Apply changes to `obj`; emit `event_type` with `previous_attributes` when anything changed."""
        before = clone(obj)
        yield
        self.dirty = True
        if event_type is None:
            return
        previous = diff(before, obj)
        if previous:
            self.emit(event_type, obj, previous)

    # --- snapshots ---------------------------------------------------------------------------
    def snapshot(self) -> dict[str, Any]:
        """Everything needed to restore the state (`--state-file`)."""
        return {
            "api_version": API_VERSION,
            "clock_offset": self.clock_offset,
            "objects": [obj for objs in self.by_type.values() for obj in objs.values()],
            "meta": self.meta,
            "deleted": sorted(self.deleted),
        }

    def restore(self, data: dict[str, Any]) -> None:
        """Load a snapshot written by `snapshot()`."""
        self.clear()
        self.clock_offset = int(data.get("clock_offset", 0))
        for obj in data.get("objects", []):
            self.put(obj)
        self.meta = dict(data.get("meta", {}))
        self.deleted = set(data.get("deleted", []))
        self.dirty = False

    def clear(self) -> None:
        """Drop all objects and reset the clock."""
        self.by_type.clear()
        self.objects.clear()
        self.meta.clear()
        self.deleted.clear()
        self.clock_offset = 0
        self.dirty = True

    def save(self, path: str) -> None:
        """Write the snapshot atomically (a temp file renamed over the old one)."""
        target = Path(path)
        target.parent.mkdir(parents=True, exist_ok=True)
        tmp = target.with_suffix(target.suffix + ".tmp")
        tmp.write_text(json.dumps(self.snapshot()))
        os.replace(tmp, target)
        self.dirty = False
