from piccolo.apps.migrations.auto.migration_manager import MigrationManager

from piccolo_conf import DB

ID = "2026-12-01T15:14:00:000000"
VERSION = "1.38.0"
DESCRIPTION = "partial indexes for leasing events"

# The worker claims due events (pending/failed with next_attempt_at <= now) and reclaims expired
# leases (processing with lease_expires_at <= now); both are partial indexes over small sets.
FORWARDS_SQL = [
    "CREATE INDEX IF NOT EXISTS stripe_event_lease ON stripe_event (lease_expires_at) WHERE status = 'processing'",
    "CREATE INDEX IF NOT EXISTS stripe_event_customer_due ON stripe_event (stripe_customer_id, id) "
    "WHERE status IN ('pending', 'failed', 'processing')",
]
BACKWARDS_SQL = [
    "DROP INDEX IF EXISTS stripe_event_lease",
    "DROP INDEX IF EXISTS stripe_event_customer_due",
]


async def forwards():
    manager = MigrationManager(migration_id=ID, app_name="billing", description=DESCRIPTION)

    async def run():
        for statement in FORWARDS_SQL:
            await DB.run_ddl(statement)

    async def run_backwards():
        for statement in BACKWARDS_SQL:
            await DB.run_ddl(statement)

    manager.add_raw(run)
    manager.add_raw_backwards(run_backwards)
    return manager
