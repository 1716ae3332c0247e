"""Piccolo's engine, built from `DATABASE_URL`.

`make run` (see `app/devstack.py`) and the test setup start an embedded PostgreSQL and export
`DATABASE_URL` before this module is imported when no database is configured.
"""

from __future__ import annotations

import os

from piccolo.conf.apps import AppRegistry
from piccolo.engine.postgres import PostgresEngine

DB = PostgresEngine(
    config={"dsn": os.environ.get("DATABASE_URL", "postgresql://postgres@127.0.0.1:5432/billing")},
    extensions=(),
    log_queries=False,
)

APP_REGISTRY = AppRegistry(apps=["app.piccolo_app"])
