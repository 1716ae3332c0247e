"""Tables of the operator console: the audit trail of operator actions and the app's branding."""

from __future__ import annotations

from piccolo.columns import JSONB, Bytea, ForeignKey, Serial, Text, Timestamptz, Varchar
from piccolo.columns.base import OnDelete
from piccolo.columns.defaults.timestamptz import TimestamptzNow
from piccolo.table import Table

from app.auth.tables import User


class AuditEntry(Table):
    """One operator action that changed something: who, what, before, after, when."""

    id = Serial(primary_key=True)
    actor_user = ForeignKey(
        references=User, null=True, db_column_name="actor_user_id", on_delete=OnDelete.set_null, index=True
    )
    actor = Varchar(length=320, help_text="Who: the operator's email or OIDC subject, or `system`")
    action = Varchar(length=60, index=True, help_text="e.g. portal_configuration.saved, event.replayed")
    target = Varchar(length=255, default="", help_text="What it acted on: a Stripe id, a user id")
    before = JSONB(null=True, default=None)
    after = JSONB(null=True, default=None)
    at = Timestamptz(default=TimestamptzNow(), index=True)


class Branding(Table):
    """The look of the app's own pages (one row, id 1); settings give the defaults until it is saved."""

    id = Serial(primary_key=True)
    product_name = Varchar(length=80)
    primary_color = Varchar(length=7, help_text="#rrggbb")
    accent_color = Varchar(length=7, help_text="#rrggbb")
    logo_url = Text(null=True, default=None)
    logo = Bytea(null=True, default=None, help_text="An uploaded logo (PNG, JPEG, WebP; at most 256 KiB)")
    logo_content_type = Varchar(length=40, null=True, default=None)
    support_url = Text(null=True, default=None)
    privacy_url = Text(null=True, default=None)
    terms_url = Text(null=True, default=None)
    updated_at = Timestamptz(default=TimestamptzNow())
