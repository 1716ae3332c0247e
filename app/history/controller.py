"""`/billing/history` and `/billing/history.csv`: the signed-in person's payments.

Query parameters (all optional, all kept in pager and CSV links):

| name     | values                                             | invalid →                     |
|----------|----------------------------------------------------|-------------------------------|
| `status` | all, succeeded, pending, failed, refunded (incl. partially refunded) | 400, form shows the error |
| `from`, `to` | YYYY-MM-DD, inclusive, in the person's time zone | 400, form shows the error   |
| `size`   | 10 (default), 25, 50 — not clamped                 | 400, form shows the error     |
| `after`, `before` | an opaque cursor from a pager link (see `app.history.service`) | 400 error page |

An htmx request (`HX-Request`, not a history restore) gets `history/_results.html`: the filter
form with the table, the pager and the CSV link; a plain request gets the whole page.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Annotated, Any
from urllib.parse import urlencode

from litestar import Controller, get
from litestar.di import NamedDependency
from litestar.exceptions import ClientException
from litestar.params import QueryParameter
from litestar.plugins.htmx import HTMXRequest
from litestar.response import Stream, Template
from litestar.status_codes import HTTP_400_BAD_REQUEST

from app.auth.tables import User
from app.history.service import (
    DEFAULT_PAGE_SIZE,
    PAGE_SIZES,
    STATUS_FILTERS,
    CursorError,
    CursorSigner,
    FilterError,
    HistoryFilters,
    HistoryPage,
    csv_chunks,
    fetch_page,
    parse_filters,
    parse_page_size,
)
from app.web.guards import requires_login
from app.web.htmx import page_or_fragment
from app.web.i18n import N_, request_preferences

Query = Annotated[str | None, QueryParameter(required=False)]
FromQuery = Annotated[str | None, QueryParameter(name="from", required=False)]


def _url(request: HTMXRequest, name: str, params: Mapping[str, str | int]) -> str:
    path = request.app.route_reverse(name)
    return f"{path}?{urlencode(params)}" if params else path


def _links(request: HTMXRequest, signer: CursorSigner, filters: HistoryFilters, page: HistoryPage) -> dict[str, Any]:
    """`first_url`, `newer_url`/`older_url` (None at either end) and `csv_url`, all keeping the filters."""
    keep: dict[str, str | int] = {**filters.query_params()}
    if page.size != DEFAULT_PAGE_SIZE:
        keep["size"] = page.size
    newer, older = page.newer_position, page.older_position
    return {
        "first_url": _url(request, "history:list", keep),
        "newer_url": _url(request, "history:list", {**keep, "before": signer.encode(newer)}) if newer else None,
        "older_url": _url(request, "history:list", {**keep, "after": signer.encode(older)}) if older else None,
        "csv_url": _url(request, "history:csv", filters.query_params()),
    }


class HistoryController(Controller):
    """Payment history page and its CSV export (the path is `/billing` so the CSV can end in `.csv`)."""

    path = "/billing"
    guards = [requires_login]  # noqa: RUF012

    @get("/history", name="history:list", cache=False)
    async def list_payments(
        self,
        request: HTMXRequest,
        current_user: NamedDependency[User],
        status: Query = None,
        date_from: FromQuery = None,
        to: Query = None,
        size: Query = None,
        after: Query = None,
        before: Query = None,
    ) -> Template:
        """Newest payments first, in keyset pages, filtered by status and date range.

        Raises:
            ClientException: 400 for a cursor that is malformed, altered, or made for another user.
        """
        settings = request.app.state.settings.app
        raw = {"status": status or "", "from": date_from or "", "to": to or "", "size": size or ""}
        context: dict[str, Any] = {"raw": raw, "statuses": list(STATUS_FILTERS), "page_sizes": PAGE_SIZES}
        try:
            filters = parse_filters(status, date_from, to, request_preferences(request).timezone)
            page_size = parse_page_size(size)
        except FilterError as exc:
            context.update(errors=exc.errors, filters=HistoryFilters(), page=None)
            return self._render(request, context, status_code=HTTP_400_BAD_REQUEST)
        signer = CursorSigner(settings.session_secret, current_user.id)
        try:
            if after and before:
                raise CursorError(N_("A page link can go forward or back, not both."))
            after_position = signer.decode(after) if after else None
            before_position = signer.decode(before) if before else None
        except CursorError as exc:
            raise ClientException(detail=str(exc), status_code=HTTP_400_BAD_REQUEST) from exc
        page = await fetch_page(current_user.id, filters, size=page_size, after=after_position, before=before_position)
        context.update(errors={}, filters=filters, page=page, **_links(request, signer, filters, page))
        return self._render(request, context)

    def _render(self, request: HTMXRequest, context: dict[str, Any], status_code: int = 200) -> Template:
        return page_or_fragment(request, "history/list.html", "history/_results.html", context, status_code)

    @get("/history.csv", name="history:csv", cache=False)
    async def export_csv(
        self,
        request: HTMXRequest,
        current_user: NamedDependency[User],
        status: Query = None,
        date_from: FromQuery = None,
        to: Query = None,
    ) -> Stream:
        """Every payment matching the filters as CSV (`payments.csv`), streamed in keyset batches.

        Raises:
            ClientException: 400 for an invalid filter value.
        """
        tz = request_preferences(request).timezone
        try:
            filters = parse_filters(status, date_from, to, tz)
        except FilterError as exc:
            raise ClientException(detail=str(exc), status_code=HTTP_400_BAD_REQUEST) from exc
        return Stream(
            csv_chunks(current_user.id, filters),
            media_type="text/csv",  # Litestar adds "; charset=utf-8" to text types
            headers={"Content-Disposition": 'attachment; filename="payments.csv"', "Cache-Control": "no-store"},
        )
