"""Portal analytics for a period: what Stripe does not offer (its portal sessions cannot be listed).

Figures come from the `portal_session` rows this app records (created → returned, with the change
summary) and the local `subscription` copy (Stripe's `cancellation_details`). Each figure is one
aggregate query over an index range (`portal_session.created_at`, `subscription.canceled_at`);
`period_figures` runs them side by side on the connection pool. A period is a range of the
operator's local days, converted to UTC instants once, here.
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, time, timedelta
from typing import Any
from zoneinfo import ZoneInfo

from app.portal.tables import PortalSession
from app.web.i18n import N_, Message

PRESETS = (7, 30, 90)
MAX_DAYS = 366


class BadPeriod(ValueError):
    """The requested dates are not a usable period (end before start, or longer than a year)."""


@dataclass(frozen=True)
class Period:
    """Local days `first`..`last` (inclusive) in `timezone`; `start`/`end` are the UTC bounds [start, end)."""

    first: date
    last: date
    timezone: str

    @property
    def start(self) -> datetime:
        return datetime.combine(self.first, time(), ZoneInfo(self.timezone)).astimezone(UTC)

    @property
    def end(self) -> datetime:
        return datetime.combine(self.last + timedelta(days=1), time(), ZoneInfo(self.timezone)).astimezone(UTC)

    @property
    def days(self) -> int:
        return (self.last - self.first).days + 1


def period_for(
    preset: int | None, first: date | None, last: date | None, timezone: str, today: date | None = None
) -> Period:
    """A preset (the last 7/30/90 local days, today included) or custom dates; default the last 30 days.

    Raises:
        BadPeriod: `last` before `first`, or more than `MAX_DAYS` days.
    """
    today = today or datetime.now(ZoneInfo(timezone)).date()
    if first or last:
        first = first or (last or today) - timedelta(days=29)
        last = last or today
        if last < first:
            raise BadPeriod(Message(N_("The end date is before the start date.")))
        if (last - first).days + 1 > MAX_DAYS:
            raise BadPeriod(Message(N_("Choose at most %(days)s days."), days=MAX_DAYS))
        return Period(first, last, timezone)
    days = preset if preset in PRESETS else 30
    return Period(today - timedelta(days=days - 1), today, timezone)


@dataclass
class Figures:
    """Every figure of the analytics page for one period. Durations are seconds; rates are 0..1."""

    period: Period
    sessions: int = 0
    unique_customers: int = 0
    returned: int = 0
    changed: int = 0
    median_seconds: float | None = None
    p90_seconds: float | None = None
    by_workflow: list[dict[str, Any]] = field(default_factory=list)
    by_day: list[dict[str, Any]] = field(default_factory=list)
    cancellations_by_reason: list[dict[str, Any]] = field(default_factory=list)
    cancellations_by_plan: list[dict[str, Any]] = field(default_factory=list)

    @property
    def return_rate(self) -> float | None:
        return self.returned / self.sessions if self.sessions else None

    @property
    def changed_share(self) -> float | None:
        return self.changed / self.sessions if self.sessions else None


SUMMARY_SQL = """
SELECT count(*) AS sessions, count(returned_at) AS returned, count(*) FILTER (WHERE outcome = 'changed') AS changed
FROM portal_session WHERE created_at >= {} AND created_at < {}
"""

# A hashed DISTINCT in a subquery: `count(DISTINCT …)` would sort (and spill) instead.
UNIQUE_CUSTOMERS_SQL = """
SELECT count(*) AS unique_customers FROM (
    SELECT DISTINCT user_id FROM portal_session WHERE created_at >= {} AND created_at < {}
) AS people
"""

# Both percentiles from one sort.
DURATION_SQL = """
SELECT percentile_cont(ARRAY[0.5, 0.9]) WITHIN GROUP (ORDER BY extract(epoch FROM returned_at - created_at)) AS q
FROM portal_session WHERE created_at >= {} AND created_at < {} AND returned_at IS NOT NULL
"""

BY_WORKFLOW_SQL = """
SELECT workflow, count(*) AS sessions, count(returned_at) AS returned,
       count(*) FILTER (WHERE outcome = 'changed') AS changed
FROM portal_session WHERE created_at >= {} AND created_at < {}
GROUP BY workflow ORDER BY sessions DESC, workflow
"""

BY_DAY_SQL = """
SELECT (created_at AT TIME ZONE {})::date AS day, count(*) AS sessions
FROM portal_session WHERE created_at >= {} AND created_at < {}
GROUP BY 1 ORDER BY 1
"""

CANCELLATIONS_BY_REASON_SQL = """
SELECT COALESCE(cancellation_feedback, cancellation_reason, 'unknown') AS reason, count(*) AS cancellations
FROM subscription WHERE canceled_at >= {} AND canceled_at < {}
GROUP BY 1 ORDER BY cancellations DESC, reason
"""

CANCELLATIONS_BY_PLAN_SQL = """
SELECT COALESCE(plan.name, s.stripe_price_id, 'unknown') AS plan, count(*) AS cancellations
FROM subscription s LEFT JOIN price ON price.id = s.price_id LEFT JOIN plan ON plan.id = price.plan_id
WHERE s.canceled_at >= {} AND s.canceled_at < {}
GROUP BY 1 ORDER BY cancellations DESC, plan
"""


async def _rows(sql: str, *args: Any) -> list[dict[str, Any]]:
    rows: list[dict[str, Any]] = await PortalSession.raw(sql, *args)
    return rows


async def period_figures(period: Period) -> Figures:
    """Compute every figure for `period` (seven aggregate queries, run concurrently; no transaction)."""
    start, end = period.start, period.end
    summary, unique, durations, by_workflow, by_day, by_reason, by_plan = await asyncio.gather(
        _rows(SUMMARY_SQL, start, end),
        _rows(UNIQUE_CUSTOMERS_SQL, start, end),
        _rows(DURATION_SQL, start, end),
        _rows(BY_WORKFLOW_SQL, start, end),
        _rows(BY_DAY_SQL, period.timezone, start, end),
        _rows(CANCELLATIONS_BY_REASON_SQL, start, end),
        _rows(CANCELLATIONS_BY_PLAN_SQL, start, end),
    )
    s = summary[0]
    quantiles = durations[0]["q"] or [None, None]
    counts = {r["day"]: int(r["sessions"]) for r in by_day}
    days = [period.first + timedelta(days=i) for i in range(period.days)]
    return Figures(
        period=period,
        sessions=int(s["sessions"]),
        unique_customers=int(unique[0]["unique_customers"]),
        returned=int(s["returned"]),
        changed=int(s["changed"]),
        median_seconds=float(quantiles[0]) if quantiles[0] is not None else None,
        p90_seconds=float(quantiles[1]) if quantiles[1] is not None else None,
        by_workflow=[
            {
                "workflow": r["workflow"],
                "sessions": int(r["sessions"]),
                "returned": int(r["returned"]),
                "changed": int(r["changed"]),
                "changed_share": int(r["changed"]) / int(r["sessions"]) if r["sessions"] else 0.0,
            }
            for r in by_workflow
        ],
        by_day=[{"day": d, "sessions": counts.get(d, 0)} for d in days],
        cancellations_by_reason=[{"reason": r["reason"], "cancellations": int(r["cancellations"])} for r in by_reason],
        cancellations_by_plan=[{"plan": r["plan"], "cancellations": int(r["cancellations"])} for r in by_plan],
    )


TABLES = {
    "workflows": ("workflow", "sessions", "returned", "changed", "changed_share"),
    "days": ("day", "sessions"),
    "cancellation-reasons": ("reason", "cancellations"),
    "cancellation-plans": ("plan", "cancellations"),
}
"""The tables behind the charts, by the name used in `/admin/analytics/<name>.csv`, with their columns."""


def table_rows(figures: Figures, name: str) -> list[dict[str, Any]]:
    """The rows of table `name` (a key of `TABLES`).

    Raises:
        KeyError: unknown table name.
    """
    return {
        "workflows": figures.by_workflow,
        "days": figures.by_day,
        "cancellation-reasons": figures.cancellations_by_reason,
        "cancellation-plans": figures.cancellations_by_plan,
    }[name]
