from piccolo.apps.migrations.auto.migration_manager import MigrationManager
from piccolo.engine import engine_finder

ID = "2026-12-01T23:00:01:000000"
VERSION = "1.38.0"
DESCRIPTION = "customer_state.entitlements_until filled in for states published before it existed"


async def forwards():
    manager = MigrationManager(migration_id=ID, app_name="billing", description=DESCRIPTION)

    async def backfill() -> None:
        # The earliest `until` of each published state's entitlements, as the writer now records it
        # (a migration's raw steps run before its column changes, hence this second migration).
        engine = engine_finder()
        assert engine is not None
        await engine.run_ddl(
            "UPDATE customer_state SET entitlements_until = (SELECT min((e->>'until')::timestamptz) "
            "FROM jsonb_array_elements(state->'entitlements') AS e WHERE e->>'until' IS NOT NULL) "
            "WHERE jsonb_typeof(state->'entitlements') = 'array'"
        )

    manager.add_raw(backfill)
    return manager
