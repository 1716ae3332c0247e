"""`litestar billing …` commands (registered by `BillingCLIPlugin` in `app.asgi.create_app`).

They use the same settings as the app (environment variables) and the same sync functions as
the webhook worker. Locally, `make run` writes its settings to `.data/devstack.env`; load them
with `set -a; . .data/devstack.env; set +a` before running these against the embedded stack.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable, Coroutine
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, TypeVar

import click
from litestar.plugins import CLIPluginProtocol
from rich.console import Console
from rich.progress import Progress

from app.settings import Settings, SettingsError

T = TypeVar("T")
console = Console()


def _settings() -> Settings:
    try:
        return Settings.from_env()
    except SettingsError as exc:
        raise click.ClickException(str(exc)) from exc


def _run(
    main: Callable[[Any], Coroutine[Any, Any, T]],
    *,
    writes_to_stripe: bool = False,
    yes: bool = False,
    service_logs: bool = False,
) -> T:
    """Run `main(gateway)` with settings from the environment; clear errors instead of tracebacks.

    With a live key, a command that writes to Stripe (`writes_to_stripe`) asks first unless `yes`.
    `service_logs`: log like the web processes (structlog, `LOG_LEVEL`, JSON in production) for
    long-running commands; one-shot commands only show warnings.
    """
    from app.entitlements.service import configure
    from app.stripe_gateway import StripeGateway, StripeGatewayError

    logging.basicConfig(level=logging.WARNING)
    settings = _settings()
    configure(settings.entitlements)
    if service_logs:
        from app.web.logs import configure_logging

        configure_logging(settings.app)
    if writes_to_stripe and settings.stripe.livemode and not yes:
        click.confirm("This writes to your LIVE Stripe account. Continue?", abort=True)
    try:
        return asyncio.run(main(StripeGateway(settings.stripe)))
    except StripeGatewayError as exc:
        raise click.ClickException(f"Stripe: {exc} (request {exc.request_id or 'n/a'})") from exc


@click.group(name="billing", help="Billing portal: catalogue, sync, events, worker.")
def billing() -> None:
    """Group of billing commands."""


@billing.group(name="plans", help="The plan catalogue (plans.toml).")
def plans() -> None:
    """Plan commands."""


YES = click.option("--yes", is_flag=True, help="With a live key, do not ask before writing to Stripe.")


@plans.command(name="push", help="Create or update the catalogue's Products and Prices in Stripe, then sync locally.")
@click.option("--file", "path", type=click.Path(exists=True, dir_okay=False, path_type=Path), default=None)
@YES
def plans_push(path: Path | None, yes: bool) -> None:
    """Push `plans.toml` to Stripe (idempotent) and sync the local `plan`/`price` tables."""
    from app.billing.sync import sync_catalog
    from app.plans.catalog import DEFAULT_CATALOG, CatalogError, load_catalog, push_catalog

    try:
        catalog = load_catalog(path or DEFAULT_CATALOG)
    except CatalogError as exc:
        raise click.ClickException(str(exc)) from exc

    async def main(gateway: Any) -> None:
        actions = await push_catalog(gateway, catalog)
        plans_count, prices_count = await sync_catalog(gateway)
        for action in actions or ["nothing to change"]:
            console.print(f"  {action}")
        console.print(f"Synced {plans_count} plans and {prices_count} prices.")

    _run(main, writes_to_stripe=True, yes=yes)


@billing.group(name="portal", help="Customer Portal configurations (portal.toml).")
def portal() -> None:
    """Portal commands."""


@portal.command(name="push", help="Create or update one Billing Portal Configuration per workflow.")
@click.option("--file", "path", type=click.Path(exists=True, dir_okay=False, path_type=Path), default=None)
@YES
def portal_push(path: Path | None, yes: bool) -> None:
    """Push `portal.toml` to Stripe (idempotent) and remember the configuration ids locally."""
    from app.portal.service import DEFAULT_PORTAL_FILE, load_portal_spec, push_portal

    try:
        spec = load_portal_spec(path or DEFAULT_PORTAL_FILE)
    except (OSError, ValueError) as exc:
        raise click.ClickException(str(exc)) from exc

    async def main(gateway: Any) -> None:
        for action in await push_portal(gateway, spec):
            console.print(f"  {action}")

    _run(main, writes_to_stripe=True, yes=yes)


@portal.command(name="diff", help="Show, field by field, where Stripe differs from portal.toml.")
@click.option("--file", "path", type=click.Path(exists=True, dir_okay=False, path_type=Path), default=None)
def portal_diff(path: Path | None) -> None:
    """Print the drift between `portal.toml` and Stripe (exit status 1 when there is any)."""
    from app.admin.configurations_service import drift
    from app.portal.service import DEFAULT_PORTAL_FILE, load_portal_spec

    try:
        spec = load_portal_spec(path or DEFAULT_PORTAL_FILE)
    except (OSError, ValueError) as exc:
        raise click.ClickException(str(exc)) from exc

    async def main(gateway: Any) -> int:
        rows = await drift(gateway, spec)
        for row in rows:
            click.echo(f"  {row.workflow}  {row.field}: file={row.file!r} stripe={row.stripe!r}")
        console.print("No drift." if not rows else f"{len(rows)} field(s) differ.")
        return len(rows)

    if _run(main):
        raise SystemExit(1)


@portal.command(name="export", help="Write Stripe's current portal configurations as TOML.")
@click.option("--output", "output", type=click.Path(dir_okay=False, path_type=Path), default=None)
def portal_export(output: Path | None) -> None:
    """Print (or write to `--output`) every configuration in Stripe as TOML."""
    from app.admin.configurations_service import export_toml

    async def main(gateway: Any) -> str:
        return await export_toml(gateway)

    text = _run(main)
    if output:
        output.write_text(text)
        console.print(f"Wrote {output}")
    else:
        click.echo(text)


@billing.command(name="sync", help="Backfill the local copy from Stripe: the catalogue and every customer, or one.")
@click.option("--customer", "customer_id", default=None, help="Only this Stripe customer (cus_…).")
def sync(customer_id: str | None) -> None:
    """Re-sync everything (or one customer) from Stripe, with a progress bar."""
    from app.billing.sync import sync_catalog, sync_customer
    from app.billing.tables import Customer

    async def main(gateway: Any) -> None:
        if customer_id:
            result = await sync_customer(gateway, customer_id, full=True)
            console.print(f"{customer_id}: {'synced' if result.linked else 'not linked to a user'}")
            return
        await sync_catalog(gateway)
        ids = [row["stripe_customer_id"] for row in await Customer.select(Customer.stripe_customer_id)]
        with Progress(console=console) as progress:
            task = progress.add_task("Customers", total=len(ids))
            for stripe_id in ids:
                await sync_customer(gateway, stripe_id, full=True)
                progress.advance(task)
        console.print(f"Synced the catalogue and {len(ids)} customers.")

    _run(main)


@billing.group(name="events", help="Stored Stripe webhook events.")
def events() -> None:
    """Event commands."""


@events.command(name="replay", help="Apply failed and dead events again (or the events named with --id).")
@click.option("--id", "event_ids", multiple=True, help="An event id (evt_…); repeatable.")
def events_replay(event_ids: tuple[str, ...]) -> None:
    """Make events due again and apply them now."""
    from app.webhooks.service import drain, replay

    async def main(gateway: Any) -> None:
        reset = await replay(event_ids)
        handled = await drain(gateway)
        console.print(f"Applied {handled} event(s). {reset} had been made due again.")

    _run(main)


@events.command(name="reconcile", help="Store events Stripe could not deliver (delivery_success=false).")
@click.option("--hours", default=72, show_default=True, help="How far back to look.")
def events_reconcile(hours: int) -> None:
    """List undelivered events at Stripe and store any the app is missing, then apply them."""
    from app.webhooks.service import drain, reconcile_undelivered

    async def main(gateway: Any) -> None:
        found, stored = await reconcile_undelivered(gateway, hours=hours)
        handled = await drain(gateway)
        console.print(f"{found} undelivered event(s) at Stripe, {stored} were missing and stored, {handled} applied.")

    _run(main)


@events.command(name="list", help="List stored events by status (newest first).")
@click.option(
    "--status",
    default="failed",
    show_default=True,
    type=click.Choice(["pending", "processing", "failed", "dead", "processed", "ignored"]),
)
@click.option("--limit", default=50, show_default=True, type=click.IntRange(1, 10_000))
def events_list(status: str, limit: int) -> None:
    """One row per event: id, type, customer, attempts, next attempt, last error."""
    from app.billing.tables import StripeEvent

    async def main(gateway: Any) -> None:
        rows = (
            await StripeEvent.select(
                StripeEvent.stripe_event_id,
                StripeEvent.type,
                StripeEvent.stripe_customer_id,
                StripeEvent.attempts,
                StripeEvent.next_attempt_at,
                StripeEvent.last_error,
            )
            .where(StripeEvent.status == status)
            .order_by(StripeEvent.received_at, ascending=False)
            .limit(limit)
        )
        if not rows:
            console.print(f"No {status} events.")
            return
        # Tab-separated, one event per line: readable in a terminal, easy to grep or cut.
        click.echo("\t".join(("event", "type", "customer", "attempts", "next_attempt_utc", "last_error")))
        for row in rows:
            next_at = row["next_attempt_at"].strftime("%Y-%m-%dT%H:%M:%SZ") if row["next_attempt_at"] else "-"
            error = " ".join((row["last_error"] or "-").split())[:200]
            fields = (row["stripe_event_id"], row["type"], row["stripe_customer_id"] or "-", str(row["attempts"]))
            click.echo("\t".join((*fields, next_at, error)))
        console.print(f"{len(rows)} {status} event(s).")

    _run(main)


@billing.group(name="webhook", help="The Stripe webhook endpoint of this app.")
def webhook() -> None:
    """Webhook endpoint commands."""


@webhook.command(
    name="create",
    help="Create the endpoint for APP_BASE_URL/webhooks/stripe with the event types the app handles and the "
    "pinned API version; print its signing secret once.",
)
@click.option("--dry-run", is_flag=True, help="Only say what would be done.")
@YES
def webhook_create(dry_run: bool, yes: bool) -> None:
    """Create (or correct the event types of) the webhook endpoint; the secret is shown only on creation."""
    from app.webhooks.endpoint import ENABLED_EVENTS, plan_endpoint

    settings = _settings()

    async def main(gateway: Any) -> None:
        plan = plan_endpoint([e async for e in gateway.webhook_endpoints()], settings.app.base_url)
        click.echo(("Would: " if dry_run else "") + plan.describe())
        if dry_run or plan.action in {"ok", "recreate"}:
            if plan.action == "recreate":
                raise click.ClickException("the endpoint's API version cannot be changed")
            return
        if plan.action == "update":
            assert plan.endpoint is not None
            await gateway.update_webhook_endpoint(plan.endpoint["id"], ENABLED_EVENTS)
            console.print(f"Updated {plan.endpoint['id']}: {len(ENABLED_EVENTS)} event types.")
            return
        created = await gateway.create_webhook_endpoint(plan.url, ENABLED_EVENTS)
        console.print(f"Created {created['id']} for {plan.url}.")
        console.print("Signing secret (shown once; set it as STRIPE_WEBHOOK_SECRET):")
        click.echo(created["secret"])

    _run(main, writes_to_stripe=not dry_run, yes=yes)


@billing.command(name="doctor", help="Check the deployment: one line per check, non-zero exit on a problem.")
@click.option("--max-due-seconds", default=300, show_default=True, help="Oldest due event allowed (worker alive).")
def doctor(max_due_seconds: int) -> None:
    """Key mode, webhook endpoint, portal configurations, migrations, event worker."""
    settings = _settings()

    async def main(gateway: Any) -> list[tuple[bool, str, str]]:
        from app.doctor import run_checks

        return await run_checks(settings, gateway, max_due_seconds=max_due_seconds)

    results = _run(main)
    for ok, name, detail in results:
        # Plain lines (no wrapping) so the output can be grepped and read in a deployment log.
        click.echo(f"{click.style('ok  ' if ok else 'FAIL', fg='green' if ok else 'red')} {name}: {detail}")
    if not all(ok for ok, _, _ in results):
        raise SystemExit(1)


@billing.command(name="worker", help="Apply stored events continuously (run any number of these).")
@click.option(
    "--check",
    is_flag=True,
    help="Health check instead: exit 0 when a worker on this host looped recently and no event waits too long.",
)
def worker(check: bool) -> None:
    """A standalone event worker process (`--check`: its health, for a container health check)."""
    import json
    import signal

    from app.stripe_gateway import StripeGateway
    from app.web.health import queue_problems
    from app.webhooks.service import queue_health
    from app.webhooks.worker import EventWorker, standalone_worker_alive

    settings = _settings()

    async def health() -> int:
        problems: list[str] = []
        try:
            queue = await queue_health()
            problems += queue_problems(queue, settings.worker)
            if not await standalone_worker_alive(settings.worker.stale_seconds):
                problems.append(f"no worker on this host looped in the last {settings.worker.stale_seconds:.0f} s")
            report: dict[str, Any] = {"events": queue.__dict__}
        except Exception as exc:  # the database is unreachable: unhealthy, said in one line
            problems.append(f"database unavailable: {type(exc).__name__}")
            report = {}
        click.echo(json.dumps({"status": "unhealthy" if problems else "ok", **report, "problems": problems}))
        return 1 if problems else 0

    async def run() -> None:
        from app.db import start_pool
        from app.entitlements.delivery import HostWebhookDelivery
        from app.entitlements.service import configure
        from piccolo_conf import DB

        configure(settings.entitlements)
        await start_pool(max(settings.worker.concurrency + 2, 4))
        loop = asyncio.get_running_loop()
        events_worker = EventWorker(
            StripeGateway(settings.stripe, rate_limit=settings.stripe.rate_limit), settings.worker, mode="standalone"
        )
        # The host webhooks (customer.state_changed) are delivered next to the Stripe events.
        delivery = HostWebhookDelivery(poll_seconds=settings.worker.poll_seconds)

        def stop() -> None:
            events_worker.request_stop()
            delivery.request_stop()

        for sig in (signal.SIGINT, signal.SIGTERM):
            loop.add_signal_handler(sig, stop)
        console.print(f"Event worker {events_worker.worker_id} running (with host webhook delivery); Ctrl+C to stop.")
        try:
            await asyncio.gather(events_worker.run(), delivery.run())
        finally:
            await DB.close_connection_pool()

    if check:
        logging.basicConfig(level=logging.ERROR)
        raise SystemExit(asyncio.run(health()))
    from app.web.logs import configure_logging

    configure_logging(settings.app)  # log like the web processes
    asyncio.run(run())
    console.print("Stopped.")


@billing.group(name="api-keys", help="Host API keys (read-only, stored hashed).")
def api_keys() -> None:
    """API key commands."""


@api_keys.command(name="create", help="Create a key; it is printed once and never shown again.")
@click.argument("name")
def api_keys_create(name: str) -> None:
    from app.entitlements.api_keys import create_key

    async def main(_: Any) -> None:
        row, key = await create_key(name)
        console.print(f"Created key {row.prefix} ({name}), read-only. Store it now; it is not kept:")
        console.print(key, soft_wrap=True, highlight=False)

    _run(main)


@api_keys.command(name="revoke", help="Revoke the key with this prefix (the part after bpk_).")
@click.argument("prefix")
def api_keys_revoke(prefix: str) -> None:
    from app.entitlements.api_keys import revoke_key

    async def main(_: Any) -> None:
        if not await revoke_key(prefix.removeprefix("bpk_").split("_")[0]):
            raise click.ClickException(f"No active key with prefix {prefix}.")
        console.print(f"Revoked {prefix}.")

    _run(main)


@api_keys.command(name="list", help="Keys with their prefix, name, creation and revocation dates.")
def api_keys_list() -> None:
    from app.entitlements.tables import HostApiKey

    async def main(_: Any) -> None:
        for key in await HostApiKey.objects().order_by(HostApiKey.id):
            revoked = f"revoked {key.revoked_at:%Y-%m-%d}" if key.revoked_at else "active"
            console.print(f"{key.prefix}  {key.name}  created {key.created_at:%Y-%m-%d}  {revoked}")

    _run(main)


@billing.group(name="host-webhooks", help="Webhooks to the host product (customer.state_changed).")
def host_webhooks() -> None:
    """Host webhook commands."""


@host_webhooks.command(name="add", help="Add an endpoint; prints its signing secret (whsec_…).")
@click.argument("url")
def host_webhooks_add(url: str) -> None:
    import base64
    import secrets

    from app.entitlements.tables import HostWebhookEndpoint

    if not url.startswith(("http://", "https://")):
        raise click.BadParameter("the URL must start with http:// or https://")

    async def main(_: Any) -> None:
        secret = "whsec_" + base64.b64encode(secrets.token_bytes(32)).decode()
        await HostWebhookEndpoint.insert(HostWebhookEndpoint(url=url, secret=secret)).on_conflict(
            target=HostWebhookEndpoint.url,
            action="DO UPDATE",
            values=[HostWebhookEndpoint.secret, HostWebhookEndpoint.disabled_at],
        )
        console.print(f"Endpoint {url} added. Its signing secret (verify with a Standard Webhooks library):")
        console.print(secret, soft_wrap=True, highlight=False)

    _run(main)


@host_webhooks.command(name="remove", help="Stop sending to an endpoint added with `add`.")
@click.argument("url")
def host_webhooks_remove(url: str) -> None:
    from app.entitlements.tables import HostWebhookEndpoint

    async def main(_: Any) -> None:
        await HostWebhookEndpoint.update({HostWebhookEndpoint.disabled_at: datetime.now(UTC)}).where(
            HostWebhookEndpoint.url == url
        )
        console.print(f"Endpoint {url} removed.")

    _run(main)


@host_webhooks.command(name="redeliver", help="Queue failed webhooks again (or the messages named with --id).")
@click.option("--id", "message_ids", multiple=True, help="A message id (msg_…); repeatable.")
def host_webhooks_redeliver(message_ids: tuple[str, ...]) -> None:
    from app.entitlements.delivery import redeliver

    async def main(_: Any) -> None:
        console.print(f"Queued {await redeliver(list(message_ids) or None)} webhook(s) for delivery.")

    _run(main)


@billing.group(name="entitlements", help="Operator grants and revocations of features.")
def entitlements_group() -> None:
    """Entitlement commands."""


def _person_and_date(external_id: str, until: str | None) -> tuple[Any, datetime | None]:
    ends_at = None
    if until:
        try:
            ends_at = datetime.fromisoformat(until)
        except ValueError as exc:
            raise click.BadParameter(
                "use a date such as 2027-01-31 or 2027-01-31T12:00:00Z", param_hint="--until"
            ) from exc
        ends_at = ends_at if ends_at.tzinfo else ends_at.replace(tzinfo=UTC)
    return external_id, ends_at


@entitlements_group.command(name="grant", help="Give a person a feature, optionally --until a date (UTC).")
@click.argument("external_id")
@click.argument("feature")
@click.option("--until", default=None, help="End date, e.g. 2027-01-31 (UTC).")
@click.option("--note", default="", help="Why (kept with the grant).")
def entitlements_grant(external_id: str, feature: str, until: str | None, note: str) -> None:
    _override(external_id, feature, "grant", until, note)


@entitlements_group.command(name="revoke", help="Take a feature away from a person, optionally --until a date.")
@click.argument("external_id")
@click.argument("feature")
@click.option("--until", default=None, help="End date of the revocation, e.g. 2027-01-31 (UTC).")
@click.option("--note", default="", help="Why (kept with the revocation).")
def entitlements_revoke(external_id: str, feature: str, until: str | None, note: str) -> None:
    _override(external_id, feature, "revoke", until, note)


@entitlements_group.command(name="clear", help="End a person's grants and revocations of a feature now.")
@click.argument("external_id")
@click.argument("feature")
def entitlements_clear(external_id: str, feature: str) -> None:
    from app.entitlements.service import end_overrides, find_person

    async def main(_: Any) -> None:
        user = await find_person(external_id)
        if user is None:
            raise click.ClickException(f"Nobody here has the subject or verified email {external_id}.")
        console.print(f"Ended {await end_overrides(user.id, feature)} override(s) of {feature}.")

    _run(main)


def _override(external_id: str, feature: str, kind: str, until: str | None, note: str) -> None:
    from app.entitlements.service import add_override, find_person

    _, ends_at = _person_and_date(external_id, until)

    async def main(_: Any) -> None:
        user = await find_person(external_id)
        if user is None:
            raise click.ClickException(f"Nobody here has the subject or verified email {external_id}.")
        try:
            await add_override(user.id, feature, kind, ends_at, note=note)
        except ValueError as exc:
            raise click.ClickException(str(exc)) from exc
        span = f" until {ends_at.isoformat()}" if ends_at else ""
        console.print(f"{'Granted' if kind == 'grant' else 'Revoked'} {feature} for {external_id}{span}.")

    _run(main)


class BillingCLIPlugin(CLIPluginProtocol):
    """Adds the `billing` command group to the `litestar` CLI."""

    def on_cli_init(self, cli: click.Group) -> None:
        cli.add_command(billing)
