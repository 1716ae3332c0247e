"""Charts drawn on the server as accessible SVG (no JavaScript): a `<title>`/`<desc>` pair named by
`aria-labelledby`, `role="img"`, and the data table rendered next to every chart by the template.
Colours come from the CSS custom properties of the brand (`var(--accent)`)."""

from __future__ import annotations

import secrets
from collections.abc import Sequence
from typing import Any

from markupsafe import Markup, escape

from app.web.i18n import Preferences

BAR_HEIGHT = 26
LABEL_WIDTH = 190
WIDTH = 640


def _frame(title: str, description: str, height: int, body: str) -> Markup:
    uid = secrets.token_hex(4)
    # Every interpolated text is escaped above or here; numbers are formatted by us.
    return Markup(  # noqa: S704
        f'<svg class="chart" viewBox="0 0 {WIDTH} {height}" width="100%" role="img" '
        f'aria-labelledby="t{uid} d{uid}" xmlns="http://www.w3.org/2000/svg">'
        f'<title id="t{uid}">{escape(title)}</title><desc id="d{uid}">{escape(description)}</desc>{body}</svg>'
    )


def _english() -> Preferences:
    from zoneinfo import ZoneInfo

    return Preferences("en_US", ZoneInfo("UTC"), "en")


def bar_chart(
    title: str, rows: Sequence[dict[str, Any]], label: str, value: str, words: Preferences | None = None
) -> Markup:
    """Horizontal bars, one per row (`row[label]`: its name, `row[value]`: a number ≥ 0); the chart's
    own words in the language of `words` (the person's `Preferences`; English when None)."""
    words = words or _english()
    values = [float(r[value] or 0) for r in rows]
    top = max(values, default=0) or 1
    span = WIDTH - LABEL_WIDTH - 60
    parts = []
    for i, (row, v) in enumerate(zip(rows, values, strict=True)):
        y = 8 + i * (BAR_HEIGHT + 8)
        w = max(1.0, span * v / top)
        parts.append(
            f'<text x="{LABEL_WIDTH - 8}" y="{y + 18}" text-anchor="end" class="chart-label">'
            f"{escape(row[label])}</text>"
            f'<rect x="{LABEL_WIDTH}" y="{y}" width="{w:.1f}" height="{BAR_HEIGHT}" rx="4" class="chart-bar"/>'
            f'<text x="{LABEL_WIDTH + w + 6:.1f}" y="{y + 18}" class="chart-value">{v:g}</text>'
        )
    if not rows:
        nothing = words.gettext("No data in this period")
        parts.append(f'<text x="8" y="24" class="chart-label">{escape(nothing)}</text>')
    height = max(40, 16 + len(rows) * (BAR_HEIGHT + 8))
    summary = ", ".join(f"{r[label]}: {v:g}" for r, v in zip(rows, values, strict=True)) or words.gettext("no data")
    return _frame(title, summary, height, "".join(parts))


def column_chart(
    title: str, rows: Sequence[dict[str, Any]], label: str, value: str, words: Preferences | None = None
) -> Markup:
    """Vertical columns in order (one per day), with the first and last labels and the maximum; the
    chart's own words in the language of `words` (English when None)."""
    words = words or _english()
    values = [float(r[value] or 0) for r in rows]
    top = max(values, default=0) or 1
    height, base, left = 200, 170, 40
    step = (WIDTH - left - 10) / max(1, len(rows))
    parts = [
        f'<line x1="{left}" y1="{base}" x2="{WIDTH - 10}" y2="{base}" class="chart-axis"/>',
        f'<text x="{left - 6}" y="18" text-anchor="end" class="chart-value">{top:g}</text>',
    ]
    for i, v in enumerate(values):
        h = (base - 20) * v / top
        parts.append(
            f'<rect x="{left + i * step + 1:.1f}" y="{base - h:.1f}" width="{max(1.0, step - 2):.1f}" '
            f'height="{h:.1f}" class="chart-bar"/>'
        )
    if rows:
        parts.append(f'<text x="{left}" y="{base + 20}" class="chart-label">{escape(rows[0][label])}</text>')
        parts.append(
            f'<text x="{WIDTH - 10}" y="{base + 20}" text-anchor="end" class="chart-label">'
            f"{escape(rows[-1][label])}</text>"
        )
    total = sum(values)
    description = (
        words.ngettext(
            "%(num)s value from %(first)s to %(last)s, total %(total)s, highest %(top)s",
            "%(num)s values from %(first)s to %(last)s, total %(total)s, highest %(top)s",
            len(rows),
            first=rows[0][label],
            last=rows[-1][label],
            total=f"{total:g}",
            top=f"{top:g}",
        )
        if rows
        else words.gettext("no data")
    )
    return _frame(title, description, height, "".join(parts))
