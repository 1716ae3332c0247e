from piccolo.apps.migrations.auto.migration_manager import MigrationManager

from piccolo_conf import DB

ID = "2026-12-01T15:15:15:000000"
VERSION = "1.38.0"
DESCRIPTION = "one API idempotency key per person"

# Piccolo's auto migrations cannot express a two-column unique index.
FORWARDS_SQL = "CREATE UNIQUE INDEX IF NOT EXISTS api_idempotency_key_user_key ON api_idempotency_key (user_id, key)"
BACKWARDS_SQL = "DROP INDEX IF EXISTS api_idempotency_key_user_key"


async def forwards():
    manager = MigrationManager(migration_id=ID, app_name="billing", description=DESCRIPTION)

    async def run():
        await DB.run_ddl(FORWARDS_SQL)

    async def run_backwards():
        await DB.run_ddl(BACKWARDS_SQL)

    manager.add_raw(run)
    manager.add_raw_backwards(run_backwards)
    return manager
