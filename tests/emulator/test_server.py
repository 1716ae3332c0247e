"""Wire-level behaviour: form decoding, headers, auth, control endpoints, state file and CLI flags."""

from __future__ import annotations

import json
import subprocess
import sys
import time
from pathlib import Path

import httpx
import pytest
import stripe

from e2e.stripe_emulator import EmulatorConfig, RunningEmulator, run_in_thread
from e2e.stripe_emulator.__main__ import parse_args
from e2e.stripe_emulator.forms import parse_form

from .conftest import API_KEY

AUTH = {"Authorization": f"Bearer {API_KEY}"}


def test_nested_form_keys_become_dicts_and_lists() -> None:
    parsed = parse_form(
        "items[0][price]=p1&items[0][quantity]=2&items[1][price]=p2&expand[]=a&expand[]=b"
        "&metadata[user_id]=42&metadata[0]=zero&flow_data[after_completion][type]=redirect"
    )
    assert parsed == {
        "items": [{"price": "p1", "quantity": "2"}, {"price": "p2"}],
        "expand": ["a", "b"],
        "metadata": {"user_id": "42", "0": "zero"},
        "flow_data": {"after_completion": {"type": "redirect"}},
    }
    assert parse_form("line_items[][price]=a&line_items[][quantity]=1&line_items[][price]=b") == {
        "line_items": [{"price": "a", "quantity": "1"}, {"price": "b"}]
    }


def test_every_api_answer_carries_the_sdk_pinned_stripe_version(
    emulator: RunningEmulator, control: httpx.Client
) -> None:
    ok = control.get("/v1/customers", headers=AUTH)
    assert ok.headers["stripe-version"] == stripe.api_version
    assert ok.json() == {"object": "list", "data": [], "has_more": False, "url": "/v1/customers"}
    missing = control.get("/v1/customers/cus_missing", headers=AUTH)
    assert missing.status_code == 404
    assert missing.headers["stripe-version"] == stripe.api_version


@pytest.mark.parametrize("header", [None, "Bearer pk_test_123", "Bearer sk_live_123", "Token sk_test_123"])
def test_missing_or_malformed_keys_get_stripes_401_envelope(control: httpx.Client, header: str | None) -> None:
    response = control.get("/v1/customers", headers={"Authorization": header} if header else {})
    assert response.status_code == 401
    error = response.json()["error"]
    assert error["type"] == "invalid_request_error"
    assert error["message"]


def test_basic_auth_with_the_key_as_user_is_accepted(control: httpx.Client) -> None:
    assert control.get("/v1/customers", auth=(API_KEY, "")).status_code == 200


def test_idempotent_replay_is_marked_in_headers(control: httpx.Client) -> None:
    headers = {**AUTH, "Idempotency-Key": "raw-1"}
    first = control.post("/v1/customers", data={"email": "a@example.com"}, headers=headers)
    again = control.post("/v1/customers", data={"email": "a@example.com"}, headers=headers)
    assert again.json()["id"] == first.json()["id"]
    assert again.headers["idempotent-replayed"] == "true"
    other = control.post("/v1/customers", data={"email": "b@example.com"}, headers=headers)
    assert other.status_code == 400
    assert other.json()["error"]["type"] == "idempotency_error"


def test_expanding_a_field_that_does_not_exist_is_an_error(control: httpx.Client) -> None:
    customer = control.post("/v1/customers", data={"email": "x@example.com"}, headers=AUTH).json()
    bad = control.get(f"/v1/customers/{customer['id']}", params={"expand[]": "latest_invoice"}, headers=AUTH)
    assert bad.status_code == 400
    assert bad.json()["error"]["param"] == "expand"


def test_search_by_email_and_metadata(stripe_client: stripe.StripeClient) -> None:
    alice = stripe_client.v1.customers.create(params={"email": "Alice@example.com", "metadata": {"user_id": "42"}})
    stripe_client.v1.customers.create(params={"email": "bob@example.com", "metadata": {"user_id": "43"}})
    by_email = stripe_client.v1.customers.search(params={"query": "email:'alice@example.com'"})
    assert [c.id for c in by_email.data] == [alice.id]
    by_meta = stripe_client.v1.customers.search(params={"query": "metadata['user_id']:'42'"})
    assert [c.id for c in by_meta.data] == [alice.id]
    both = stripe_client.v1.customers.search(params={"query": "metadata['user_id']:'42' OR email:'bob@example.com'"})
    assert len(both.data) == 2


def test_lookup_keys_move_only_with_transfer_lookup_key(stripe_client: stripe.StripeClient) -> None:
    product = stripe_client.v1.products.create(params={"name": "Keys"})
    old = stripe_client.v1.prices.create(
        params={"product": product.id, "unit_amount": 100, "currency": "usd", "lookup_key": "pro"}
    )
    with pytest.raises(stripe.InvalidRequestError):
        stripe_client.v1.prices.create(
            params={"product": product.id, "unit_amount": 200, "currency": "usd", "lookup_key": "pro"}
        )
    new = stripe_client.v1.prices.create(
        params={
            "product": product.id,
            "unit_amount": 200,
            "currency": "usd",
            "lookup_key": "pro",
            "transfer_lookup_key": True,
        }
    )
    found = stripe_client.v1.prices.list(params={"lookup_keys": ["pro"]}).data
    assert [p.id for p in found] == [new.id]
    assert stripe_client.v1.prices.retrieve(old.id).lookup_key is None


def test_global_clock_control_moves_time_forward_only(control: httpx.Client) -> None:
    before = control.get("/_emulator/clock").json()["now"]
    moved = control.post("/_emulator/clock/advance", json={"seconds": 3600}).json()["now"]
    assert moved >= before + 3600
    assert control.post("/_emulator/clock/advance", json={"to": before}).status_code == 400
    assert control.get("/_emulator/health").json()["status"] == "ok"


def test_state_file_survives_a_restart(tmp_path: Path) -> None:
    state = tmp_path / "not-yet" / "state.json"
    first = run_in_thread(EmulatorConfig(port=0, state_file=str(state)))
    client = stripe.StripeClient(API_KEY, base_addresses={"api": first.url}, max_network_retries=0)
    customer = client.v1.customers.create(params={"email": "keep@example.com"})
    first.stop()
    assert json.loads(state.read_text())["objects"]
    second = run_in_thread(EmulatorConfig(port=0, state_file=str(state)))
    try:
        client = stripe.StripeClient(API_KEY, base_addresses={"api": second.url}, max_network_retries=0)
        assert client.v1.customers.retrieve(customer.id).email == "keep@example.com"
    finally:
        second.stop()


def test_cli_flags_map_to_the_config() -> None:
    config = parse_args(
        [
            "--port",
            "12999",
            "--host",
            "0.0.0.0",
            "--public-url",
            "http://stripe.local:12999/",
            "--webhook-url",
            "http://app/webhooks/stripe",
            "--webhook-secret",
            "whsec_abc",
            "--state-file",
            "/tmp/x.json",
            "--retry-schedule",
            "0.5,1",
            "--dunning-final-status",
            "unpaid",
        ]
    )
    assert (config.host, config.port, config.base_url) == ("0.0.0.0", 12999, "http://stripe.local:12999")
    assert [(w.url, w.secret) for w in config.webhooks] == [("http://app/webhooks/stripe", "whsec_abc")]
    assert config.retry_schedule == [0.5, 1.0]
    assert config.dunning_final_status == "unpaid"
    assert EmulatorConfig(port=12111).base_url == "http://localhost:12111"


def test_module_entrypoint_serves_the_api(tmp_path: Path) -> None:
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    proc = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "e2e.stripe_emulator",
            "--port",
            str(port),
            "--webhook-url",
            "http://127.0.0.1:9/x",
            "--webhook-secret",
            "whsec_cli",
        ],
        cwd=Path(__file__).resolve().parents[2],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        deadline = time.monotonic() + 15
        while True:
            try:
                response = httpx.get(f"http://127.0.0.1:{port}/v1/webhook_endpoints", headers=AUTH)
                break
            except httpx.ConnectError:
                if time.monotonic() > deadline:
                    raise
                time.sleep(0.1)
        assert [e["url"] for e in response.json()["data"]] == ["http://127.0.0.1:9/x"]
    finally:
        proc.terminate()
        proc.wait(timeout=10)


def test_search_works_for_subscriptions_and_prices(stripe_client: stripe.StripeClient) -> None:
    from .helpers import monthly_price, subscribe

    price = monthly_price(stripe_client)
    customer, _, sub = subscribe(stripe_client, price)
    stripe_client.v1.subscriptions.update(sub.id, params={"metadata": {"user_id": "77"}})
    found = stripe_client.v1.subscriptions.search(params={"query": "metadata['user_id']:'77' AND status:'active'"})
    assert [s.id for s in found.data] == [sub.id]
    prices = stripe_client.v1.prices.search(params={"query": "active:'true' AND currency:'usd'"})
    assert [p.id for p in prices.data] == [price.id]
    assert customer.id


def test_customer_includes_subscriptions_and_tax_ids_on_request(stripe_client: stripe.StripeClient) -> None:
    from .helpers import monthly_price, subscribe

    customer, _, sub = subscribe(stripe_client, monthly_price(stripe_client))
    stripe_client.v1.customers.tax_ids.create(customer.id, params={"type": "eu_vat", "value": "DE123456789"})
    plain = stripe_client.v1.customers.retrieve(customer.id).to_dict()
    assert "subscriptions" not in plain and "tax_ids" not in plain
    full = stripe_client.v1.customers.retrieve(customer.id, params={"expand": ["subscriptions", "tax_ids"]})
    assert [s.id for s in full.subscriptions.data] == [sub.id]
    assert full.tax_ids.data[0].value == "DE123456789"
