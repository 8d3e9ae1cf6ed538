"""Postgres access: the pool, named SQL queries loaded from ``.sql`` files, error mapping.

SQL lives in ``.sql`` files; a file holds several queries, each introduced by a line
``-- name: query_name``. Queries are loaded once per process and passed down.
"""

from __future__ import annotations

import asyncio
import re
from collections.abc import AsyncIterator, Mapping
from contextlib import asynccontextmanager
from pathlib import Path
from typing import TYPE_CHECKING, Any, TypeAlias

import asyncpg
import orjson

from paysync.errors import DatabaseUnavailable

if TYPE_CHECKING:
    from asyncpg.pool import PoolConnectionProxy

    # What a query runs on: a plain connection or one borrowed from the pool.
    Conn: TypeAlias = asyncpg.Connection[asyncpg.Record] | PoolConnectionProxy[asyncpg.Record]

_NAME = re.compile(r"^--\s*name:\s*([a-z_][a-z0-9_]*)\s*$", re.MULTILINE)

# Errors after which the same transaction may succeed later.
TRANSIENT_DB_ERRORS: tuple[type[BaseException], ...] = (
    OSError,
    asyncio.TimeoutError,
    asyncpg.PostgresConnectionError,
    asyncpg.InterfaceError,
    # A backend terminated mid-transaction can leave asyncpg's protocol mid-operation;
    # releasing the connection then fails with this, and asyncpg discards the connection
    # (MagicStack/asyncpg#784; found by the fault drill's pg_terminate_backend).
    asyncpg.exceptions._base.InternalClientError,
    asyncpg.exceptions.CannotConnectNowError,
    asyncpg.exceptions.AdminShutdownError,
    asyncpg.exceptions.OperatorInterventionError,
    asyncpg.exceptions.DeadlockDetectedError,
    asyncpg.exceptions.SerializationError,
    asyncpg.exceptions.LockNotAvailableError,
    asyncpg.exceptions.TooManyConnectionsError,
)


def load_queries(path: Path) -> Mapping[str, str]:
    """Parse a file of ``-- name:`` sections into {name: sql}."""
    text = path.read_text(encoding="utf-8")
    parts = _NAME.split(text)
    queries: dict[str, str] = {}
    for name, sql in zip(parts[1::2], parts[2::2], strict=True):
        if name in queries:
            raise ValueError(f"{path}: query {name} defined twice")
        queries[name] = sql.strip()
    return queries


async def _init_connection(conn: asyncpg.Connection) -> None:
    for typ in ("json", "jsonb"):
        await conn.set_type_codec(
            typ, schema="pg_catalog", encoder=_encode_json, decoder=orjson.loads, format="text"
        )


def _encode_json(value: Any) -> str:
    if isinstance(value, bytes):
        return value.decode()
    if isinstance(value, str):
        return value
    return orjson.dumps(value).decode()


async def _after_release(conn: asyncpg.Connection) -> None:
    """What a released connection needs beyond asyncpg's own cleanup (which drops its
    listeners and rolls back a transaction left open): nothing. paysync leaves no session
    state on a pooled connection (no SET, no session advisory lock, no cursor or prepared
    statement of its own; LISTEN is undone by ``remove_listener``), so asyncpg's default
    reset query (``RESET ALL; UNLISTEN *; ...``), a round trip on every release, is
    skipped: one per batch the worker applies and per relay round."""


async def create_pool(dsn: str, *, max_size: int, command_timeout: float = 30.0) -> asyncpg.Pool:
    """A pool that opens connections lazily, so a process starts while Postgres is down."""
    pool = asyncpg.create_pool(
        dsn,
        min_size=0,
        max_size=max_size,
        init=_init_connection,
        reset=_after_release,
        command_timeout=command_timeout,
        timeout=10.0,
    )
    return await pool


@asynccontextmanager
async def translated_errors() -> AsyncIterator[None]:
    """Re-raise connection, lock and timeout failures as ``DatabaseUnavailable``."""
    try:
        yield
    except TRANSIENT_DB_ERRORS as exc:
        raise DatabaseUnavailable(f"{type(exc).__name__}: {exc}") from exc
