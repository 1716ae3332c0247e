from piccolo.apps.migrations.auto.migration_manager import MigrationManager

from piccolo_conf import DB

ID = "2026-11-23T19:36:00:000000"
VERSION = "1.38.0"
DESCRIPTION = "composite indexes for payment history and event claiming"

# Piccolo's auto migrations cannot express multi-column indexes; these back the two hot queries:
# the payment-history keyset page (user, created_at DESC, id DESC) and the worker's claim.
FORWARDS_SQL = [
    "CREATE INDEX IF NOT EXISTS payment_transaction_user_created_id "
    "ON payment_transaction (user_id, created_at DESC, id DESC)",
    "CREATE INDEX IF NOT EXISTS stripe_event_claim ON stripe_event (next_attempt_at, id) "
    "WHERE status IN ('pending', 'failed')",
]
BACKWARDS_SQL = [
    "DROP INDEX IF EXISTS payment_transaction_user_created_id",
    "DROP INDEX IF EXISTS stripe_event_claim",
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
