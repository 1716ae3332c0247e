"""The envelope for errors raised by any code under `/api` (the contract other areas rely on)."""

from __future__ import annotations

import logging

import pytest
from litestar import Litestar, get
from litestar.exceptions import NotFoundException, PermissionDeniedException, TooManyRequestsException
from litestar.testing import TestClient

from app.api.errors import with_api_envelope
from app.web.errors import EXCEPTION_HANDLERS


@get("/api/v1/boom")
async def boom() -> None:
    raise RuntimeError("database password is hunter2")


@get("/api/v1/customers/{external_id:str}/state")
async def host_state(external_id: str) -> None:
    raise NotFoundException(detail="No customer with that external id.", extra={"error_code": "customer_not_found"})


@get("/api/v1/denied")
async def denied() -> None:
    raise PermissionDeniedException(detail="Needs the admin role.", extra={"error_code": "role_required"})


@get("/api/v1/slow-down")
async def slow_down() -> None:
    raise TooManyRequestsException(headers={"RateLimit-Reset": "17"})


@pytest.fixture(scope="module")
def client() -> TestClient[Litestar]:
    app = Litestar([boom, host_state, denied, slow_down], exception_handlers=with_api_envelope(EXCEPTION_HANDLERS))
    with TestClient(app, raise_server_exceptions=False) as test_client:
        yield test_client


def test_an_unexpected_error_is_a_500_envelope_that_reveals_nothing(
    client: TestClient[Litestar], caplog: pytest.LogCaptureFixture
) -> None:
    with caplog.at_level(logging.ERROR):
        response = client.get("/api/v1/boom")

    assert response.status_code == 500
    body = response.json()
    assert body["success"] is False and body["error_code"] == "internal_error"
    assert "hunter2" not in response.text
    assert body["request_id"] in caplog.text, "the log line carries the request id"


def test_codes_chosen_by_other_areas_are_honoured(client: TestClient[Litestar]) -> None:
    missing = client.get("/api/v1/customers/ext-1/state")
    assert missing.status_code == 404
    assert missing.json()["error_code"] == "customer_not_found"
    assert missing.json()["error"] == "No customer with that external id."

    refused = client.get("/api/v1/denied")
    assert refused.status_code == 403 and refused.json()["error_code"] == "role_required"


def test_429_carries_retry_after(client: TestClient[Litestar]) -> None:
    response = client.get("/api/v1/slow-down")

    assert response.status_code == 429
    assert response.json()["error_code"] == "rate_limited"
    assert response.headers["retry-after"] == "17"
