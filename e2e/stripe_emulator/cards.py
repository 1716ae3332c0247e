"""Stripe's test cards and test PaymentMethod ids (https://docs.stripe.com/testing)."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class TestCard:
    """What a test card does: `ok`, `decline` (at attach and charge) or `charge_fail` (attach ok, charges fail)."""

    number: str
    brand: str
    behaviour: str = "ok"
    decline_code: str | None = None
    funding: str = "credit"
    country: str = "US"

    @property
    def last4(self) -> str:
        return self.number[-4:]


CARDS: dict[str, TestCard] = {
    c.number: c
    for c in [
        TestCard("4242424242424242", "visa"),
        TestCard("4000056655665556", "visa", funding="debit"),
        TestCard("5555555555554444", "mastercard"),
        TestCard("2223003122003222", "mastercard"),
        TestCard("378282246310005", "amex"),
        TestCard("6011111111111117", "discover"),
        TestCard("4000000000000002", "visa", "decline", "generic_decline"),
        TestCard("4000000000009995", "visa", "decline", "insufficient_funds", funding="debit"),
        TestCard("4000000000009987", "visa", "decline", "lost_card"),
        TestCard("4000000000000069", "visa", "decline", "expired_card"),
        TestCard("4000000000000341", "visa", "charge_fail", "generic_decline"),
    ]
}

# Test PaymentMethod ids accepted wherever a PaymentMethod id is (https://docs.stripe.com/testing#cards).
TOKENS: dict[str, str] = {
    "pm_card_visa": "4242424242424242",
    "pm_card_visa_debit": "4000056655665556",
    "pm_card_mastercard": "5555555555554444",
    "pm_card_amex": "378282246310005",
    "pm_card_discover": "6011111111111117",
    "pm_card_chargeDeclined": "4000000000000002",
    "pm_card_chargeDeclinedInsufficientFunds": "4000000000009995",
    "pm_card_chargeDeclinedLostCard": "4000000000009987",
    "pm_card_chargeDeclinedExpiredCard": "4000000000000069",
    "pm_card_chargeCustomerFail": "4000000000000341",
    "tok_visa": "4242424242424242",
    "tok_mastercard": "5555555555554444",
    "tok_amex": "378282246310005",
    "tok_chargeDeclined": "4000000000000002",
    "tok_chargeDeclinedInsufficientFunds": "4000000000009995",
    "tok_chargeCustomerFail": "4000000000000341",
}

DECLINE_MESSAGES: dict[str, str] = {
    "generic_decline": "Your card was declined.",
    "insufficient_funds": "Your card has insufficient funds.",
    "lost_card": "Your card was declined.",
    "expired_card": "Your card has expired.",
}


def luhn_ok(number: str) -> bool:
    """The Luhn checksum every real card number passes."""
    if not number.isdigit() or not 12 <= len(number) <= 19:
        return False
    total = 0
    for i, ch in enumerate(reversed(number)):
        d = int(ch)
        if i % 2 == 1:
            d = d * 2 - 9 if d > 4 else d * 2
        total += d
    return total % 10 == 0


def card_for_number(number: str) -> TestCard | None:
    """The test card for a typed number (spaces allowed); None when the number fails the Luhn check."""
    digits = "".join(ch for ch in number if ch.isdigit())
    if digits in CARDS:
        return CARDS[digits]
    if not luhn_ok(digits):
        return None
    brand = {"4": "visa", "5": "mastercard", "2": "mastercard", "3": "amex", "6": "discover"}.get(digits[0], "unknown")
    return TestCard(digits, brand)
