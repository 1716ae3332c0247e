"""`python -m e2e.stripe_emulator --port 12111 [--webhook-url URL --webhook-secret whsec_...]`."""

from __future__ import annotations

import argparse
import logging

from .config import EmulatorConfig, WebhookTarget
from .server import serve


def parse_args(argv: list[str] | None = None) -> EmulatorConfig:
    """Turn the command line into an `EmulatorConfig`; `--webhook-url`/`--webhook-secret` pair up in order."""
    parser = argparse.ArgumentParser(prog="python -m e2e.stripe_emulator", description="Offline Stripe API emulator.")
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=12111)
    parser.add_argument("--public-url", help="base URL of hosted pages (default http://localhost:<port>)")
    parser.add_argument("--webhook-url", action="append", default=[], help="endpoint for all events (repeatable)")
    parser.add_argument(
        "--webhook-secret", action="append", default=[], help="whsec_... secret for the matching --webhook-url"
    )
    parser.add_argument("--state-file", help="JSON snapshot loaded at start, written on change and at exit")
    parser.add_argument("--retry-schedule", default="1,2,4", help="seconds between webhook retries, e.g. 1,2,4")
    parser.add_argument("--webhook-timeout", type=float, default=5.0)
    parser.add_argument(
        "--dunning-retry-days", default="3,5,7", help="days after a failed renewal when payment is retried"
    )
    parser.add_argument("--dunning-final-status", choices=["canceled", "unpaid"], default="canceled")
    parser.add_argument("--business-name", default="Billing Portal (Stripe emulator)")
    parser.add_argument("--api-latency-ms", type=float, default=0.0, help="added before every /v1 answer")
    args = parser.parse_args(argv)
    if len(args.webhook_secret) > len(args.webhook_url):
        parser.error("--webhook-secret without a matching --webhook-url")
    targets = []
    for i, url in enumerate(args.webhook_url):
        if i >= len(args.webhook_secret):
            parser.error(f"--webhook-url {url} needs a --webhook-secret")
        secret = args.webhook_secret[i]
        if not secret.startswith("whsec_"):
            parser.error("--webhook-secret must start with whsec_")
        targets.append(WebhookTarget(url, secret))
    return EmulatorConfig(
        host=args.host,
        port=args.port,
        public_url=args.public_url,
        webhooks=targets,
        state_file=args.state_file,
        retry_schedule=[float(x) for x in args.retry_schedule.split(",") if x.strip()],
        webhook_timeout=args.webhook_timeout,
        dunning_retry_days=[int(x) for x in args.dunning_retry_days.split(",") if x.strip()],
        dunning_final_status=args.dunning_final_status,
        business_name=args.business_name,
        api_latency_seconds=args.api_latency_ms / 1000,
    )


def main(argv: list[str] | None = None) -> None:
    """Entry point of `python -m e2e.stripe_emulator`."""
    logging.basicConfig(level=logging.INFO, format="%(asctime)s stripe-emulator %(message)s")
    serve(parse_args(argv))


if __name__ == "__main__":
    main()
