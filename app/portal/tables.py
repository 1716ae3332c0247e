"""Tables of the Customer Portal area."""

from __future__ import annotations

from piccolo.columns import JSONB, ForeignKey, Serial, Timestamptz, Varchar
from piccolo.columns.defaults.timestamptz import TimestamptzNow
from piccolo.table import Table

from app.auth.tables import User


class PortalConfiguration(Table):
    """The Stripe Billing Portal Configuration pushed for one workflow (`litestar billing portal push`)."""

    id = Serial(primary_key=True)
    workflow = Varchar(length=40, unique=True)
    stripe_configuration_id = Varchar(length=255, unique=True)
    updated_at = Timestamptz(default=TimestamptzNow())


class PortalSession(Table):
    """A Billing Portal Session this app created, with the billing state before and after it."""

    id = Serial(primary_key=True)
    user = ForeignKey(references=User, null=False, index=True, db_column_name="user_id")
    workflow = Varchar(length=40)
    stripe_session_id = Varchar(length=255, unique=True, null=True, default=None)
    before = JSONB(default="{}", help_text="Billing snapshot when the session was created")
    after = JSONB(null=True, default=None, help_text="Billing snapshot at the first return")
    changes = JSONB(null=True, default=None, help_text="The changes shown on return, in words")
    outcome = Varchar(length=24, null=True, default=None, help_text="changed | no_changes")
    created_at = Timestamptz(default=TimestamptzNow(), index=True, help_text="Analytics filter on this (UTC)")
    returned_at = Timestamptz(null=True, default=None)
    cancellation_reason = Varchar(
        length=40,
        null=True,
        default=None,
        help_text="Why the person cancelled, asked on the cancellation return page (for the operator's analytics)",
    )
    cancellation_reason_at = Timestamptz(null=True, default=None)
