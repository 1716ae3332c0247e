"""Money and date formatting follow Babel and Stripe's currency exponents."""

from __future__ import annotations

import pytest

from app.web.i18n import amount_decimal, format_money, negotiate_locale, parse_accept_language


@pytest.mark.parametrize(
    ("cents", "currency", "locale", "expected"),
    [
        (1999, "usd", "en_US", "$19.99"),
        (1999, "eur", "de_DE", "19,99\xa0€"),
        (500, "jpy", "en_US", "¥500"),
        (12345, "kwd", "en_US", "KWD12.345"),
        (0, "usd", "en_US", "$0.00"),
    ],
)
def test_format_money(cents: int, currency: str, locale: str, expected: str) -> None:
    assert format_money(cents, currency, locale) == expected


def test_amount_decimal_is_exact() -> None:
    assert str(amount_decimal(1999, "usd")) == "19.99"
    assert str(amount_decimal(500, "JPY")) == "500"


def test_accept_language_order_and_fallback() -> None:
    assert parse_accept_language("fr-CH, fr;q=0.9, en;q=0.8, de;q=0.7, *;q=0.5") == ["fr-CH", "fr", "en", "de"]
    assert negotiate_locale("de-DE,de;q=0.9", "en_US") == "de_DE"
    assert negotiate_locale("xx-YY", "en_US") == "en_US"
    assert negotiate_locale(None, "en_GB") == "en_GB"
