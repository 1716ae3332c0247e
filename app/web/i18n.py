"""Money and dates for people: Babel formatting in the person's locale and time zone.

The locale comes from the browser's `Accept-Language` (falling back to `DEFAULT_LOCALE`); the time
zone from the `tz` cookie that `static/js/app.js` sets from the browser's own setting (falling
back to `DEFAULT_TIMEZONE`), so pages without JavaScript still show correct, labelled times.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from datetime import date as Date
from datetime import datetime
from decimal import Decimal
from functools import lru_cache
from typing import Any
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from babel import Locale, UnknownLocaleError
from babel.dates import format_date, format_datetime
from babel.numbers import format_currency

# Stripe amounts are in the currency's smallest unit; these currencies have none below the unit
# (https://docs.stripe.com/currencies#zero-decimal) or three decimals (#three-decimal).
ZERO_DECIMAL_CURRENCIES = frozenset("bif clp djf gnf jpy kmf krw mga pyg rwf ugx vnd vuv xaf xof xpf".split())
THREE_DECIMAL_CURRENCIES = frozenset("bhd jod kwd omr tnd".split())


def currency_exponent(currency: str) -> int:
    """Digits after the decimal point in Stripe amounts of `currency` (0, 2 or 3)."""
    code = currency.lower()
    if code in ZERO_DECIMAL_CURRENCIES:
        return 0
    if code in THREE_DECIMAL_CURRENCIES:
        return 3
    return 2


def amount_decimal(amount_cents: int, currency: str) -> Decimal:
    """A Stripe amount in minor units as a Decimal in major units: (1999, "usd") → 19.99."""
    return Decimal(amount_cents).scaleb(-currency_exponent(currency))


@lru_cache(maxsize=256)
def babel_locale(tag: str) -> Locale:
    """The Babel `Locale` of a tag such as `de_DE`, parsed once per process (parsing loads CLDR data)."""
    return Locale.parse(tag)


@lru_cache(maxsize=4096)  # Babel's formatting is the costly part of a page's money; amounts repeat
def format_money(amount_cents: int, currency: str, locale: str = "en_US") -> str:
    """(1999, "usd", "en_US") → "$19.99"; (1999, "eur", "de_DE") → "19,99 €"; (500, "jpy") → "¥500"."""
    return format_currency(amount_decimal(amount_cents, currency), currency.upper(), locale=babel_locale(locale))


def parse_accept_language(header: str | None) -> list[str]:
    """Language tags of an `Accept-Language` header, most preferred first (q=0 dropped)."""
    weighted: list[tuple[float, int, str]] = []
    for position, part in enumerate((header or "").split(",")):
        tag, _, params = part.strip().partition(";")
        quality = 1.0
        if params.strip().startswith("q="):
            try:
                quality = float(params.strip()[2:])
            except ValueError:
                quality = 0.0
        if tag and tag != "*" and quality > 0:
            weighted.append((-quality, position, tag.strip()))
    return [tag for _, _, tag in sorted(weighted)]


def negotiate_locale(header: str | None, default: str) -> str:
    """The first locale of `header` that Babel knows, as `ll_CC` or `ll`; else `default`."""
    for tag in parse_accept_language(header):
        try:
            return str(Locale.parse(tag, sep="-"))
        except (ValueError, UnknownLocaleError):
            continue
    return default


def timezone_named(name: str | None, default: str) -> ZoneInfo:
    """`ZoneInfo(name)` when it is a known IANA zone, else `ZoneInfo(default)` (never raises for `name`)."""
    if name and len(name) <= 64:
        try:
            return ZoneInfo(name)
        except (ZoneInfoNotFoundError, ValueError, OSError):
            pass
    return ZoneInfo(default)


@dataclass(frozen=True)
class Preferences:
    """How to show money and dates to one person: a Babel locale (`en_US`) and an IANA zone."""

    locale: str
    timezone: ZoneInfo

    @property
    def timezone_name(self) -> str:
        return self.timezone.key


_PREFERENCES_KEY = "billing_preferences"


def request_preferences(request: Any) -> Preferences:
    """The one place that reads a person's locale (`Accept-Language`) and time zone (`tz` cookie);
    any unknown, malformed or oversized value falls back to `DEFAULT_LOCALE` / `DEFAULT_TIMEZONE`.

    Resolved once per request and kept in the ASGI scope, so every template helper of a page
    (`money`, `date`, ... called once per row) reuses it instead of negotiating again.
    """
    state = request.scope.setdefault("state", {})
    cached = state.get(_PREFERENCES_KEY)
    if cached is not None:
        return cached
    app_settings = request.app.state.settings.app
    header = request.headers.get("accept-language")
    locale = negotiate_locale(header if header and len(header) <= 512 else None, app_settings.default_locale)
    preferences = Preferences(locale, timezone_named(request.cookies.get("tz"), app_settings.default_timezone))
    state[_PREFERENCES_KEY] = preferences
    return preferences


def _request_settings(context: Mapping[str, Any]) -> tuple[str, ZoneInfo]:
    request = context.get("request")
    if request is None:
        return "en_US", ZoneInfo("UTC")
    preferences = request_preferences(request)
    return preferences.locale, preferences.timezone


def request_locale(context: Mapping[str, Any]) -> str:
    """Template callable: the negotiated locale of the current request."""
    return _request_settings(context)[0]


def money(context: Mapping[str, Any], amount_cents: int | None, currency: str | None) -> str:
    """Template callable: `{{ money(p.amount_cents, p.currency) }}` in the person's locale."""
    if amount_cents is None or not currency:
        return "—"
    return format_money(amount_cents, currency, _request_settings(context)[0])


def date(context: Mapping[str, Any], value: datetime | None, format: str = "medium") -> str:
    """Template callable: a date in the person's locale and time zone (`23 Nov 2026`)."""
    if value is None:
        return "—"
    locale, tz = _request_settings(context)
    return _format_date(value.astimezone(tz).date(), format, locale)


def datetime_(context: Mapping[str, Any], value: datetime | None, format: str = "medium") -> str:
    """Template callable: a date and time in the person's locale and time zone, with the zone."""
    if value is None:
        return "—"
    locale, tz = _request_settings(context)
    return _format_datetime(value, format, tz, locale)


# Babel's formatting is most of what a page spends on its dates; the same dates come back on every visit.
@lru_cache(maxsize=4096)
def _format_date(day: Date, format: str, locale: str) -> str:
    return format_date(day, format=format, locale=babel_locale(locale))


@lru_cache(maxsize=4096)
def _format_datetime(value: datetime, format: str, tz: ZoneInfo, locale: str) -> str:
    shown = format_datetime(value, format=format, tzinfo=tz, locale=babel_locale(locale))
    return f"{shown} {value.astimezone(tz).tzname()}"
