"""The emulator's objects have the keys and nesting of Stripe's official fixtures.

Reads `../shared/stripe/fixtures3.json` (Stripe's own sample of every object, API 2026-10-28.endive);
deliberate differences are listed, with reasons, in `e2e/stripe_emulator/omissions.py`.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from e2e.stripe_emulator import RunningEmulator, omissions

from .conftest import API_KEY
from .shapes import collect_samples

FIXTURES = Path(__file__).resolve().parents[2].parent / "shared" / "stripe" / "fixtures3.json"

EXPECTED_TYPES = {
    "customer",
    "product",
    "price",
    "plan",
    "payment_method",
    "subscription",
    "subscription_item",
    "invoice",
    "line_item",
    "invoiceitem",
    "invoice_payment",
    "payment_intent",
    "charge",
    "refund",
    "setup_intent",
    "checkout.session",
    "item",
    "billing_portal.session",
    "billing_portal.configuration",
    "event",
    "webhook_endpoint",
    "test_helpers.test_clock",
    "tax_id",
    "entitlements.feature",
    "product_feature",
    "entitlements.active_entitlement",
}


def _differences(ours: dict[str, Any], theirs: dict[str, Any], path: str, out: list[str]) -> None:
    for key in sorted(set(theirs) - set(ours)):
        out.append(f"missing {path}.{key}")
    for key in sorted(set(ours) - set(theirs)):
        out.append(f"extra {path}.{key}")
    for key in sorted(set(ours) & set(theirs)):
        sub = f"{path}.{key}"
        if key in omissions.NOT_COMPARED or sub in omissions.NOT_COMPARED:
            continue
        a, b = ours[key], theirs[key]
        if isinstance(a, dict) and isinstance(b, dict):
            _differences(a, b, sub, out)
        elif (
            isinstance(a, list)
            and isinstance(b, list)
            and a
            and b
            and isinstance(a[0], dict)
            and isinstance(b[0], dict)
        ):
            _differences(a[0], b[0], f"{sub}[]", out)


@pytest.fixture(scope="module")
def fixtures() -> dict[str, Any]:
    if not FIXTURES.exists():
        pytest.skip(f"Stripe's fixtures are not on this machine ({FIXTURES}); the shape test needs ../shared")
    data: dict[str, Any] = json.loads(FIXTURES.read_text())["resources"]
    return data


@pytest.fixture
def samples(emulator: RunningEmulator, control: Any) -> dict[str, dict[str, Any]]:
    return collect_samples(emulator.url, API_KEY)


def test_every_object_type_the_emulator_returns_is_sampled(samples: dict[str, dict[str, Any]]) -> None:
    assert EXPECTED_TYPES <= set(samples), f"not sampled: {EXPECTED_TYPES - set(samples)}"


def test_object_keys_match_stripe_fixtures_except_listed_omissions(
    samples: dict[str, dict[str, Any]], fixtures: dict[str, Any]
) -> None:
    found: list[str] = []
    for kind, obj in sorted(samples.items()):
        assert kind in fixtures, f"Stripe's fixtures have no {kind!r} object"
        _differences(obj, fixtures[kind], kind, found)
    listed = {f"missing {p}" for p in omissions.OMITTED} | {f"extra {p}" for p in omissions.EXTRA}
    unexplained = sorted(set(found) - listed)
    stale = sorted(listed - set(found))
    assert not unexplained, "differences from fixtures3.json not listed in omissions.py:\n" + "\n".join(unexplained)
    assert not stale, "omissions.py lists differences that no longer exist:\n" + "\n".join(stale)


def test_current_api_nesting_of_subscriptions_and_invoices(samples: dict[str, dict[str, Any]]) -> None:
    sub = samples["subscription"]
    assert "current_period_end" not in sub
    assert {"current_period_start", "current_period_end"} <= set(sub["items"]["data"][0])
    invoice = samples["invoice"]
    assert invoice["parent"]["type"] == "subscription_details"
    assert invoice["parent"]["subscription_details"]["subscription"] == sub["id"]
    assert "payment_intent" not in invoice and "charge" not in invoice
