"""Tables of the auth area."""

from __future__ import annotations

from piccolo.columns import Array, Boolean, Serial, Text, Timestamptz, Varchar
from piccolo.columns.defaults.timestamptz import TimestamptzNow
from piccolo.table import Table


class User(Table, tablename="user"):
    """A person who has signed in through the OpenID provider at least once."""

    id = Serial(primary_key=True)

    subject = Varchar(length=255, unique=True, index=True, help_text="OIDC `sub` claim, unique per issuer")
    email = Varchar(length=320, null=True, default=None)
    email_verified = Boolean(default=False, help_text="The provider's `email_verified` claim")
    name = Text(null=True, default=None)
    roles = Array(base_column=Varchar(length=64), default=list)
    created_at = Timestamptz(default=TimestamptzNow())
    last_login_at = Timestamptz(default=TimestamptzNow())
    locale = Varchar(
        length=16,
        null=True,
        default=None,
        help_text="The page language the person chose (`de`), or null: the browser's",
    )
