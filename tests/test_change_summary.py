"""The return summary names exactly what changed; the next charge maps from Stripe's invoice preview."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from typing import Any

from app.billing.changes import describe_changes
from app.billing.upcoming import next_charge_columns, renews
from app.settings import PROJECT_ROOT

BEFORE: dict[str, Any] = {
    "card": "Visa •••• 4242",
    "plan": "Pro monthly",
    "status": "active",
    "email": "old@example.com",
    "name": "Ada",
    "phone": None,
    "address": None,
    "tax_ids": [],
}


def texts(after: dict[str, Any]) -> list[str]:
    return [c.text for c in describe_changes(BEFORE, {**BEFORE, **after})]


def test_only_the_email_changed_names_only_the_email() -> None:
    blank_address = dict.fromkeys(("line1", "line2", "city", "postal_code", "state", "country"), "")
    assert texts({"email": "new@example.com", "address": blank_address}) == [
        "Billing email: old@example.com → new@example.com"
    ]


def test_name_phone_address_and_tax_ids_are_each_named() -> None:
    after = {
        "name": "Ada Lovelace",
        "phone": "+44 20 7946 0000",
        "address": {"line1": "1 Main St", "city": "London", "postal_code": "N1", "country": "GB", "line2": ""},
        "tax_ids": [{"type": "gb_vat", "value": "GB123456789"}],
    }
    assert texts(after) == [
        "Billing name: Ada → Ada Lovelace",
        "Phone: +44 20 7946 0000",
        "Billing address: 1 Main St, N1, London, GB",
        "Tax ID: GB123456789",
    ]
    assert [c.text for c in describe_changes({**BEFORE, **after}, BEFORE)][-1] == "Tax ID removed (GB123456789)"


def test_nothing_changed_says_nothing() -> None:
    assert texts({"address": {"line1": None, "city": ""}}) == []


def test_next_charge_columns_from_stripes_invoice_preview_fixture() -> None:
    # Stripe's own sample Invoice (fixtures3.json, API 2026-10-28.endive), kept in the repo.
    invoice = json.loads((PROJECT_ROOT / "tests/fixtures/invoice.json").read_text())
    columns = next_charge_columns(invoice)
    assert columns["next_charge_amount_cents"] == invoice["amount_due"]
    assert columns["next_charge_currency"] == invoice["currency"]
    expected = invoice.get("next_payment_attempt") or invoice["period_end"]
    assert columns["next_charge_at"] == datetime.fromtimestamp(expected, tz=UTC)
    assert next_charge_columns(None) == {
        "next_charge_amount_cents": None,
        "next_charge_currency": None,
        "next_charge_at": None,
    }


def test_only_renewing_subscriptions_have_a_next_charge() -> None:
    assert renews({"status": "active", "cancel_at_period_end": False, "cancel_at": None})
    assert not renews({"status": "active", "cancel_at_period_end": True})
    assert not renews({"status": "canceled"})
