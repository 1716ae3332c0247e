"""Short database transactions that survive a lost connection.

Piccolo's `DB.transaction()` keeps the current transaction in a ContextVar. When the connection
dies inside it (PostgreSQL restarted, failed over, `pg_terminate_backend`, an idle-in-transaction
timeout), the rollback in its `__aexit__` raises before the ContextVar is reset and before the
connection goes back to the pool, so every later `DB.transaction()` in the same task would nest
into the dead connection, forever. `transaction()` below cleans up after that: the marker is
reset, the dead connection is terminated and handed back to the pool (which replaces it), and the
original error propagates. A lost connection therefore costs one unit of work, never the task.

Rule of the house (see ARCHITECTURE.md): a transaction never waits on Stripe or any other
network call. Read from the network first, then write in one of these.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import logging
import string
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any, TypeVar

import asyncpg
import redis.exceptions
from piccolo.table import Table

from piccolo_conf import DB

logger = logging.getLogger(__name__)
T = TypeVar("T")
Row = TypeVar("Row", bound=Table)

DATABASE_UNAVAILABLE: tuple[type[BaseException], ...] = (
    OSError,  # refused, reset, timed out
    asyncpg.InterfaceError,  # a connection closed or released under us
    asyncpg.PostgresConnectionError,  # ConnectionDoesNotExistError, ConnectionFailureError, ...
    asyncpg.exceptions.OperatorInterventionError,  # AdminShutdownError (pg_terminate_backend), restarts
    asyncpg.exceptions.InsufficientResourcesError,  # too many connections
    # asyncpg sometimes leaves a connection whose backend was terminated mid-transaction in a broken
    # protocol state ("cannot switch to state …; another operation is in progress", MagicStack/asyncpg#1069);
    # the pool drops it when its reset fails, so a retry gets a healthy one.
    asyncpg.exceptions.InternalClientError,
)
"""Errors that mean "the database (or this connection to it) is gone", not "this query is wrong"."""

STORE_UNAVAILABLE: tuple[type[BaseException], ...] = (redis.exceptions.ConnectionError, redis.exceptions.TimeoutError)
"""Errors that mean Redis (sessions and rate limits with `REDIS_URL`) cannot be reached right now."""


@contextlib.asynccontextmanager
async def transaction() -> AsyncIterator[Any]:
    """`async with transaction():` — one PostgreSQL transaction (joins an enclosing one).

    Raises whatever the body or the commit raises (asyncpg's `ConnectionDoesNotExistError`,
    `InterfaceError`, `OSError` when the connection was lost); afterwards the task is clean.
    """
    if DB.current_transaction.get() is not None:
        async with DB.transaction() as joined:
            yield joined
        return
    tx = DB.transaction()
    try:
        async with tx:
            yield tx
    finally:
        if DB.current_transaction.get() is tx:
            await _discard(tx, reset=True)
        elif getattr(tx, "context", None) is None and getattr(tx, "connection", None) is not None:
            await _discard(tx, reset=False)  # BEGIN failed after the connection was acquired


async def _discard(tx: Any, *, reset: bool) -> None:
    """Forget a transaction whose rollback failed: reset the ContextVar, drop its connection."""
    if reset:
        DB.current_transaction.reset(tx.context)
    connection = getattr(tx, "connection", None)
    if connection is None:
        return
    logger.warning("Database connection lost inside a transaction; discarding it")
    with contextlib.suppress(asyncpg.InterfaceError):  # already released when asyncpg saw it close
        connection.terminate()
    if DB.pool is not None:
        # A closed connection goes back as an empty slot; the pool opens a new one when needed.
        with contextlib.suppress(Exception):
            await DB.pool.release(connection)


async def retry_if_connection_lost(operation: Callable[[], Awaitable[T]], attempts: int = 3) -> T:
    """Run an idempotent database `operation`; when its connection turns out dead, try again.

    An idle pooled connection whose backend was killed fails only when next used; the pool then
    replaces it, so a second try usually succeeds at once. Waits 0.2 s, then 0.4 s between tries.

    Raises:
        the last of `DATABASE_UNAVAILABLE` when every attempt failed.
    """
    for attempt in range(1, attempts + 1):
        try:
            return await operation()
        except DATABASE_UNAVAILABLE:
            if attempt == attempts:
                raise
            await asyncio.sleep(0.2 * attempt)
    raise AssertionError("unreachable")


async def reset_connection(connection: asyncpg.Connection) -> None:
    """What the pool does to a connection handed back (asyncpg's `reset` hook): roll back a transaction
    left open, nothing else. asyncpg's default runs `pg_advisory_unlock_all(); CLOSE ALL; UNLISTEN *;
    RESET ALL` on every release, one more round trip per query; this app takes only transaction-scoped
    advisory locks and never LISTENs, declares cursors outside transactions or changes session settings.
    """
    if connection.is_in_transaction():
        await connection.execute("ROLLBACK")


QUERY_LOGGERS: list[Callable[[Any], None]] = []
"""asyncpg query loggers added to every new pooled connection (tests count a page's SQL statements with one)."""


async def _init_connection(connection: asyncpg.Connection) -> None:
    for callback in QUERY_LOGGERS:
        connection.add_query_logger(callback)


async def start_pool(max_size: int, min_size: int = 1) -> None:
    """Open Piccolo's connection pool (`max_size` connections at most) with the cheap `reset_connection`."""
    await DB.start_connection_pool(min_size=min_size, max_size=max_size, reset=reset_connection, init=_init_connection)


@functools.lru_cache(maxsize=512)
def _numbered(sql: str) -> str:
    """`sql` with Piccolo's `{}` placeholders numbered as asyncpg's `$1`, `$2`, … (`{{` is a literal `{`)."""
    parts, count = [], 0
    for literal, field, _spec, _conversion in string.Formatter().parse(sql):
        parts.append(literal)
        if field is not None:
            count += 1
            parts.append(f"${count}")
    return "".join(parts)


async def fetch(sql: str, *args: Any) -> list[asyncpg.Record]:
    """The rows of one SQL statement written as for Piccolo's `Table.raw` (`{}` placeholders, bound
    values `args`), run where Piccolo's engine would run it: on the current `DB.transaction()`'s
    connection, else on a pooled one (a new connection when no pool is open). Rows are asyncpg
    records (read like the dicts `raw` gives: `row["name"]`, `row.items()`).

    What a page pays Piccolo for a raw statement (parsing the placeholders, copying each row into a
    dict) is left out: the numbered statement is remembered per SQL text, and the records are used
    as they come.

    Raises:
        asyncpg.PostgresError: the statement failed.
    """
    transaction = DB.current_transaction.get()
    if transaction is not None:
        return await transaction.connection.fetch(_numbered(sql), *args)
    if DB.pool is None:
        connection = await DB.get_new_connection()
        try:
            return await connection.fetch(_numbered(sql), *args)
        finally:
            await connection.close()
    async with DB.pool.acquire() as connection:
        return await connection.fetch(_numbered(sql), *args)


@functools.cache
def _attribute_names(table: type[Table]) -> dict[str, str]:
    """`{database column name: attribute name}` of `table` (`user_id` → `user` for a foreign key)."""
    return {str(c._meta.db_column_name): c._meta.name for c in table._meta.columns}


def row_of(table: type[Row], record: Any) -> Row | None:
    """A `table` instance from one row keyed by database column name (a dict, an asyncpg record or a
    composite value; None for NULL), holding the same values as one Piccolo's own queries return.

    Built without `Table.__init__`, which looks up a default for every column and costs more than
    the query on a page that shows a dozen rows; the values go straight into the instance's
    `__dict__`, where each of Piccolo's column descriptors keeps them (`Column.__set__` does nothing
    else: `tests/test_page_queries.py` checks the result equals Piccolo's own).
    """
    if record is None:
        return None
    instance = table.__new__(table)
    names = _attribute_names(table)
    values = instance.__dict__
    values["_exists_in_db"] = True
    values["_was_created"] = None
    for key, value in record.items():
        values[names[key]] = value
    return instance
