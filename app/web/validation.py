"""Shapes of identifiers that arrive in URLs and forms, checked before they reach Stripe or a query.

Stripe ids and lookup keys are short ASCII words; anything else (a NUL, spaces, 10 kB) is refused
with a 400 up front instead of failing inside PostgreSQL (which cannot store NUL) or at Stripe.
"""

from __future__ import annotations

import re
from typing import TypeGuard

CHECKOUT_SESSION_ID = re.compile(r"cs_[A-Za-z0-9_]{1,250}")
LOOKUP_KEY = re.compile(r"[A-Za-z0-9_.:\-]{1,200}")


def is_lookup_key(value: str | None) -> TypeGuard[str]:
    """True for a plausible Stripe Price `lookup_key` ("pro_monthly"); False for empty or odd input."""
    return bool(value) and LOOKUP_KEY.fullmatch(value or "") is not None


def is_checkout_session_id(value: str | None) -> TypeGuard[str]:
    """True for a plausible Checkout Session id ("cs_test_a1B2…")."""
    return bool(value) and CHECKOUT_SESSION_ID.fullmatch(value or "") is not None
