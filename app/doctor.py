"""`litestar billing doctor`: is this deployment ready? One `(ok, check, detail)` per check.

Checks, in order: the Stripe key's mode, the webhook endpoint (present for `APP_BASE_URL`, exactly
the handled event types, the pinned API version), the Customer Portal configurations (every
workflow of `portal.toml` pushed and still present at Stripe), the database migrations (all
applied), and the event workers (one looped recently; no due event waiting longer than `max_due_seconds`).
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from app.settings import Settings
from app.stripe_gateway import StripeGateway, StripeGatewayError

Check = tuple[bool, str, str]


def check_key(settings: Settings) -> Check:
    """Which mode the key is in; an emulator base URL is named so nobody mistakes it for Stripe."""
    key = settings.stripe.secret_key
    mode = "live" if settings.stripe.livemode else "test"
    kind = "restricted" if key.startswith("rk_") else "secret"
    where = f" against {settings.stripe.api_base}" if settings.stripe.api_base else ""
    return True, "stripe key", f"{mode} mode {kind} key …{key[-4:]}{where}"


async def check_webhook_endpoint(settings: Settings, gateway: StripeGateway) -> Check:
    """The endpoint for `APP_BASE_URL/webhooks/stripe` exists with the right events and version."""
    from app.webhooks.endpoint import plan_endpoint

    plan = plan_endpoint([e async for e in gateway.webhook_endpoints()], settings.app.base_url)
    hint = "" if plan.action == "ok" else " (run `litestar billing webhook create`)"
    return plan.action == "ok", "webhook endpoint", plan.describe() + hint


async def check_portal_configurations(gateway: StripeGateway) -> Check:
    """Every workflow of `portal.toml` has a configuration id stored locally that Stripe still has."""
    from app.portal.service import load_portal_spec
    from app.portal.tables import PortalConfiguration

    wanted = set(load_portal_spec().workflows)
    stored = {row["workflow"]: row["stripe_configuration_id"] for row in await PortalConfiguration.select()}
    at_stripe = {c["id"] async for c in gateway.portal_configurations()}
    pushed = {w for w in wanted if stored.get(w) in at_stripe}
    missing = sorted(wanted - pushed)
    detail = f"{len(pushed)} of {len(wanted)} workflows pushed"
    if missing:
        detail += f"; missing {', '.join(missing)} (run `litestar billing portal push`)"
    return not missing, "portal configurations", detail


async def check_migrations() -> Check:
    """Every migration in `migrations/` has run."""
    from piccolo.apps.migrations.commands.check import CheckMigrationManager

    statuses = await CheckMigrationManager(app_name="billing").get_migration_statuses()
    pending = [s.migration_id for s in statuses if not s.has_ran]
    detail = f"{len(statuses) - len(pending)} of {len(statuses)} applied"
    if pending:
        detail += f"; pending {', '.join(pending)} (run `scripts/serve --migrate-only`)"
    return not pending, "migrations", detail


async def check_worker(max_due_seconds: int, stale_seconds: float) -> Check:
    """Some event worker (in a web process or standalone) looped within `stale_seconds`, and no event
    has been due for longer than `max_due_seconds`."""
    from app.billing.tables import EventWorkerHeartbeat
    from app.webhooks.service import queue_health

    since = datetime.now(UTC) - timedelta(seconds=stale_seconds)
    alive = await EventWorkerHeartbeat.count().where(EventWorkerHeartbeat.heartbeat_at >= since)
    queue = await queue_health()
    detail = (
        f"{alive} worker(s) alive; oldest due event {queue.oldest_due_seconds:.0f} s (limit {max_due_seconds} s); "
        f"{queue.due} due, {queue.failed} failed, {queue.dead} dead"
    )
    if not alive:
        detail = f"no worker looped in the last {stale_seconds:.0f} s; " + detail.split("; ", 1)[1]
    return alive > 0 and queue.oldest_due_seconds <= max_due_seconds, "event worker", detail


async def run_checks(settings: Settings, gateway: StripeGateway, max_due_seconds: int = 300) -> list[Check]:
    """Every check; a check that cannot run (Stripe or the database unreachable) fails with the reason."""
    results: list[Check] = [check_key(settings)]
    for name, check in (
        ("webhook endpoint", lambda: check_webhook_endpoint(settings, gateway)),
        ("portal configurations", lambda: check_portal_configurations(gateway)),
        ("migrations", check_migrations),
        ("event worker", lambda: check_worker(max_due_seconds, settings.worker.stale_seconds)),
    ):
        try:
            results.append(await check())
        except StripeGatewayError as exc:
            results.append((False, name, f"Stripe: {exc} (request {exc.request_id or 'n/a'})"))
        except (OSError, ConnectionError) as exc:
            results.append((False, name, f"cannot check: {exc}"))
        except Exception as exc:  # asyncpg errors have no common base worth importing here
            results.append((False, name, f"cannot check: {type(exc).__name__}: {exc}"))
    return results
