"""Server-side sessions with session-id rotation.

Litestar's `ServerSideSessionBackend` keeps whatever session id the client sends, which allows
session fixation. `rotate_session(request)` marks the response so that the old id is deleted
from the store and the session is saved under a fresh random id (called at sign-in).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from litestar.connection import ASGIConnection
from litestar.middleware.session.base import ONE_DAY_IN_SECONDS
from litestar.middleware.session.server_side import ServerSideSessionBackend, ServerSideSessionConfig
from litestar.stores.base import Store
from litestar.stores.file import FileStore
from litestar.stores.memory import MemoryStore
from litestar.stores.redis import RedisStore
from litestar.types import Message, ScopeSession

from app.settings import AppSettings

_ROTATE = "billing.rotate_session"
_NEW_ID = "billing.new_session_id"


def rotate_session(connection: ASGIConnection[Any, Any, Any, Any]) -> None:
    """Save this request's session under a new id and delete the old one from the store."""
    connection.scope.setdefault("state", {})[_ROTATE] = True


class RotatingSessionBackend(ServerSideSessionBackend):
    """`ServerSideSessionBackend` that honours `rotate_session()`."""

    def get_session_id(self, connection: ASGIConnection[Any, Any, Any, Any]) -> str:
        new_id = connection.scope.get("state", {}).get(_NEW_ID)
        return str(new_id) if new_id else super().get_session_id(connection)

    async def store_in_message(
        self, scope_session: ScopeSession, message: Message, connection: ASGIConnection[Any, Any, Any, Any]
    ) -> None:
        state: dict[str, Any] = connection.scope.setdefault("state", {})
        if state.get(_ROTATE) and not state.get(_NEW_ID):
            old_id = connection.cookies.get(self.config.key)
            if old_id:
                await self.delete(old_id, store=self.config.get_store_from_app(connection.scope["app"]))
            state[_NEW_ID] = self.generate_session_id()
        await super().store_in_message(scope_session, message, connection)


@dataclass
class RotatingSessionConfig(ServerSideSessionConfig):
    """Session config whose backend can rotate the session id."""

    _backend_class = RotatingSessionBackend


def session_config(settings: AppSettings) -> RotatingSessionConfig:
    """Cookies HttpOnly, SameSite=Lax, Secure when `APP_BASE_URL` is https; 14 days."""
    return RotatingSessionConfig(
        key="billing_session",
        secure=settings.is_https,
        httponly=True,
        samesite="lax",
        max_age=ONE_DAY_IN_SECONDS * 14,
        exclude=["^/static/", "^/healthz$", "^/webhooks/"],
    )


def session_store(settings: AppSettings) -> Store:
    """Redis when `REDIS_URL` is set (several web processes), else files under `DATA_DIR/sessions`."""
    if settings.redis_url:
        return RedisStore.with_client(url=settings.redis_url, namespace="billing-sessions")
    return FileStore(path=settings.data_dir / "sessions", create_directories=True)


def rate_limit_store(settings: AppSettings) -> Store:
    """Redis when `REDIS_URL` is set (limits shared by every process), else this process's memory."""
    if settings.redis_url:
        return RedisStore.with_client(url=settings.redis_url, namespace="billing-rate-limit")
    return MemoryStore()
