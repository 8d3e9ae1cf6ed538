"""Small Postgres reading helpers for assertions."""

from __future__ import annotations

from typing import Any

import asyncpg


async def one(conn: asyncpg.Connection, sql: str, *args: Any) -> asyncpg.Record:
    """The single row ``sql`` returns; fails the test when there is none."""
    row = await conn.fetchrow(sql, *args)
    assert row is not None, f"no row for: {sql}"
    return row
