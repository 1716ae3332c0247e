"""Property-based tests of every JSON route in the OpenAPI document (schemathesis), on a populated
database: no 5xx, every response matches its documented schema and content type.

Schemathesis drives the live app over HTTP from a worker thread while the app keeps serving on the
test's event loop. Examples per operation are few (`MAX_EXAMPLES`) so the run stays well under a
minute; each failure names the operation and the reproducing request.
"""

from __future__ import annotations

import asyncio
import time
from typing import Any

import httpx
import pytest
import schemathesis
from hypothesis import HealthCheck, Phase, given, settings
from schemathesis.checks import not_a_server_error
from schemathesis.specs.openapi.checks import (
    content_type_conformance,
    response_schema_conformance,
    status_code_conformance,
)

from app.auth.tables import User
from tests.support.billing import buy, signed_in_user
from tests.test_api_billing import _seed_payments

MAX_EXAMPLES = 15
JSON_ROUTES = r"^/(api|v1|stripe)/"
CHECKS = [not_a_server_error, response_schema_conformance, content_type_conformance, status_code_conformance]


@pytest.mark.usefixtures("portal_configured")
async def test_every_json_route_keeps_its_contract_under_generated_input(
    billing_client: httpx.AsyncClient, oidc_provider: Any
) -> None:
    # A populated database: a subscriber with a Stripe customer, a portal session and many payments.
    await signed_in_user(billing_client, oidc_provider, "prop")
    await buy(billing_client, "pro_monthly")
    user = await User.objects().get(User.subject == "prop")
    assert user is not None
    await _seed_payments(user, 30)
    # With the support role the operator reads (configurations, analytics) run too; their writes are 403.
    token = oidc_provider.access_token("prop", f"{billing_client.base_url}/api", roles=["support"])
    document = (await billing_client.get("/schema/openapi.json")).json()
    base_url = str(billing_client.base_url)

    def run() -> tuple[list[str], int]:
        schema = schemathesis.openapi.from_dict(document).include(path_regex=JSON_ROUTES)
        failures: list[str] = []
        operations = 0
        for result in schema.get_all_operations():
            operation = result.ok()
            operations += 1

            @settings(
                max_examples=MAX_EXAMPLES,
                deadline=None,
                database=None,
                derandomize=True,
                phases=[Phase.explicit, Phase.generate],
                suppress_health_check=list(HealthCheck),
            )
            @given(case=operation.as_strategy())
            def check(case: Any) -> None:
                response = case.call(base_url=base_url, headers={"Authorization": f"Bearer {token}"}, timeout=30)
                case.validate_response(response, checks=CHECKS)

            try:
                check()
            except BaseException as exc:  # schemathesis reports a FailureGroup (an exception group)
                if isinstance(exc, KeyboardInterrupt | SystemExit):
                    raise
                failures.append(f"{operation.label}: {exc}")
        return failures, operations

    started = time.monotonic()
    failures, operations = await asyncio.to_thread(run)
    elapsed = time.monotonic() - started

    assert operations >= 15, f"only {operations} JSON operations in the OpenAPI document"
    assert not failures, "\n\n".join(failures)
    print(f"schemathesis: {operations} operations, {MAX_EXAMPLES} examples each, {elapsed:.1f} s")
    # About 20 s on an idle 2-core machine; the bound is loose so a loaded CI machine does not flake.
    assert elapsed < 120, f"the property run took {elapsed:.0f} s"
