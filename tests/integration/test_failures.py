"""Failure semantics of the worker: deduplication never swallows a failure, and a message
that keeps failing ends on paysync.dead with its reason and raw body."""

from __future__ import annotations

from collections.abc import AsyncIterator

import asyncpg
import orjson
import pytest

from paysync.db import create_pool
from providers import MAPPINGS
from schemas.envelope import H_ERROR, Envelope
from schemas.observation import Observation
from tests.integration.test_worker import credit, publish, worker
from tests.support.amqp import depth, take
from tests.support.config import RunConfig
from tests.support.services import BrokerNames
from worker.outcome import Outcome
from worker.store import Store

pytestmark = pytest.mark.integration


class InjectedFault(Exception):
    pass


class FailingStore(Store):
    """The real store, failing after it wrote the inbox row and the payment, inside the
    transaction, for the first ``failures`` attempts."""

    def __init__(self, pool: asyncpg.Pool, failures: int) -> None:
        super().__init__(pool, MAPPINGS)
        self.failures = failures
        self.attempts = 0

    async def _apply_one(self, conn, envelope: Envelope, obs: Observation) -> Outcome:
        outcome = await super()._apply_one(conn, envelope, obs)
        self.attempts += 1
        if self.attempts <= self.failures:
            raise InjectedFault(f"injected failure #{self.attempts}")
        return outcome


@pytest.fixture
async def pool(db_url: str) -> AsyncIterator[asyncpg.Pool]:
    pool = await create_pool(db_url, max_size=4)
    yield pool
    await pool.close()


async def test_a_failure_while_applying_leaves_no_trace_and_the_redelivery_applies(
    config: RunConfig, names: BrokerNames, pool: asyncpg.Pool, db: asyncpg.Connection
) -> None:
    events = await names.bind_events_queue()
    store = FailingStore(pool, failures=1)
    message = credit("f1", "rec-f1", "25")
    async with worker(config.settings, pool, store) as broker:
        await publish(broker, message)
        [event] = await take(events, 1)
    assert store.attempts == 2, "the message was not redelivered after the failure"
    assert orjson.loads(event.body)["payment"]["status"] == "paid"
    receipts = await db.fetch("SELECT outcome, message_id FROM inbox")
    assert [(r["outcome"], r["message_id"]) for r in receipts] == [("applied", message.message_id)]
    assert await db.fetchval("SELECT count(*) FROM transitions") == 1
    assert await depth(names.topology.dead_queue) == 0


async def test_a_message_that_always_fails_is_dead_lettered_after_the_delivery_limit(
    config: RunConfig, names: BrokerNames, pool: asyncpg.Pool, db: asyncpg.Connection
) -> None:
    store = FailingStore(pool, failures=10**6)
    message = credit("f2", "rec-f2", "25")
    async with worker(config.settings, pool, store) as broker:
        await publish(broker, message)
        [dead] = await take(names.topology.dead_queue, 1)
    limit = config.settings.broker.delivery_limit
    assert store.attempts == limit, "dead-lettered before (or after) the delivery limit"
    assert dead.body == message.body
    assert dead.message_id == message.message_id
    assert str(dead.headers[H_ERROR]) == f"InjectedFault: injected failure #{limit}"
    assert await depth(names.topology.inbound_queue) == 0
    assert await db.fetchval("SELECT count(*) FROM inbox") == 0
    assert await db.fetchval("SELECT count(*) FROM payments") == 0
