"""Settings of one emulator instance (the CLI flags of `python -m e2e.stripe_emulator`)."""

from __future__ import annotations

from dataclasses import dataclass, field


@dataclass
class WebhookTarget:
    """An endpoint registered at start-up for all events (`--webhook-url` / `--webhook-secret`)."""

    url: str
    secret: str


@dataclass
class EmulatorConfig:
    """How the emulator runs; every field has a CLI flag of the same name."""

    host: str = "127.0.0.1"
    port: int = 12111
    public_url: str | None = None
    webhooks: list[WebhookTarget] = field(default_factory=list)
    state_file: str | None = None
    # Seconds between webhook delivery attempts after a failure (Stripe: up to 3 days, compressed here).
    retry_schedule: list[float] = field(default_factory=lambda: [1.0, 2.0, 4.0])
    webhook_timeout: float = 5.0
    # Days after the first failed renewal payment when Stripe's dunning retries run.
    dunning_retry_days: list[int] = field(default_factory=lambda: [3, 5, 7])
    # Subscription status after the last failed retry: "canceled" or "unpaid" (Billing settings).
    dunning_final_status: str = "canceled"
    business_name: str = "Billing Portal (Stripe emulator)"
    # Added before every /v1 answer (POST /_emulator/settings {"api_latency_ms": 50}): Stripe's network latency.
    api_latency_seconds: float = 0.0
    # Every /v1 request answers 503 api_error while set ({"api_outage": true}): a Stripe outage.
    api_outage: bool = False

    @property
    def base_url(self) -> str:
        """The public base URL used in hosted page links (`url`, `hosted_invoice_url`, ...)."""
        return (self.public_url or f"http://localhost:{self.port}").rstrip("/")
