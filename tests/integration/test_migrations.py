"""Migrations: they produce schema.sql, they are idempotent, and migrate creates the database."""

from __future__ import annotations

import asyncpg
import pytest

from paysync import commands
from paysync.migrate import MIGRATIONS_DIR, apply_migrations, discover
from tests.support.amqp import depth
from tests.support.config import RunConfig
from tests.support.services import create_database, database_url, drop_database, unique

pytestmark = pytest.mark.integration

CATALOG = """
SELECT 'column' AS kind, table_name || '.' || column_name || ' ' || data_type || ' '
       || is_nullable || ' ' || coalesce(column_default, '') || ' ' || is_identity AS detail
FROM information_schema.columns WHERE table_schema = 'public' AND table_name <> 'schema_migrations'
UNION ALL
SELECT 'index', indexdef FROM pg_indexes
WHERE schemaname = 'public' AND tablename <> 'schema_migrations'
UNION ALL
SELECT 'constraint', conrelid::regclass || ' ' || conname || ' ' || pg_get_constraintdef(oid)
FROM pg_constraint WHERE connamespace = 'public'::regnamespace
  AND conrelid::regclass::text <> 'schema_migrations'
ORDER BY 1, 2
"""


async def _catalog(url: str) -> list[tuple[str, str]]:
    conn = await asyncpg.connect(url)
    try:
        return [tuple(r) for r in await conn.fetch(CATALOG)]
    finally:
        await conn.close()


async def test_the_migrations_produce_exactly_schema_sql(db_url: str) -> None:
    name = unique("paysync_schema")
    await create_database(name)
    try:
        conn = await asyncpg.connect(database_url(name))
        await conn.execute((MIGRATIONS_DIR.parent / "schema.sql").read_text())
        await conn.close()
        assert await _catalog(db_url) == await _catalog(database_url(name))
    finally:
        await drop_database(name)


async def test_applying_migrations_again_changes_nothing(db: asyncpg.Connection) -> None:
    assert await apply_migrations(db, discover()) == []
    versions = [r["version"] for r in await db.fetch("SELECT version FROM schema_migrations")]
    assert versions == [m.version for m in discover()]


async def test_migrate_creates_a_missing_database_and_declares_the_topology(
    config: RunConfig, names
) -> None:
    name = unique("paysync_fresh")
    settings = config.settings.model_copy(update={"database_url": database_url(name)})
    try:
        assert await commands.migrate(settings) == 0
        assert await commands.migrate(settings) == 0  # idempotent, topology included
        conn = await asyncpg.connect(database_url(name))
        assert await conn.fetchval("SELECT count(*) FROM schema_migrations") == len(discover())
        await conn.close()
    finally:
        await drop_database(name)
    assert await depth(names.topology.inbound_queue) == 0
