from piccolo.apps.migrations.auto.migration_manager import MigrationManager
from piccolo.columns.column_types import Timestamptz
from piccolo.columns.indexes import IndexMethod

ID = "2026-12-01T19:30:00:000000"
VERSION = "1.38.0"
DESCRIPTION = "per-part high-water marks of a customer sync (entitlements, each payment)"

PARAMS = {
    "default": None,
    "null": True,
    "primary_key": False,
    "unique": False,
    "index": False,
    "index_method": IndexMethod.btree,
    "choices": None,
    "db_column_name": None,
    "secret": False,
}


async def forwards():
    manager = MigrationManager(migration_id=ID, app_name="billing", description=DESCRIPTION)

    manager.add_column(
        table_class_name="Customer",
        tablename="customer",
        column_name="entitlements_read_at",
        db_column_name="entitlements_read_at",
        column_class_name="Timestamptz",
        column_class=Timestamptz,
        params=dict(PARAMS),
        schema=None,
    )

    manager.add_column(
        table_class_name="PaymentTransaction",
        tablename="payment_transaction",
        column_name="stripe_read_at",
        db_column_name="stripe_read_at",
        column_class_name="Timestamptz",
        column_class=Timestamptz,
        params=dict(PARAMS),
        schema=None,
    )

    return manager
