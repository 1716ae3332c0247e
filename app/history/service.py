"""Payment history: the signed-in person's payments, filtered, in keyset pages, and as CSV.

Every query here takes the user's id and filters on it first: no function in this module can
return another person's rows.

Pages are keyset pages over `(created_at, id)` descending, backed by the index
`payment_transaction_user_created_id (user_id, created_at DESC, id DESC)`. Because `id` breaks
ties, rows sharing a timestamp are never skipped or repeated, and a page 2,000 rows deep costs
the same as page 1 (no OFFSET). One page is one SQL query, an index range scan of `size + 1`
rows: the extra row says whether there is more in the direction of travel. The other direction
needs no query: the cursor was made from a row of the page the person came from, so that side
holds at least that row. (If that row has since left the filter, or the URL's filters were edited
by hand, the "Previous"/"Next" link leads to an empty page that offers the newest payments.)
Page 1 and a page 2,000 rows deep are therefore the same query plan; see
`scripts/bench_history.py`.

Cursors are opaque to people: `base64url(JSON {"created_at": ISO-8601 UTC, "id": int})`, a dot,
and `base64url(HMAC-SHA256(key, "<user id>:" + JSON))` truncated to 16 bytes, where the key is
derived from the app's `SESSION_SECRET`. A cursor edited by hand, or made for another user, fails
verification (`CursorError`, shown as a 400 page).
"""

from __future__ import annotations

import base64
import binascii
import csv
import hashlib
import hmac
import io
import json
from collections.abc import AsyncIterator, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, time, timedelta, tzinfo
from typing import Any

import asyncpg

from app.db import fetch
from app.web.i18n import N_, amount_decimal

PAGE_SIZES = (10, 25, 50)
DEFAULT_PAGE_SIZE = 10
CSV_BATCH_SIZE = 500

#: Status filter values offered to people → the stored statuses each one matches (None: all).
STATUS_FILTERS: dict[str, tuple[str, ...] | None] = {
    "all": None,
    "succeeded": ("succeeded",),
    "pending": ("pending",),
    "failed": ("failed",),
    "refunded": ("refunded", "partially_refunded"),
}

CARD_BRANDS = {
    "amex": "American Express",
    "cartes_bancaires": "Cartes Bancaires",
    "diners": "Diners Club",
    "discover": "Discover",
    "eftpos_au": "eftpos",
    "jcb": "JCB",
    "link": "Link",
    "mastercard": "Mastercard",
    "unionpay": "UnionPay",
    "visa": "Visa",
}

_COLUMNS = (
    "id",
    "created_at",
    "description",
    "amount_cents",
    "amount_refunded_cents",
    "currency",
    "status",
    "payment_method",
    "payment_method_last4",
    "failure_reason",
    "hosted_invoice_url",
    "invoice_pdf_url",
    "receipt_url",
    "stripe_payment_intent_id",
    "paid_at",
    "refunded_at",
)


class HistoryError(ValueError):
    """A request for the history that cannot be answered; the message is meant for people."""


class FilterError(HistoryError):
    """One or more filter values are invalid. `errors` maps the query parameter to its message."""

    def __init__(self, errors: Mapping[str, str]) -> None:
        super().__init__(" ".join(errors.values()))
        self.errors = dict(errors)


class CursorError(HistoryError):
    """A page cursor is malformed, was altered, or was made for another user."""


@dataclass(frozen=True)
class Position:
    """A row's place in the history order: `(created_at, id)`, newest first."""

    created_at: datetime
    id: int


@dataclass(frozen=True)
class HistoryFilters:
    """What the person asked to see.

    `status` is a key of `STATUS_FILTERS`; `date_from`/`date_to` are inclusive calendar dates in
    `timezone` (the person's zone), so "to 23 Nov" includes the whole of 23 Nov where they live.
    """

    status: str = "all"
    date_from: date | None = None
    date_to: date | None = None
    timezone: tzinfo = UTC

    @property
    def is_default(self) -> bool:
        """True when nothing is filtered out."""
        return self.status == "all" and self.date_from is None and self.date_to is None

    def created_from(self) -> datetime | None:
        """Lower bound (inclusive, UTC) of `created_at`, or None."""
        if self.date_from is None:
            return None
        return datetime.combine(self.date_from, time.min, self.timezone).astimezone(UTC)

    def created_before(self) -> datetime | None:
        """Upper bound (exclusive, UTC) of `created_at`: midnight after `date_to`, or None."""
        if self.date_to is None:
            return None
        try:
            next_day = self.date_to + timedelta(days=1)
        except OverflowError:  # 9999-12-31: no upper bound
            return None
        return datetime.combine(next_day, time.min, self.timezone).astimezone(UTC)

    def query_params(self) -> dict[str, str]:
        """The filters as query parameters (defaults left out), for pager and CSV links."""
        params: dict[str, str] = {}
        if self.status != "all":
            params["status"] = self.status
        if self.date_from is not None:
            params["from"] = self.date_from.isoformat()
        if self.date_to is not None:
            params["to"] = self.date_to.isoformat()
        return params


# Payments exist only well inside these; the bounds keep "local midnight → UTC" (and the day after
# the end date) inside what `datetime` can hold in every time zone.
EARLIEST_DATE, LATEST_DATE = date(1970, 1, 1), date(9998, 12, 31)


# The filter errors, in English; pages show them in the person's language (`| t`).
DATE_ERRORS = {
    "start": (
        N_("Enter the start date as YYYY-MM-DD, for example 2026-11-23."),
        N_("Enter a start date between 1970-01-01 and 9998-12-31."),
    ),
    "end": (
        N_("Enter the end date as YYYY-MM-DD, for example 2026-11-23."),
        N_("Enter an end date between 1970-01-01 and 9998-12-31."),
    ),
}


def _parse_date(value: str | None, label: str) -> date:
    malformed, out_of_range = DATE_ERRORS[label]
    try:
        parsed = date.fromisoformat((value or "").strip())
    except ValueError:
        raise ValueError(malformed) from None
    if not EARLIEST_DATE <= parsed <= LATEST_DATE:
        raise ValueError(out_of_range)
    return parsed


def parse_filters(
    status: str | None, date_from: str | None, date_to: str | None, timezone: tzinfo = UTC
) -> HistoryFilters:
    """Validate the filter query parameters; empty strings mean "not set".

    Raises:
        FilterError: with a message per invalid parameter (`status`, `from`, `to`).
    """
    errors: dict[str, str] = {}
    status = (status or "").strip() or "all"
    if status not in STATUS_FILTERS:
        errors["status"] = N_("Choose a status from the list.")
    start = end = None
    if date_from and date_from.strip():
        try:
            start = _parse_date(date_from, "start")
        except ValueError as exc:
            errors["from"] = str(exc)
    if date_to and date_to.strip():
        try:
            end = _parse_date(date_to, "end")
        except ValueError as exc:
            errors["to"] = str(exc)
    if start and end and start > end:
        errors["to"] = N_("The end date must be on or after the start date.")
    if errors:
        raise FilterError(errors)
    return HistoryFilters(status=status, date_from=start, date_to=end, timezone=timezone)


def parse_page_size(value: str | None) -> int:
    """`size` query parameter → 10, 25 or 50 (empty: 10).

    Raises:
        FilterError: any other value (`{"size": message}`); sizes are not clamped, so a link
            never silently shows something other than what it says.
    """
    if value is None or not value.strip():
        return DEFAULT_PAGE_SIZE
    if value.strip() in {str(s) for s in PAGE_SIZES}:
        return int(value)
    raise FilterError({"size": N_("Choose 10, 25 or 50 payments per page.")})


class CursorSigner:
    """Encodes and verifies page cursors for one user (see the module docstring for the format)."""

    def __init__(self, secret: str, user_id: int) -> None:
        self._key = hmac.new(secret.encode(), b"billing-history-cursor:v1", hashlib.sha256).digest()
        self._user_id = user_id

    def _mac(self, payload: bytes) -> bytes:
        return hmac.new(self._key, f"{self._user_id}:".encode() + payload, hashlib.sha256).digest()[:16]

    def encode(self, position: Position) -> str:
        """An opaque URL-safe cursor for `position` (about 100 characters)."""
        created = position.created_at.astimezone(UTC).isoformat(timespec="microseconds")
        payload = json.dumps({"created_at": created, "id": position.id}, separators=(",", ":")).encode()
        return f"{_b64(payload)}.{_b64(self._mac(payload))}"

    def decode(self, token: str) -> Position:
        """The position a cursor from `encode` stands for.

        Raises:
            CursorError: the cursor is malformed, altered, or was made for another user.
        """
        invalid = CursorError(N_("This page link is not valid (it was changed or belongs to someone else)."))
        head, dot, tail = token.strip().partition(".")
        if not dot or len(token) > 512:
            raise invalid
        try:
            payload, mac = _unb64(head), _unb64(tail)
        except (ValueError, binascii.Error):
            raise invalid from None
        # Only the canonical spelling is accepted, so each position has exactly one cursor.
        if _b64(payload) != head or _b64(mac) != tail:
            raise invalid
        if not hmac.compare_digest(mac, self._mac(payload)):
            raise invalid
        try:
            data = json.loads(payload)
            created_at = datetime.fromisoformat(data["created_at"])
            row_id = data["id"]
        except (ValueError, KeyError, TypeError):
            raise invalid from None
        if created_at.tzinfo is None or type(row_id) is not int:
            raise invalid
        return Position(created_at=created_at, id=row_id)


def _b64(raw: bytes) -> str:
    return base64.urlsafe_b64encode(raw).rstrip(b"=").decode()


def _unb64(text: str) -> bytes:
    return base64.b64decode(text + "=" * (-len(text) % 4), altchars=b"-_", validate=True)


@dataclass(frozen=True)
class PaymentRow:
    """One payment as the history shows it. Amounts in the currency's minor unit, times UTC."""

    id: int
    created_at: datetime
    description: str
    amount_cents: int
    amount_refunded_cents: int
    currency: str
    status: str
    payment_method: str | None
    payment_method_last4: str | None
    failure_reason: str | None
    hosted_invoice_url: str | None
    invoice_pdf_url: str | None
    receipt_url: str | None
    stripe_payment_intent_id: str
    paid_at: datetime | None
    refunded_at: datetime | None

    @property
    def position(self) -> Position:
        """This row's keyset position."""
        return Position(self.created_at, self.id)

    @property
    def brand_label(self) -> str | None:
        """The card brand for people ("Visa", "American Express"), or None."""
        if not self.payment_method:
            return None
        return CARD_BRANDS.get(self.payment_method.lower(), self.payment_method.replace("_", " ").title())

    def link(self, name: str) -> str | None:
        """`hosted_invoice_url`, `invoice_pdf_url` or `receipt_url` when it is an http(s) URL, else None."""
        url = getattr(self, name)
        return url if isinstance(url, str) and url.startswith(("https://", "http://")) else None


@dataclass(frozen=True)
class HistoryPage:
    """One page of rows (newest first) and whether there are rows before/after it."""

    rows: list[PaymentRow]
    has_newer: bool
    has_older: bool
    size: int
    first_page: bool = field(default=False)

    @property
    def newer_position(self) -> Position | None:
        """Cursor position for the "Previous" link (`before` the first row), or None."""
        return self.rows[0].position if self.has_newer and self.rows else None

    @property
    def older_position(self) -> Position | None:
        """Cursor position for the "Next" link (`after` the last row), or None."""
        return self.rows[-1].position if self.has_older and self.rows else None


def _filter_sql(user_id: int, filters: HistoryFilters, alias: str) -> tuple[str, list[Any]]:
    """`WHERE` conditions (with `{}` placeholders for Piccolo) that scope rows to the user and filters."""
    sql = [f"{alias}.user_id = {{}}"]
    args: list[Any] = [user_id]
    statuses = STATUS_FILTERS[filters.status]
    if statuses is not None:
        sql.append(f"{alias}.status = ANY({{}})")
        args.append(list(statuses))
    lower, upper = filters.created_from(), filters.created_before()
    if lower is not None:
        sql.append(f"{alias}.created_at >= {{}}")
        args.append(lower)
    if upper is not None:
        sql.append(f"{alias}.created_at < {{}}")
        args.append(upper)
    return " AND ".join(sql), args


async def run_query(sql: str, args: Sequence[Any]) -> list[asyncpg.Record]:
    """Run one SQL statement (`{}` placeholders) on the app's database (`app.db.fetch`); every query
    here goes through it. Rows are read like dicts (`row["amount_cents"]`)."""
    return await fetch(sql, *args)


async def fetch_page(
    user_id: int,
    filters: HistoryFilters,
    *,
    size: int = DEFAULT_PAGE_SIZE,
    after: Position | None = None,
    before: Position | None = None,
) -> HistoryPage:
    """One page of `user_id`'s payments matching `filters`, newest first, in exactly one query.

    `after`: the rows older than this position (the "Next" page); `before`: the rows newer than it
    (the "Previous" page); neither: the newest rows. `size` is the number of rows (1–1000).

    Raises:
        ValueError: both `after` and `before` given, or `size` out of range.
    """
    if after is not None and before is not None:
        raise ValueError("give `after` or `before`, not both")
    if not 1 <= size <= 1000:
        raise ValueError(f"size out of range: {size}")
    backwards = before is not None
    cursor = before if backwards else after
    where, args = _filter_sql(user_id, filters, "p")
    # Paging backwards reads the rows just newer than the cursor in ascending order.
    comparison, order = (">", "ASC") if backwards else ("<", "DESC")
    if cursor is not None:
        where += f" AND (p.created_at, p.id) {comparison} ({{}}, {{}})"
        args += [cursor.created_at, cursor.id]
    columns = ", ".join(f"p.{c}" for c in _COLUMNS)
    # Only constant SQL fragments are interpolated; every value is a bound parameter.
    sql = (
        f"SELECT {columns} FROM payment_transaction p WHERE {where} "  # noqa: S608
        f"ORDER BY p.created_at {order}, p.id {order} LIMIT {{}}"
    )
    records = await run_query(sql, [*args, size + 1])
    rows = [PaymentRow(**record) for record in records[:size]]
    more = len(records) > size
    # A cursor is minted from a row of the page the person came from, so that side is known to
    # hold at least that row without asking the database (see the module docstring).
    if backwards:
        rows.reverse()
        return HistoryPage(rows=rows, has_newer=more, has_older=True, size=size)
    return HistoryPage(rows=rows, has_newer=cursor is not None, has_older=more, size=size, first_page=cursor is None)


MAX_OFFSET = 1000
"""The deepest `offset` the JSON API serves (`limit`/`offset` paging as the seed had); past it the
API asks for the keyset `cursor`, which costs the same at any depth."""


async def count_payments(user_id: int, filters: HistoryFilters) -> int:
    """How many of `user_id`'s payments match `filters` (one index-backed `COUNT(*)`)."""
    where, args = _filter_sql(user_id, filters, "p")
    rows = await run_query(f"SELECT COUNT(*) AS n FROM payment_transaction p WHERE {where}", args)  # noqa: S608
    return int(rows[0]["n"])


async def fetch_offset_page(user_id: int, filters: HistoryFilters, *, limit: int, offset: int) -> HistoryPage:
    """`limit` payments of `user_id` newest first, skipping `offset` (0–`MAX_OFFSET`): the seed's paging.

    Raises:
        ValueError: `limit` outside 1–1000 or `offset` outside 0–`MAX_OFFSET`.
    """
    if not 1 <= limit <= 1000 or not 0 <= offset <= MAX_OFFSET:
        raise ValueError(f"limit {limit} / offset {offset} out of range")
    where, args = _filter_sql(user_id, filters, "p")
    columns = ", ".join(f"p.{c}" for c in _COLUMNS)
    sql = (
        f"SELECT {columns} FROM payment_transaction p WHERE {where} "  # noqa: S608
        "ORDER BY p.created_at DESC, p.id DESC LIMIT {} OFFSET {}"
    )
    records = await run_query(sql, [*args, limit + 1, offset])
    rows = [PaymentRow(**record) for record in records[:limit]]
    return HistoryPage(
        rows=rows, has_newer=offset > 0, has_older=len(records) > limit, size=limit, first_page=offset == 0
    )


CSV_HEADER = (
    "created_at_utc",
    "description",
    "amount",
    "amount_refunded",
    "currency",
    "status",
    "payment_method",
    "last4",
    "failure_reason",
    "payment_intent",
    "hosted_invoice_url",
    "invoice_pdf_url",
    "receipt_url",
)


def _csv_text(value: str | None) -> str:
    """A text cell that spreadsheets will not run as a formula (OWASP CSV injection advice)."""
    text = value or ""
    return "'" + text if text[:1] in ("=", "+", "-", "@", "\t", "\r") else text


def csv_row(row: PaymentRow) -> list[str]:
    """One CSV record for `row`, in `CSV_HEADER` order: decimal amounts, ISO 8601 UTC time."""
    return [
        row.created_at.astimezone(UTC).isoformat().replace("+00:00", "Z"),
        _csv_text(row.description),
        format(amount_decimal(row.amount_cents, row.currency), "f"),
        format(amount_decimal(row.amount_refunded_cents or 0, row.currency), "f"),
        row.currency.upper(),
        row.status,
        _csv_text(row.payment_method),
        _csv_text(row.payment_method_last4),
        _csv_text(row.failure_reason),
        _csv_text(row.stripe_payment_intent_id),
        _csv_text(row.hosted_invoice_url),
        _csv_text(row.invoice_pdf_url),
        _csv_text(row.receipt_url),
    ]


def _csv_lines(records: Sequence[Sequence[str]]) -> str:
    buffer = io.StringIO()
    csv.writer(buffer, lineterminator="\r\n").writerows(records)
    return buffer.getvalue()


async def csv_chunks(user_id: int, filters: HistoryFilters, batch_size: int = CSV_BATCH_SIZE) -> AsyncIterator[str]:
    """The CSV of every payment of `user_id` matching `filters`, newest first, in text chunks.

    Yields the header line first, then one chunk per keyset batch of `batch_size` rows, so memory
    stays flat however many payments there are.
    """
    yield _csv_lines([CSV_HEADER])
    after: Position | None = None
    while True:
        page = await fetch_page(user_id, filters, size=batch_size, after=after)
        if page.rows:
            yield _csv_lines([csv_row(r) for r in page.rows])
        if not page.has_older:
            return
        after = page.rows[-1].position
