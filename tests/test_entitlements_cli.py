"""`litestar billing api-keys | webhooks | entitlements …` as an operator runs them."""

from __future__ import annotations

import re
from datetime import UTC, datetime

from click.testing import CliRunner

from app.auth.tables import User
from app.entitlements.api_keys import find_key
from app.entitlements.service import entitled_features
from app.entitlements.tables import HostWebhookEndpoint
from tests.test_cli import cli_env, run

__all__ = ["cli_env"]


async def test_api_keys_are_shown_once_work_and_can_be_revoked(cli_env: CliRunner) -> None:
    output = await run(cli_env, "api-keys", "create", "my-product")
    key = re.search(r"bpk_\S+", output)
    assert key is not None
    found = await find_key(key.group(0))
    assert found is not None and found["scope"] == "read"
    assert found["prefix"] in await run(cli_env, "api-keys", "list")
    await run(cli_env, "api-keys", "revoke", found["prefix"])
    assert await find_key(key.group(0)) is None
    assert "revoked" in await run(cli_env, "api-keys", "list")


async def test_an_operator_grants_a_feature_until_a_date_and_ends_it(cli_env: CliRunner) -> None:
    user = User(subject="gus", email="gus@example.com", email_verified=True)
    await user.save()
    output = await run(cli_env, "entitlements", "grant", "gus@example.com", "team_seats", "--until", "2099-01-31")
    assert "Granted team_seats for gus@example.com until 2099-01-31" in output
    rows = await entitled_features(user.id)
    assert rows["team_seats"].source == "grant"
    assert rows["team_seats"].until == datetime(2099, 1, 31, tzinfo=UTC)
    await run(cli_env, "entitlements", "clear", "gus", "team_seats")
    assert await entitled_features(user.id) == {}


async def test_a_webhook_endpoint_is_added_with_a_fresh_secret(cli_env: CliRunner) -> None:
    output = await run(cli_env, "host-webhooks", "add", "https://host.example/hooks/billing")
    secret = re.search(r"whsec_\S+", output)
    row = await HostWebhookEndpoint.objects().get(HostWebhookEndpoint.url == "https://host.example/hooks/billing")
    assert secret is not None and row is not None and row.secret == secret.group(0)
