"""Stripe's error envelope (https://docs.stripe.com/api/errors)."""

from __future__ import annotations

from typing import Any


class StripeError(Exception):
    """An API error rendered as `{"error": {...}}` with Stripe's HTTP status.

    `type` is one of `invalid_request_error`, `card_error`, `idempotency_error`, `api_error`;
    `code` is Stripe's error code (`parameter_missing`, `resource_missing`, `card_declined`, ...).
    """

    def __init__(
        self,
        message: str,
        *,
        status: int = 400,
        type: str = "invalid_request_error",
        code: str | None = None,
        param: str | None = None,
        **extra: Any,
    ) -> None:
        super().__init__(message)
        self.message = message
        self.status = status
        self.type = type
        self.code = code
        self.param = param
        self.extra = extra

    def body(self, request_log_url: str | None = None) -> dict[str, Any]:
        """The JSON error envelope Stripe returns."""
        error: dict[str, Any] = {"type": self.type, "message": self.message}
        if self.code:
            error["code"] = self.code
            error["doc_url"] = f"https://stripe.com/docs/error-codes/{self.code.replace('_', '-')}"
        if self.param:
            error["param"] = self.param
        if request_log_url:
            error["request_log_url"] = request_log_url
        error.update(self.extra)
        return {"error": error}


def missing(param: str) -> StripeError:
    """400 `parameter_missing` for a required parameter."""
    return StripeError(f"Missing required param: {param}.", code="parameter_missing", param=param)


def not_found(kind: str, object_id: str, param: str = "id") -> StripeError:
    """404 `resource_missing`, worded like Stripe's: "No such customer: 'cus_x'"."""
    return StripeError(f"No such {kind}: '{object_id}'", status=404, code="resource_missing", param=param)


def invalid(message: str, param: str | None = None, code: str | None = None) -> StripeError:
    """400 `invalid_request_error` with an optional code."""
    return StripeError(message, param=param, code=code)
