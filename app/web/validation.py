"""Shapes of identifiers that arrive in URLs and forms, checked before they reach Stripe or a query.

Stripe ids and lookup keys are short ASCII words; anything else (a NUL, spaces, 10 kB) is refused
with a 400 up front instead of failing inside PostgreSQL (which cannot store NUL) or at Stripe.
"""

from __future__ import annotations

import re
from typing import Any, TypeGuard

from litestar import Request
from litestar.exceptions import ClientException, NotFoundException

INT4_MAX = 2**31 - 1
"""The largest id a PostgreSQL `serial` column holds."""

CHECKOUT_SESSION_ID = re.compile(r"cs_[A-Za-z0-9_]{1,250}")
LOOKUP_KEY = re.compile(r"[A-Za-z0-9_.:\-]{1,200}")


def is_lookup_key(value: str | None) -> TypeGuard[str]:
    """True for a plausible Stripe Price `lookup_key` ("pro_monthly"); False for empty or odd input."""
    return bool(value) and LOOKUP_KEY.fullmatch(value or "") is not None


def is_checkout_session_id(value: str | None) -> TypeGuard[str]:
    """True for a plausible Checkout Session id ("cs_test_a1B2…")."""
    return bool(value) and CHECKOUT_SESSION_ID.fullmatch(value or "") is not None


def within_int4(value: int | None) -> bool:
    """True for an integer a PostgreSQL `integer`/`serial` column can hold (None counts as fine)."""
    return value is None or -INT4_MAX - 1 <= value <= INT4_MAX


def refuse_unstorable_input(request: Request[Any, Any, Any]) -> None:
    """A `before_request` check for every route: a NUL character in the address (PostgreSQL cannot
    store it) is a 400, and an integer path parameter beyond PostgreSQL's `integer` range names no
    row, so it is a 404, before any handler queries with it.

    Raises:
        ClientException: 400, a NUL in the path or query string.
        NotFoundException: an integer path parameter out of range.
    """
    query: bytes = request.scope.get("query_string", b"")
    if "\x00" in request.scope["path"] or b"%00" in query or b"\x00" in query:
        raise ClientException("The address contains a NUL character.")
    for value in request.path_params.values():
        if isinstance(value, int) and not within_int4(value):
            raise NotFoundException
