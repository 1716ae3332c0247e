"""`GET /api/v1/me`: who is calling and what they have."""

from __future__ import annotations

from litestar import Controller, get
from litestar.di import NamedDependency

from app.api import service
from app.api.common import API_GUARDS, API_MIDDLEWARE, error_responses
from app.api.schemas import Me
from app.auth.tables import User


class MeApiController(Controller):
    """The caller's profile and plan."""

    path = "/api/v1/me"
    tags = ["Account"]  # noqa: RUF012
    middleware = API_MIDDLEWARE
    guards = API_GUARDS

    @get("/", name="api:me", cache=False, responses=error_responses())
    async def show(self, api_user: NamedDependency[User]) -> Me:
        """Profile, plan, subscription status, whether the person is premium or lifetime, and when the
        plan renews or ends (UTC). Read from the local copy; never waits on Stripe."""
        return await service.me(api_user)
