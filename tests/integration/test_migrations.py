"""Migrations: they produce schema.sql, they are idempotent, and migrate creates the database."""

from __future__ import annotations

import socket
import time
import uuid
from collections.abc import AsyncIterator
from typing import Any

import aio_pika
import aiormq
import asyncpg
import pytest
from aio_pika.abc import AbstractConnection

from paysync.amqp import DEAD_DELIVERY_LIMIT, INBOUND_ROUTING_KEY, check
from paysync.cli import commands
from paysync.connections import topology_of
from paysync.errors import StartupError, TopologyMismatch, TopologyMissing
from paysync.migrate import MIGRATIONS_DIR, apply_migrations, discover
from paysync.settings import Settings
from tests.support.amqp import depth
from tests.support.config import RunConfig
from tests.support.services import (
    AMQP_URL,
    BrokerNames,
    create_database,
    database_url,
    drop_database,
    unique,
)

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


@pytest.fixture
async def undeclared() -> AsyncIterator[BrokerNames]:
    """A broker prefix nothing has declared yet (the ``names`` fixture declares its own)."""
    fresh = BrokerNames(prefix=f"t{uuid.uuid4().hex[:10]}.")
    yield fresh
    await fresh.cleanup()


def _settings_for(config: RunConfig, names: BrokerNames, delivery_limit: int = 3) -> Settings:
    broker = config.settings.broker.model_copy(
        update={"name_prefix": names.prefix, "delivery_limit": delivery_limit}
    )
    return config.settings.model_copy(update={"broker": broker})


async def test_migrate_declares_what_the_roles_check(
    config: RunConfig, undeclared: BrokerNames
) -> None:
    settings = _settings_for(config, undeclared)
    topology = topology_of(settings)
    connection = await aio_pika.connect(AMQP_URL)
    async with connection:
        with pytest.raises(TopologyMissing, match="run `paysync migrate`"):
            await check(connection, topology)
        assert await commands.migrate(settings) == 0
        await check(connection, topology)
        # paysync.dead has its explicit, unreachable delivery limit: declaring it without
        # one is refused, with it accepted (a queue's arguments cannot be read over AMQP).
        assert await _declares(connection, topology.dead_queue, {"x-queue-type": "quorum"}) is False
        dead_args = {"x-queue-type": "quorum", "x-delivery-limit": DEAD_DELIVERY_LIMIT}
        assert await _declares(connection, topology.dead_queue, dead_args) is True


async def _declares(connection: AbstractConnection, queue: str, arguments: dict[str, Any]) -> bool:
    channel = await connection.channel()
    try:
        await channel.declare_queue(queue, durable=True, arguments=arguments)
    except aiormq.exceptions.ChannelPreconditionFailed:
        return False
    await channel.close()
    return True


async def test_migrate_keeps_a_dead_queue_an_older_paysync_declared_without_a_limit(
    config: RunConfig, undeclared: BrokerNames, capsys: pytest.CaptureFixture[str]
) -> None:
    connection = await aio_pika.connect(AMQP_URL)
    async with connection:
        channel = await connection.channel()
        await channel.declare_queue(
            undeclared.topology.dead_queue, durable=True, arguments={"x-queue-type": "quorum"}
        )
        assert await commands.migrate(_settings_for(config, undeclared)) == 0
        await check(connection, undeclared.topology)
    assert "dead_queue_without_delivery_limit" in capsys.readouterr().out


async def test_migrate_refuses_to_change_the_limit_of_a_queue_holding_messages(
    config: RunConfig, undeclared: BrokerNames
) -> None:
    assert await commands.migrate(_settings_for(config, undeclared, delivery_limit=3)) == 0
    connection = await aio_pika.connect(AMQP_URL)
    async with connection:
        channel = await connection.channel()
        exchange = await channel.get_exchange(undeclared.topology.inbound_exchange)
        await exchange.publish(aio_pika.Message(b"{}"), INBOUND_ROUTING_KEY)
    with pytest.raises(TopologyMismatch, match=r"restore broker\.delivery_limit"):
        await commands.migrate(_settings_for(config, undeclared, delivery_limit=4))
    assert await depth(undeclared.topology.inbound_queue) == 1  # nothing lost


async def test_migrate_with_postgres_unreachable_fails_at_once_naming_it(
    config: RunConfig,
) -> None:
    with socket.socket() as closed:
        closed.bind(("127.0.0.1", 0))
        port = closed.getsockname()[1]
    settings = config.settings.model_copy(
        update={"database_url": f"postgresql://postgres@127.0.0.1:{port}/paysync"}
    )
    started = time.monotonic()
    with pytest.raises(StartupError, match=r"Postgres not reachable .*database_url"):
        await commands.migrate(settings)
    # One attempt, not the old 30 s wait (a bound on the fault path, not a benchmark).
    assert time.monotonic() - started < 5
