"""Fixtures of the integration tests: the /v1 API's configuration, the worker's store over
the test's database, a started broker link."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from paysync.broker import Broker
from paysync.connections import broker_of
from paysync.db import create_pool
from providers import MAPPINGS
from tests.support.config import API_TABLE, RunConfig, with_tokens, write_config
from tests.support.services import BrokerNames
from worker.store import Store


@pytest.fixture
def api_config(tmp_path: Path, db_url: str, names: BrokerNames) -> RunConfig:
    """The test configuration with the /v1 API's tokens (``tests/support/config.py``)."""
    return with_tokens(
        write_config(tmp_path, database_url=db_url, prefix=names.prefix, extra=API_TABLE)
    )


@pytest.fixture
async def store(db_url: str) -> AsyncIterator[Store]:
    """The worker's store over the test's own database, to apply published envelopes."""
    pool = await create_pool(db_url, max_size=2)
    yield Store(pool, MAPPINGS)
    await pool.close()


@pytest.fixture
async def broker(config: RunConfig) -> AsyncIterator[Broker]:
    """A broker link of the test's own, connected."""
    link = broker_of(config.settings, "test")
    link.start()
    await link.wait_connected(10)
    yield link
    await link.close()
