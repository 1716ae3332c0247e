"""Server-side sessions: created only when something must be stored, rotated at sign-in, expired.

Litestar's `ServerSideSessionBackend` stores an empty session (and sets a cookie) for every request
that passes its middleware, so anonymous traffic alone could fill the disk or Redis. Here a session
is written only when it holds something (a signed-in user, a sign-in's `state`/`nonce`, a flash
message); an emptied session is deleted and its cookie expired. A sign-in that never finishes
expires after `PENDING_SESSION_TTL` (15 minutes), a signed-in session after 14 days of inactivity.
Redis expires keys itself; the file store is swept by `purge_expired_sessions` (hourly, in each
web process's lifespan).

Litestar's backend also keeps whatever session id the client sends, which allows session fixation:
`rotate_session(request)` marks the response so that the old id is deleted from the store and the
session is saved under a fresh random id (called at sign-in).
"""

from __future__ import annotations

import asyncio
import logging
import os
import time
from dataclasses import dataclass
from datetime import timedelta
from typing import Any

from litestar.connection import ASGIConnection
from litestar.datastructures import Cookie, MutableScopeHeaders
from litestar.middleware.session.base import ONE_DAY_IN_SECONDS
from litestar.middleware.session.server_side import ServerSideSessionBackend, ServerSideSessionConfig
from litestar.stores.base import StorageObject, Store
from litestar.stores.file import FileStore, _safe_file_name
from litestar.stores.memory import MemoryStore
from litestar.stores.redis import RedisStore
from litestar.types import Empty, Message, ScopeSession
from litestar.utils.dataclass import extract_dataclass_items

from app.settings import AppSettings
from app.web.logs import bind_request

logger = logging.getLogger(__name__)

PENDING_SESSION_TTL = 15 * 60
"""Seconds a session that holds no signed-in user (an unfinished sign-in, a flash) is kept."""
PURGE_EVERY_SECONDS = 3600

_ROTATE = "billing.rotate_session"
_NEW_ID = "billing.new_session_id"
_LOADED = "billing.session_loaded"
_LOADED_AS = "billing.session_loaded_as"
_SAVED_AT = "_saved_at"
REWRITE_AFTER_SECONDS = 3600
"""An unchanged session is written again (its expiry and cookie renewed) at most this often."""


def rotate_session(connection: ASGIConnection[Any, Any, Any, Any]) -> None:
    """Save this request's session under a new id and delete the old one from the store."""
    connection.scope.setdefault("state", {})[_ROTATE] = True


class RotatingSessionBackend(ServerSideSessionBackend):
    """`ServerSideSessionBackend` that stores nothing for empty sessions and honours `rotate_session()`."""

    async def load_from_connection(self, connection: ASGIConnection[Any, Any, Any, Any]) -> dict[str, Any]:
        """The stored session (or `{}`); a signed-in person's id is added to this request's log lines."""
        data = await super().load_from_connection(connection)
        if data:
            state = connection.scope.setdefault("state", {})
            state[_LOADED] = True
            # When it was last written stays out of the request's session; what was loaded is kept
            # serialized, so that a change made in place (a flash appended to a list) is seen too.
            saved_at = data.pop(_SAVED_AT, None)
            state[_LOADED_AS] = (self.serialize_data(data, connection.scope), saved_at)
        if isinstance(data.get("user_id"), int):
            bind_request(user_id=data["user_id"])
        return data

    def get_session_id(self, connection: ASGIConnection[Any, Any, Any, Any]) -> str:
        new_id = connection.scope.get("state", {}).get(_NEW_ID)
        return str(new_id) if new_id else super().get_session_id(connection)

    async def store_in_message(
        self, scope_session: ScopeSession, message: Message, connection: ASGIConnection[Any, Any, Any, Any]
    ) -> None:
        """Save a changed session (new id after `rotate_session`); delete an emptied one; else nothing.

        An unchanged session is not written (no store round trip, no `Set-Cookie`) unless its last
        write is more than `REWRITE_AFTER_SECONDS` old, which keeps a signed-in person's 14 days of
        inactivity sliding.
        """
        state: dict[str, Any] = connection.scope.setdefault("state", {})
        store = self.config.get_store_from_app(connection.scope["app"])
        sent_id = connection.cookies.get(self.config.key)
        if sent_id == "null":
            sent_id = None
        if scope_session is Empty or not scope_session:
            if sent_id:
                await self.delete(sent_id, store=store)
                expired = Cookie(value="null", key=self.config.key, expires=0, **self._cookie_params())
                MutableScopeHeaders.from_message(message).add("Set-Cookie", expired.to_header(header=""))
            return
        if state.get(_ROTATE) and not state.get(_NEW_ID):
            if sent_id:
                await self.delete(sent_id, store=store)
            state[_NEW_ID] = self.generate_session_id()
        elif sent_id and not state.get(_LOADED) and not state.get(_NEW_ID):
            # An id we never issued (or one that expired): never adopt a client-chosen session id.
            state[_NEW_ID] = self.generate_session_id()
        loaded = state.get(_LOADED_AS)
        if loaded is not None and not state.get(_NEW_ID) and sent_id:
            body, saved_at = loaded
            fresh = isinstance(saved_at, int | float) and time.time() - saved_at < REWRITE_AFTER_SECONDS
            if fresh and self.serialize_data(scope_session, connection.scope) == body:
                return
        session_id = self.get_session_id(connection)
        signed_in = isinstance(scope_session, dict) and scope_session.get("user_id") is not None
        expires_in = int(self.config.max_age) if signed_in else min(PENDING_SESSION_TTL, int(self.config.max_age))
        stored = {**scope_session, _SAVED_AT: int(time.time())} if isinstance(scope_session, dict) else scope_session
        await store.set(session_id, self.serialize_data(stored, connection.scope), expires_in=expires_in)
        cookie = Cookie(value=session_id, key=self.config.key, **self._cookie_params())
        MutableScopeHeaders.from_message(message).add("Set-Cookie", cookie.to_header(header=""))

    def _cookie_params(self) -> dict[str, Any]:
        """The session cookie's attributes from the config (path, domain, secure, httponly, samesite, max-age)."""
        return dict(extract_dataclass_items(self.config, exclude_none=True, include=Cookie.__dict__.keys()))


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


class SessionFileStore(FileStore):
    """Litestar's `FileStore`, reading a session in the event loop instead of through a worker thread.

    A session file is a few hundred bytes on a local disk: reading it takes microseconds, while
    handing each read to a thread and back (what `anyio.Path.read_bytes` does) cost more than the
    rest of the session middleware together on every signed-in page. Writes, deletes and the
    hourly sweep still run in threads.
    """

    async def get(self, key: str, renew_for: int | timedelta | None = None) -> bytes | None:
        """The value stored under `key`, or None when absent or expired (an expired file is removed);
        `renew_for` (seconds) renews an expiring value, as `FileStore.get`."""
        # The file `FileStore` names for `key` (its own naming), opened without building `Path`s.
        try:
            with open(os.path.join(os.fspath(self.path), _safe_file_name(key)), "rb") as file:  # noqa: ASYNC230
                raw = file.read()
        except FileNotFoundError:
            return None
        storage_obj = StorageObject.from_bytes(raw)
        if storage_obj.expired:
            await self._path_from_key(key).unlink(missing_ok=True)
            return None
        if renew_for and storage_obj.expires_at:
            await self.set(key, value=storage_obj.data, expires_in=renew_for)
        return storage_obj.data


def session_store(settings: AppSettings) -> Store:
    """Redis when `REDIS_URL` is set (several web processes), else files under `DATA_DIR/sessions`."""
    if settings.redis_url:
        return RedisStore.with_client(url=settings.redis_url, namespace="billing-sessions")
    return SessionFileStore(path=settings.data_dir / "sessions", create_directories=True)


def rate_limit_store(settings: AppSettings) -> Store:
    """Redis when `REDIS_URL` is set (limits shared by every process), else this process's memory."""
    if settings.redis_url:
        return RedisStore.with_client(url=settings.redis_url, namespace="billing-rate-limit")
    return MemoryStore()


async def purge_expired_sessions(store: Store, every: float = PURGE_EVERY_SECONDS) -> None:
    """Delete expired sessions from a file (or memory) store now and then every `every` seconds.

    Runs until cancelled; Redis needs none of this (keys carry their own expiry).
    """
    while True:
        if isinstance(store, FileStore | MemoryStore):
            try:
                await store.delete_expired()
            except OSError as exc:  # a file removed by another process meanwhile, a full disk …
                logger.warning("Could not sweep expired sessions: %s", exc)
        await asyncio.sleep(every)
