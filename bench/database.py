"""The benchmark's own Postgres database: created and migrated per invocation, dropped at the end.

Its name is ``paysync_bench_<hex>`` on the server of ``--pg-url`` (an admin URL). Every run
of pairs 2-4 starts from empty tables (``reset``), so neither side inherits the other's rows.
A killed (``SIGKILL``) benchmark leaves it behind: ``DROP DATABASE paysync_bench_<hex>``.
"""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator, Mapping
from contextlib import asynccontextmanager
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import urlsplit, urlunsplit

import asyncpg

from paysync.db import load_queries
from paysync.migrate import apply_migrations, discover, ensure_database

QUERIES_PATH = Path(__file__).with_name("queries.sql")
NAME_PREFIX = "paysync_bench_"


@dataclass(frozen=True, slots=True)
class Database:
    name: str
    url: str
    queries: Mapping[str, str]

    async def connect(self) -> asyncpg.Connection:
        return await asyncpg.connect(self.url, timeout=10)

    async def reset(self) -> None:
        conn = await self.connect()
        try:
            await conn.execute(self.queries["reset"])
        finally:
            await conn.close()


def _url_of(admin_url: str, name: str) -> str:
    return urlunsplit(urlsplit(admin_url)._replace(path=f"/{name}"))


@asynccontextmanager
async def created(admin_url: str) -> AsyncIterator[Database]:
    """A fresh, migrated database for this invocation; dropped afterwards."""
    name = f"{NAME_PREFIX}{uuid.uuid4().hex[:12]}"
    url = _url_of(admin_url, name)
    await ensure_database(url)
    try:
        conn = await asyncpg.connect(url, timeout=10)
        try:
            await apply_migrations(conn, discover())
        finally:
            await conn.close()
        yield Database(name=name, url=url, queries=load_queries(QUERIES_PATH))
    finally:
        await _drop(admin_url, name)


async def _drop(admin_url: str, name: str) -> None:
    admin = await asyncpg.connect(admin_url, timeout=10)
    try:
        # An identifier cannot be a bind parameter; quote_ident makes it one safe literal.
        quoted = await admin.fetchval("SELECT quote_ident($1)", name)
        await admin.execute(f"DROP DATABASE IF EXISTS {quoted} WITH (FORCE)")
    finally:
        await admin.close()


async def server_version(admin_url: str) -> str:
    """Postgres's version; fails fast when Postgres is away."""
    conn = await asyncpg.connect(admin_url, timeout=10)
    try:
        version: str = await conn.fetchval("SHOW server_version")
        return version
    finally:
        await conn.close()
