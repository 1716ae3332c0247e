"""Rejecting parameters Stripe does not know, like Stripe's `parameter_unknown` error.

The allowed keys come from the `stripe` SDK's generated TypedDicts (`stripe.params.CustomerCreateParams`
and friends), which mirror Stripe's OpenAPI spec for the SDK's pinned API version
(https://docs.stripe.com/api/errors: `parameter_unknown`).
"""

from __future__ import annotations

import functools
import importlib
import sys
import typing
from typing import Any

import typing_extensions

from .errors import StripeError

# Keys of `stripe.RequestOptions`, which every params TypedDict inherits but which are not API parameters.
_REQUEST_OPTION_KEYS = frozenset(
    {
        "api_key",
        "stripe_version",
        "stripe_account",
        "stripe_context",
        "idempotency_key",
        "headers",
        "base_address",
        "max_network_retries",
        "content_type",
    }
)
ANY = "any"
Schema = dict[str, Any] | str | None


def _unwrap(tp: Any, module: Any) -> list[Any]:
    """Flatten NotRequired/Required/Optional/Union/List into candidate member types."""
    if isinstance(tp, str):
        try:
            tp = eval(tp, vars(module))  # the SDK's own forward references, resolved in its module
        except Exception:
            return [ANY]
    if isinstance(tp, typing.ForwardRef):
        return _unwrap(tp.__forward_arg__, module)
    origin = typing.get_origin(tp)
    args = typing.get_args(tp)
    name = getattr(origin, "_name", None) or getattr(origin, "__name__", "") or ""
    if origin is not None and (name in {"NotRequired", "Required", "Optional"} or "NotRequired" in str(origin)):
        return [m for a in args for m in _unwrap(a, module)]
    if (
        origin in (typing.Union,)
        or str(origin) == "<class 'types.UnionType'>"
        or (origin is not None and "Union" in repr(origin))
    ):
        return [m for a in args for m in _unwrap(a, module)]
    if origin in (list, typing.List):  # noqa: UP006
        return [m for a in args for m in _unwrap(a, module)]
    if origin in (dict, typing.Dict):  # noqa: UP006
        return [ANY]
    if isinstance(tp, type) and typing_extensions.is_typeddict(tp):
        return [tp]
    if isinstance(tp, type) and tp.__name__ == "UntypedStripeObject":
        return [ANY]
    if origin is not None and getattr(origin, "__name__", "") == "UntypedStripeObject":
        return [ANY]
    return [None]


@functools.cache
def schema_for(td: type) -> dict[str, Any]:
    """A nested `{key: sub_schema}` map for a params TypedDict; leaves are None, free maps ANY."""
    module = sys.modules[td.__module__]
    out: dict[str, Any] = {}
    for klass in reversed(td.__mro__):
        for key, tp in getattr(klass, "__annotations__", {}).items():
            if key in _REQUEST_OPTION_KEYS:
                continue
            out[key] = _LazySchema(tp, sys.modules[klass.__module__] if klass is not td else module)
    return out


class _LazySchema:
    """Resolves a field's type on first use (most fields of big TypedDicts are never sent)."""

    __slots__ = ("_module", "_resolved", "_tp")

    def __init__(self, tp: Any, module: Any) -> None:
        self._tp = tp
        self._module = module
        self._resolved: Schema | bool = False

    def get(self) -> Schema:
        if self._resolved is False:
            members = _unwrap(self._tp, self._module)
            if ANY in members:
                self._resolved = ANY
            else:
                merged: dict[str, Any] = {}
                for m in members:
                    if m is not None:
                        merged.update(schema_for(m))
                self._resolved = merged or None
        return self._resolved  # type: ignore[return-value]


@functools.cache
def resolve(name: str) -> type | None:
    """`"checkout.SessionCreateParams"` → the TypedDict from `stripe.params`, or None if unknown."""
    module_name, _, cls = name.rpartition(".")
    try:
        module = importlib.import_module("stripe.params" + ("." + module_name if module_name else ""))
        found = getattr(module, cls)
    except (ImportError, AttributeError):
        return None
    return found if isinstance(found, type) else None


def check_unknown(params: dict[str, Any], typed_dict_name: str | None) -> None:
    """Raise Stripe's 400 `parameter_unknown` for the first key the SDK's TypedDict does not name."""
    if not typed_dict_name:
        return
    td = resolve(typed_dict_name)
    if td is None:
        return
    _check(params, schema_for(td), "")


def _check(value: Any, schema: Any, prefix: str) -> None:
    if isinstance(value, list):
        for i, item in enumerate(value):
            _check(item, schema, f"{prefix}[{i}]")
        return
    if not isinstance(value, dict) or not isinstance(schema, dict):
        return
    for key, sub in value.items():
        full = f"{prefix}[{key}]" if prefix else key
        if key not in schema:
            raise StripeError(f"Received unknown parameter: {full}", code="parameter_unknown", param=full)
        child = schema[key]
        resolved = child.get() if isinstance(child, _LazySchema) else child
        if resolved is None or resolved == ANY:
            continue
        _check(sub, resolved, full)
