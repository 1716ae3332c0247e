"""The console's view of one person's entitlements: what they may use and why, and operator grants
and revocations (the same `app.entitlements.service` functions as `litestar billing entitlements …`).

Every change is written in one short transaction together with its audit entry: the override, the
recomputed entitlements, the published state and its `customer.state_changed` outbox rows
(`service.refresh_person`, the one path that tells the host), or nothing at all.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import UTC, date, datetime, time
from typing import Any

from app.admin.audit import actor_label, record_action
from app.auth.tables import User
from app.db import transaction
from app.entitlements import service
from app.entitlements.tables import Entitlement, EntitlementOverride, Feature
from app.web.i18n import N_, Message

NOTE_MAX = 500
KINDS = ("grant", "revoke")


class OverrideInvalid(Exception):
    """The grant/revoke form is wrong; `errors` maps a field name to a message for people."""

    def __init__(self, errors: dict[str, str]) -> None:
        super().__init__("; ".join(errors.values()))
        self.errors = errors


@dataclass
class OverrideForm:
    """The grant/revoke form as typed (strings), so it can be shown again with its errors."""

    feature: str = ""
    kind: str = "grant"
    until: str = ""
    note: str = ""

    @classmethod
    def from_post(cls, form: dict[str, list[str]]) -> OverrideForm:
        """From the posted fields (`feature`, `kind`, `until`, `note`); missing ones are empty."""

        def one(name: str) -> str:
            return (form.get(name) or [""])[0]

        return cls(feature=one("feature").strip(), kind=one("kind"), until=one("until").strip(), note=one("note"))


@dataclass
class PersonEntitlements:
    """What the customer page shows: entitlements in force (with sources), overrides in force, and
    the catalogue's features for the form."""

    entitlements: list[dict[str, Any]]
    overrides: list[dict[str, Any]]
    features: list[dict[str, str]]
    form: OverrideForm = field(default_factory=OverrideForm)
    errors: dict[str, str] = field(default_factory=dict)


async def catalogue_features() -> list[dict[str, str]]:
    """Every feature of the catalogue as `{lookup_key, name}`, by name."""
    rows: list[dict[str, str]] = await Feature.select(Feature.lookup_key, Feature.name).order_by(Feature.name)
    return rows


async def person_entitlements(user_id: int, now: datetime | None = None) -> PersonEntitlements:
    """The entitlement rows of user `user_id` still in force (`until` in the future or none) and their
    operator overrides still in force (newest first); `now` is UTC."""
    now = now or datetime.now(UTC)
    features = await catalogue_features()
    names = {f["lookup_key"]: f["name"] for f in features}
    rows = (
        await Entitlement.select(
            Entitlement.feature, Entitlement.source, Entitlement.source_id, Entitlement.description, Entitlement.until
        )
        .where((Entitlement.user == user_id) & (Entitlement.until.is_null() | (Entitlement.until > now)))
        .order_by(Entitlement.feature)
    )
    overrides = (
        await EntitlementOverride.select()
        .where(
            (EntitlementOverride.user == user_id)
            & (EntitlementOverride.ends_at.is_null() | (EntitlementOverride.ends_at > now))
        )
        .order_by(EntitlementOverride.id, ascending=False)
    )
    for row in [*rows, *overrides]:
        row["name"] = names.get(row["feature"], row["feature"])
    return PersonEntitlements(entitlements=rows, overrides=overrides, features=features)


def parse_until(value: str, now: datetime) -> datetime | None:
    """The form's end date: empty → None; `YYYY-MM-DD` → that day's start, UTC (as the CLI's `--until`).

    Raises:
        ValueError: not a date, or not in the future (the message is for people).
    """
    if not value:
        return None
    try:
        day = date.fromisoformat(value)
    except ValueError:
        raise ValueError(Message(N_("Give the end date as YYYY-MM-DD, e.g. 2027-01-31."))) from None
    ends_at = datetime.combine(day, time.min, tzinfo=UTC)
    if ends_at <= now:
        raise ValueError(Message(N_("The end date must be in the future (UTC).")))
    return ends_at


async def validate(form: OverrideForm, now: datetime | None = None) -> datetime | None:
    """Check the form against the catalogue; returns the end (UTC) or None.

    Raises:
        OverrideInvalid: unknown feature, unknown kind, bad or past date, note too long.
    """
    now = now or datetime.now(UTC)
    errors: dict[str, str] = {}
    if not form.feature:
        errors["feature"] = Message(N_("Choose a feature."))
    elif (
        "\x00" in form.feature
        or len(form.feature) > 80
        or not await Feature.exists().where(Feature.lookup_key == form.feature)
    ):
        errors["feature"] = Message(N_("No feature of the catalogue has that lookup key."))
    if form.kind not in KINDS:
        errors["kind"] = Message(N_("Choose Grant or Revoke."))
    ends_at = None
    try:
        ends_at = parse_until(form.until, now)
    except ValueError as exc:
        errors["until"] = exc.args[0] if exc.args else str(exc)
    if "\x00" in form.note or len(form.note) > NOTE_MAX:
        errors["note"] = Message(N_("At most %(max)s characters, no NUL."), max=NOTE_MAX)
    if errors:
        raise OverrideInvalid(errors)
    return ends_at


async def add_override(user: User, form: OverrideForm, actor: User) -> EntitlementOverride:
    """Grant or revoke a feature for `user` from the console form, audited.

    Raises:
        OverrideInvalid: see `validate`; nothing is written.
    """
    ends_at = await validate(form)
    async with transaction():
        override = await service.add_override(
            user.id, form.feature, form.kind, ends_at, note=form.note.strip(), created_by=actor_label(actor)
        )
        await record_action(
            actor,
            "entitlement.granted" if form.kind == "grant" else "entitlement.revoked",
            user.subject,
            None,
            {"feature": form.feature, "until": ends_at.isoformat() if ends_at else None, "note": form.note.strip()},
        )
    return override


async def end_override(user: User, override_id: int, actor: User) -> EntitlementOverride | None:
    """End one grant or revocation of `user` now, audited; None when there is none in force."""
    async with transaction():
        override = await service.end_override(user.id, override_id)
        if override is not None:
            await record_action(
                actor,
                "entitlement_override.ended",
                user.subject,
                {"feature": override.feature, "kind": override.kind, "note": override.note},
                None,
            )
    return override
