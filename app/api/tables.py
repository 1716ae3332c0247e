"""Tables of the JSON API."""

from __future__ import annotations

from piccolo.columns import ForeignKey, Integer, Serial, Text, Timestamptz, Varchar
from piccolo.columns.defaults.timestamptz import TimestamptzNow
from piccolo.table import Table

from app.auth.tables import User


class IdempotencyKey(Table, tablename="api_idempotency_key"):
    """An `Idempotency-Key` a person sent on an unsafe API request, and the response to replay (24 h)."""

    id = Serial(primary_key=True)
    user = ForeignKey(references=User, null=False, db_column_name="user_id")
    key = Varchar(length=255)
    fingerprint = Varchar(length=64, help_text="SHA-256 of method, path and body")
    status_code = Integer(null=True, default=None, help_text="Null while the first request is still running")
    content_type = Varchar(length=100, null=True, default=None)
    content_encoding = Varchar(length=40, null=True, default=None)
    body = Text(null=True, default=None, help_text="The response body; base64 when content_encoding is set")
    created_at = Timestamptz(default=TimestamptzNow(), index=True)
