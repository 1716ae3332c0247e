"""The Stripe webhook endpoint this app needs: its URL, event types and API version.

Used by `litestar billing webhook create` (creates or corrects it) and `litestar billing doctor`
(checks it). Stripe API: https://docs.stripe.com/api/webhook_endpoints
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Literal

from app.stripe_gateway import API_VERSION
from app.webhooks.service import HANDLERS

ENABLED_EVENTS: list[str] = sorted(HANDLERS)
"""Exactly the event types `app.webhooks.service` handles; nothing else is worth Stripe's delivery."""


def endpoint_url(base_url: str) -> str:
    """`APP_BASE_URL` + `/webhooks/stripe`."""
    return base_url.rstrip("/") + "/webhooks/stripe"


@dataclass(frozen=True)
class EndpointPlan:
    """What to do about the endpoint for `url`.

    `action`: `create` (none exists), `update` (its event types differ), `recreate` (its API version
    differs: Stripe cannot change that, so a new endpoint is needed) or `ok`.
    """

    action: Literal["create", "update", "recreate", "ok"]
    url: str
    endpoint: dict[str, Any] | None
    missing: tuple[str, ...] = ()
    extra: tuple[str, ...] = ()

    def describe(self) -> str:
        """One line for people."""
        if self.action == "create":
            return f"no endpoint for {self.url}: create it with {len(ENABLED_EVENTS)} event types, API {API_VERSION}"
        assert self.endpoint is not None
        endpoint_id = self.endpoint["id"]
        if self.action == "recreate":
            version = self.endpoint.get("api_version") or "the account default"
            return (
                f"{endpoint_id} uses API {version}, not {API_VERSION}:"
                " delete it in the Stripe Dashboard, then run this again"
            )
        if self.action == "update":
            parts = ([f"missing {', '.join(self.missing)}"] if self.missing else []) + (
                [f"extra {', '.join(self.extra)}"] if self.extra else []
            )
            return f"{endpoint_id} event types differ ({'; '.join(parts)})"
        return f"{endpoint_id} at {self.url}: {len(ENABLED_EVENTS)} event types, API {API_VERSION}"


def plan_endpoint(endpoints: list[dict[str, Any]], base_url: str) -> EndpointPlan:
    """Compare the account's `endpoints` (Stripe WebhookEndpoint objects) with what this app needs."""
    url = endpoint_url(base_url)
    matching = [e for e in endpoints if e.get("url") == url and e.get("status", "enabled") == "enabled"]
    if not matching:
        return EndpointPlan("create", url, None)
    endpoint = matching[0]
    if endpoint.get("api_version") != API_VERSION:
        return EndpointPlan("recreate", url, endpoint)
    enabled = set(endpoint.get("enabled_events") or [])
    missing = tuple(sorted(set(ENABLED_EVENTS) - enabled)) if "*" not in enabled else ()
    extra = tuple(sorted(enabled - set(ENABLED_EVENTS)))
    if missing or extra:
        return EndpointPlan("update", url, endpoint, missing, extra)
    return EndpointPlan("ok", url, endpoint)
