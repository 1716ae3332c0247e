"""A Babel extractor for the operator's content files (`babel.cfg`): the words of `plans.toml`
(plan descriptions, feature names) and `portal.toml` (workflow titles and descriptions, the
portal headline), so the
shipped catalogue is shown in every page language. Names (`Starter`, `Pro`) stay as they are.

Pages translate these with `_(plan.description)` / `| t`; a string an operator adds later is shown
as written until it is added to the catalogs (`make messages`).
"""

from __future__ import annotations

import tomllib
from collections.abc import Iterator
from typing import IO, Any

TRANSLATED_KEYS = frozenset({"description", "title", "headline"})


def extract_toml(
    fileobj: IO[bytes], keywords: Any, comment_tags: Any, options: Any
) -> Iterator[tuple[int, str, str, list[str]]]:
    """Yield `(line, "gettext", text, [])` for every `title`, `description`, `headline` and feature `name`."""
    raw = fileobj.read().decode("utf-8")
    lines = raw.splitlines()

    def line_of(text: str) -> int:
        quoted = f'"{text}"'
        return next((n for n, line in enumerate(lines, 1) if quoted in line), 1)

    def walk(node: Any, in_features: bool) -> Iterator[str]:
        if isinstance(node, dict):
            for key, value in node.items():
                if isinstance(value, str) and (key in TRANSLATED_KEYS or (in_features and key == "name")):
                    yield value
                else:
                    yield from walk(value, key == "features")
        elif isinstance(node, list):
            for item in node:
                yield from walk(item, in_features)

    for text in walk(tomllib.loads(raw), False):
        yield line_of(text), "gettext", text, []
