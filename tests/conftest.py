"""Fixtures shared by integration and e2e tests: a database of one's own, cloned from a
migrated template, and a broker name prefix of one's own, both removed afterwards."""

from __future__ import annotations

import logging
import os
import uuid
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import asyncpg
import pytest
import structlog

from paysync.migrate import apply_migrations, discover
from tests.support.config import RunConfig, write_config
from tests.support.services import (
    BrokerNames,
    create_database,
    database_url,
    drop_database,
    unique,
)


@pytest.fixture(scope="session")
async def template_database() -> AsyncIterator[str]:
    name = f"paysync_tmpl_{os.getpid()}"
    await drop_database(name)
    await create_database(name)
    conn = await asyncpg.connect(database_url(name))
    try:
        await apply_migrations(conn, discover())
    finally:
        await conn.close()
    yield name
    await drop_database(name)


@pytest.fixture
async def db_url(template_database: str) -> AsyncIterator[str]:
    name = unique("paysync_t")
    await create_database(name, template=template_database)
    yield database_url(name)
    await drop_database(name)


@pytest.fixture
async def db(db_url: str) -> AsyncIterator[asyncpg.Connection]:
    conn = await asyncpg.connect(db_url)
    yield conn
    await conn.close()


@pytest.fixture
async def names() -> AsyncIterator[BrokerNames]:
    broker_names = BrokerNames(prefix=f"t{uuid.uuid4().hex[:10]}.")
    await broker_names.declare()
    yield broker_names
    await broker_names.cleanup()


@pytest.fixture
def config(tmp_path: Path, db_url: str, names: BrokerNames) -> RunConfig:
    return write_config(tmp_path, database_url=db_url, prefix=names.prefix)


@pytest.fixture
def restored_logging() -> Iterator[None]:
    """For a test that runs ``paysync.cli.main``, which configures logging for the process
    (onto the test's captured stderr): put logging back as it was afterwards."""
    root = logging.getLogger()
    handlers, level = root.handlers[:], root.level
    yield
    root.handlers[:] = handlers
    root.setLevel(level)
    structlog.contextvars.clear_contextvars()
    structlog.reset_defaults()
