"""Databases for the benchmark scripts: one throwaway database per script on a shared server."""

from __future__ import annotations

from urllib.parse import urlsplit, urlunsplit


def with_database(url: str, name: str) -> str:
    """`url` pointing at database `name` instead."""
    return urlunsplit(urlsplit(url)._replace(path=f"/{name}"))


async def recreate_database(server_url: str, name: str) -> None:
    """DROP (forcing other sessions off) and CREATE database `name` on the server of `server_url`."""
    import asyncpg

    connection = await asyncpg.connect(with_database(server_url, "postgres"))
    try:
        await connection.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        await connection.execute(f'CREATE DATABASE "{name}"')
    finally:
        await connection.close()
