"""`Idempotency-Key` on unsafe API requests, the way Stripe does it (https://docs.stripe.com/api/idempotent_requests).

A client that sends `Idempotency-Key: <up to 255 characters>` on a POST can retry it safely:

- same person, same key, same method, path and body → the first successful response is replayed
  (same status and body, with `Idempotent-Replayed: true`), for 24 hours;
- same key with another method, path or body → 409 `idempotency_key_reused`;
- same key while the first request is still running → 409 `idempotency_key_in_use`;
- a request that failed (any non-2xx answer) frees its key, so the client can retry it as is; so
  does a claim left "running" for 2 minutes by a process that died.

Keys are stored in PostgreSQL (`api_idempotency_key`, unique per person and key), so every web
process sees them; rows older than 24 hours are ignored and deleted when a key is claimed. The
claim is one short `INSERT … ON CONFLICT DO NOTHING`; no transaction is held while the request runs.
"""

from __future__ import annotations

import base64
import hashlib
from datetime import UTC, datetime, timedelta
from typing import Any

from litestar import Request
from litestar.types import ASGIApp, Message, Receive, Scope, Send

from app.api.auth import principal_of
from app.api.errors import ApiError, validation_error
from app.api.tables import IdempotencyKey

HEADER = "idempotency-key"
KEY_LIFETIME = timedelta(hours=24)
# A claim still "running" after this long belongs to a process that died mid-request: free it.
ABANDONED_AFTER = timedelta(minutes=2)
MAX_KEY_LENGTH = 255
UNSAFE_METHODS = frozenset({"POST", "PUT", "PATCH", "DELETE"})


def fingerprint(method: str, path: str, body: bytes) -> str:
    """SHA-256 (hex) of what makes two requests "the same": method, path and raw body."""
    return hashlib.sha256(method.encode() + b" " + path.encode() + b"\n" + body).hexdigest()


class IdempotencyMiddleware:
    """Claims, replays and records `Idempotency-Key`s (see the module docstring).

    Runs after `ApiAuthMiddleware`, so keys belong to the calling person; requests without the
    header, safe methods, and anonymous callers pass straight through.
    """

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or scope["method"] not in UNSAFE_METHODS:  # type: ignore[typeddict-item]
            await self.app(scope, receive, send)
            return
        request: Request[Any, Any, Any] = Request(scope, receive)
        key = request.headers.get(HEADER)
        principal = principal_of(request)
        if key is None or principal is None:
            await self.app(scope, receive, send)
            return
        if not key.strip() or len(key) > MAX_KEY_LENGTH:
            raise validation_error({"Idempotency-Key": f"Use 1 to {MAX_KEY_LENGTH} characters."})
        body = await request.body()  # cached on the scope: the handler reads it again
        digest = fingerprint(request.method, scope["path"], body)
        user_id = principal.user.id
        row = await self._claim(user_id, key, digest)
        if row is not None:
            if row["status_code"] is None:
                raise ApiError("idempotency_key_in_use")
            if row["fingerprint"] != digest:
                raise ApiError("idempotency_key_reused")
            await self._replay(send, key, row)
            return

        captured: dict[str, Any] = {"status": 500, "content_type": None, "encoding": None, "body": bytearray()}

        async def capture(message: Message) -> None:
            if message["type"] == "http.response.start":
                captured["status"] = message["status"]
                for name, value in message.get("headers", []):
                    if name.lower() == b"content-type":
                        captured["content_type"] = value.decode("latin-1")
                    elif name.lower() == b"content-encoding":  # gzip from the compression middleware
                        captured["encoding"] = value.decode("latin-1")
            elif message["type"] == "http.response.body":
                captured["body"] += message.get("body", b"")
            await send(message)

        try:
            await self.app(scope, receive, capture)
        except BaseException:
            await self._release(user_id, key)
            raise
        if 200 <= captured["status"] < 300:
            raw = bytes(captured["body"])
            await IdempotencyKey.update(
                {
                    IdempotencyKey.status_code: captured["status"],
                    IdempotencyKey.content_type: captured["content_type"],
                    IdempotencyKey.content_encoding: captured["encoding"],
                    IdempotencyKey.body: base64.b64encode(raw).decode() if captured["encoding"] else raw.decode(),
                }
            ).where((IdempotencyKey.user == user_id) & (IdempotencyKey.key == key))
        else:
            await self._release(user_id, key)

    async def _claim(self, user_id: int, key: str, digest: str) -> dict[str, Any] | None:
        """Insert the key as "running"; None when this request claimed it, else the existing row."""
        now = datetime.now(UTC)
        await IdempotencyKey.delete().where(
            (IdempotencyKey.user == user_id)
            & (
                (IdempotencyKey.created_at < now - KEY_LIFETIME)
                | (IdempotencyKey.status_code.is_null() & (IdempotencyKey.created_at < now - ABANDONED_AFTER))
            )
        )
        inserted = (
            await IdempotencyKey.insert(IdempotencyKey(user=user_id, key=key, fingerprint=digest))
            .on_conflict(action="DO NOTHING")
            .returning(IdempotencyKey.id)
        )
        if inserted:
            return None
        row: dict[str, Any] | None = (
            await IdempotencyKey.select().where((IdempotencyKey.user == user_id) & (IdempotencyKey.key == key)).first()
        )
        if row is None:  # released between our insert and select: treat as in use, the client retries
            raise ApiError("idempotency_key_in_use")
        return row

    async def _release(self, user_id: int, key: str) -> None:
        await IdempotencyKey.delete().where(
            (IdempotencyKey.user == user_id) & (IdempotencyKey.key == key) & IdempotencyKey.status_code.is_null()
        )

    async def _replay(self, send: Send, key: str, row: dict[str, Any]) -> None:
        encoding = row["content_encoding"]
        body = base64.b64decode(row["body"] or "") if encoding else (row["body"] or "").encode()
        headers = [
            (b"content-type", (row["content_type"] or "application/json").encode("latin-1")),
            *([(b"content-encoding", encoding.encode("latin-1")), (b"vary", b"Accept-Encoding")] if encoding else []),
            (b"content-length", str(len(body)).encode()),
            (b"idempotent-replayed", b"true"),
            (b"idempotency-key", key.encode("latin-1", errors="replace")),
        ]
        await send({"type": "http.response.start", "status": row["status_code"], "headers": headers})
        await send({"type": "http.response.body", "body": body, "more_body": False})
