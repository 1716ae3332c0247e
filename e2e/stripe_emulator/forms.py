"""Decoding of Stripe's form-encoded bodies and query strings.

Stripe's API takes `application/x-www-form-urlencoded` bodies with nested keys:
`items[0][price]=price_1`, `expand[]=customer`, `metadata[user_id]=42`
(https://docs.stripe.com/api/expanding_objects, https://docs.stripe.com/api/metadata).
"""

from __future__ import annotations

import re
from typing import Any
from urllib.parse import parse_qsl

_SEGMENT = re.compile(r"\[([^\[\]]*)\]")
# Keys whose children are free-form maps: never turned into lists even when numeric.
_MAP_KEYS = frozenset({"metadata"})


def parse_form(raw: str | bytes) -> dict[str, Any]:
    """Decode a form-encoded string with bracketed keys into nested dicts and lists.

    `a[b][0][c]=1` becomes `{"a": {"b": [{"c": "1"}]}}`; `a[]=x&a[]=y` becomes `{"a": ["x", "y"]}`.
    Values stay strings; callers coerce them. Raises `ValueError` on a malformed key.
    """
    text = raw.decode("utf-8", "replace") if isinstance(raw, bytes) else raw
    root: dict[str, Any] = {}
    for key, value in parse_qsl(text, keep_blank_values=True):
        _insert(root, key, value)
    return _listify(root, None)


def _insert(root: dict[str, Any], key: str, value: str) -> None:
    head, _, rest = key.partition("[")
    parts = [head]
    if rest:
        parts.extend(_SEGMENT.findall("[" + rest))
    node: Any = root
    for i, part in enumerate(parts):
        last = i == len(parts) - 1
        if part == "":
            # `a[]` appends: the marker key keeps insertion order in a dict of generated indices.
            part = f"\x00{len(node)}"
            if not last and parts[i + 1] != "":
                # `a[][b]=1&a[][c]=2` groups consecutive keys into one element when the key is new.
                prev = f"\x00{len(node) - 1}"
                if prev in node and isinstance(node[prev], dict) and parts[i + 1] not in node[prev]:
                    part = prev
        if last:
            node[part] = value
        else:
            child = node.get(part)
            if not isinstance(child, dict):
                child = {}
                node[part] = child
            node = child


def _listify(node: Any, key: str | None) -> Any:
    if not isinstance(node, dict):
        return node
    converted = {k: _listify(v, k) for k, v in node.items()}
    if key in _MAP_KEYS or not converted:
        return {k.lstrip("\x00"): v for k, v in converted.items()}
    if all(k.startswith("\x00") or k.isdigit() for k in converted):
        ordered = sorted(converted.items(), key=lambda kv: int(kv[0].lstrip("\x00")))
        return [v for _, v in ordered]
    return converted
