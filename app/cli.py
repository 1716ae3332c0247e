"""`litestar billing …` commands (registered by `BillingCLIPlugin` in `app.asgi.create_app`).

They use the same settings as the app (environment variables) and the same sync functions as
the webhook worker. Locally, `make run` writes its settings to `.data/devstack.env`; load them
with `set -a; . .data/devstack.env; set +a` before running these against the embedded stack.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable, Coroutine
from pathlib import Path
from typing import Any, TypeVar

import click
from litestar.plugins import CLIPluginProtocol
from rich.console import Console
from rich.progress import Progress

from app.settings import Settings, SettingsError

T = TypeVar("T")
console = Console()


def _run(main: Callable[[Any], Coroutine[Any, Any, T]]) -> T:
    """Run `main(gateway)` with settings from the environment; clear errors instead of tracebacks."""
    from app.stripe_gateway import StripeGateway, StripeGatewayError

    logging.basicConfig(level=logging.WARNING)
    try:
        settings = Settings.from_env()
    except SettingsError as exc:
        raise click.ClickException(str(exc)) from exc
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


@plans.command(name="push", help="Create or update the catalogue's Products and Prices in Stripe, then sync locally.")
@click.option("--file", "path", type=click.Path(exists=True, dir_okay=False, path_type=Path), default=None)
def plans_push(path: Path | None) -> None:
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

    _run(main)


@billing.group(name="portal", help="Customer Portal configurations (portal.toml).")
def portal() -> None:
    """Portal commands."""


@portal.command(name="push", help="Create or update one Billing Portal Configuration per workflow.")
@click.option("--file", "path", type=click.Path(exists=True, dir_okay=False, path_type=Path), default=None)
def portal_push(path: Path | None) -> None:
    """Push `portal.toml` to Stripe (idempotent) and remember the configuration ids locally."""
    from app.portal.service import DEFAULT_PORTAL_FILE, load_portal_spec, push_portal

    try:
        spec = load_portal_spec(path or DEFAULT_PORTAL_FILE)
    except (OSError, ValueError) as exc:
        raise click.ClickException(str(exc)) from exc

    async def main(gateway: Any) -> None:
        for action in await push_portal(gateway, spec):
            console.print(f"  {action}")

    _run(main)


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


@events.command(name="replay", help="Apply failed events again (or the events named with --id).")
@click.option("--id", "event_ids", multiple=True, help="An event id (evt_…); repeatable.")
@click.option("--failed/--no-failed", default=True, help="Replay every failed event (default).")
def events_replay(event_ids: tuple[str, ...], failed: bool) -> None:
    """Mark events pending again and apply them now (`app.admin.events_service.replay`)."""
    from app.admin.events_service import replay

    if not event_ids and not failed:
        raise click.ClickException("Name events with --id, or use --failed.")

    async def main(gateway: Any) -> None:
        handled = await replay(gateway, list(event_ids) or None, failed=failed and not event_ids)
        console.print(f"Applied {handled} event(s).")

    _run(main)


@events.command(name="reconcile", help="Store events Stripe could not deliver (delivery_success=false).")
@click.option("--hours", default=72, show_default=True, help="How far back to look.")
def events_reconcile(hours: int) -> None:
    """List undelivered events at Stripe and store any the app is missing, then apply them."""
    from app.admin.events_service import reconcile

    async def main(gateway: Any) -> None:
        result = await reconcile(gateway, hours)
        console.print(
            f"{result.found} undelivered event(s) at Stripe, {result.stored} were missing and stored, "
            f"{result.applied} applied."
        )

    _run(main)


@billing.command(name="worker", help="Apply stored events continuously (run any number of these).")
@click.option("--poll", default=1.0, show_default=True, help="Seconds between polls when idle.")
def worker(poll: float) -> None:
    """A standalone event worker process."""
    from app.webhooks.worker import EventWorker

    async def main(gateway: Any) -> None:
        console.print("Event worker running; Ctrl+C to stop.")
        await EventWorker(gateway, poll_seconds=poll).run()

    try:
        _run(main)
    except KeyboardInterrupt:
        console.print("Stopped.")


class BillingCLIPlugin(CLIPluginProtocol):
    """Adds the `billing` command group to the `litestar` CLI."""

    def on_cli_init(self, cli: click.Group) -> None:
        cli.add_command(billing)
