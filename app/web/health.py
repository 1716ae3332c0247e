"""`GET /healthz`: liveness and database check for load balancers and `make run`'s start-up wait."""

from __future__ import annotations

import logging
from typing import Any

from litestar import MediaType, Response, get
from litestar.status_codes import HTTP_200_OK, HTTP_503_SERVICE_UNAVAILABLE

from app.auth.tables import User

logger = logging.getLogger(__name__)


@get("/healthz", name="health", media_type=MediaType.JSON, cache=False, opt={"skip_session": True})
async def healthz() -> Response[dict[str, Any]]:
    """`{"status": "ok", "database": "ok"}` (200), or `"database": "unavailable"` with 503."""
    try:
        await User.raw("SELECT 1")
    except Exception as exc:  # any driver or network error means "not healthy"
        logger.warning("Health check: database unavailable: %s", exc)
        return Response({"status": "degraded", "database": "unavailable"}, status_code=HTTP_503_SERVICE_UNAVAILABLE)
    return Response({"status": "ok", "database": "ok"}, status_code=HTTP_200_OK)
