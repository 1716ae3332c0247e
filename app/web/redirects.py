"""Same-origin redirect targets."""

from __future__ import annotations

from urllib.parse import urlsplit

DEFAULT_AFTER_LOGIN = "/account"


def safe_next_path(value: str | None, default: str = DEFAULT_AFTER_LOGIN) -> str:
    """Return `value` when it is a path on this site, else `default`.

    Accepts `/account`, `/billing/history?page=2`; refuses absolute URLs (`https://evil`),
    scheme-relative ones (`//evil`, `/\\evil`), and anything with control characters, which
    browsers may strip into one of the former.
    """
    if not value or not value.startswith("/") or value.startswith(("//", "/\\")):
        return default
    if any(ord(ch) < 0x20 or ch == "\x7f" or ch == "\\" for ch in value):
        return default
    parts = urlsplit(value)
    if parts.scheme or parts.netloc:
        return default
    return value
