"""The worker's batched apply against real Postgres and RabbitMQ: one envelope's failure is
its own (the rest of its batch commits, each delivery is settled once), and a batch whose
transaction fails as a whole is applied again, once, with nothing lost or doubled."""

from __future__ import annotations

from collections.abc import AsyncIterator

import asyncpg
import pytest

from paysync.broker import Broker
from paysync.db import create_pool
from paysync.settings import Settings
from schemas.envelope import H_ERROR
from tests.integration.test_worker import credit, envelope, publish, worker
from tests.support.amqp import take
from tests.support.config import RunConfig
from tests.support.rabbitctl import consumer_tags, queue_counts
from tests.support.services import BrokerNames
from tests.support.waiting import eventually

pytestmark = pytest.mark.integration

GOOD = 5


@pytest.fixture
async def pool(db_url: str) -> AsyncIterator[asyncpg.Pool]:
    pool = await create_pool(db_url, max_size=4)
    yield pool
    await pool.close()


def batching(settings: Settings) -> Settings:
    """A batch large and patient enough to take every message published before the
    worker starts."""
    worker_settings = settings.worker.model_copy(
        update={"batch_size": 32, "prefetch": 64, "batch_linger_ms": 300.0}
    )
    return settings.model_copy(update={"worker": worker_settings})


async def test_a_poison_envelope_is_dead_lettered_alone_and_its_batch_commits(
    config: RunConfig,
    names: BrokerNames,
    broker: Broker,
    pool: asyncpg.Pool,
    db: asyncpg.Connection,
) -> None:
    good = [credit(f"b{n}", f"rec-{n}", "25") for n in range(GOOD)]
    unparseable = envelope(b'{"pay_status":"success","record_id":"x"}')
    # Parses, but Postgres refuses the NUL in its merchant ref: it fails inside the store,
    # is requeued like any failure of ours and dead-lettered on its last delivery.
    refused = credit("b\x00poison", "rec-nul", "25")
    for env in [*good[:2], unparseable, refused, *good[2:]]:
        await publish(broker, env)
    inbound = names.topology.inbound_queue
    async with worker(batching(config.settings), pool):
        dead = await take(names.topology.dead_queue, 2)
        tags = await consumer_tags(inbound)
        await eventually(lambda: _settled(inbound))
        # The broker closes a channel that acks a delivery twice: still the same consumer.
        assert await consumer_tags(inbound) == tags
        assert len(tags) == 1
    reasons = {d.message_id: str(d.headers[H_ERROR]) for d in dead}
    assert reasons.keys() == {unparseable.message_id, refused.message_id}
    assert "merchant_order_id" in reasons[unparseable.message_id]
    assert reasons[refused.message_id].startswith("CharacterNotInRepertoireError")
    rows = await db.fetch("SELECT message_id FROM inbox")
    assert sorted(r["message_id"] for r in rows) == sorted(e.message_id for e in good)
    # now() is the transaction's start: one value for the rows one transaction wrote.
    starts = await db.fetch("SELECT DISTINCT updated_at FROM payments")
    assert len(starts) == 1, "the good envelopes were not applied as one batch"
    assert await db.fetchval("SELECT count(*) FROM payments") == GOOD
    assert await db.fetchval("SELECT count(*) FROM outbox") == GOOD
    assert await queue_counts(inbound) == (0, 0)


async def _settled(queue: str) -> bool:
    return await queue_counts(queue) == (0, 0)


async def test_a_batch_whose_connection_dies_mid_transaction_is_applied_again_once(
    config: RunConfig,
    names: BrokerNames,
    broker: Broker,
    pool: asyncpg.Pool,
    db: asyncpg.Connection,
    db_url: str,
) -> None:
    batch = [credit(f"m{n}", f"rec-{n}", "25") for n in range(GOOD)]
    for env in batch:
        await publish(broker, env)
    inbound = names.topology.inbound_queue
    # An uncommitted row of the batch's middle payment: the batch writes the payments
    # before it, then waits on this one, mid-transaction.
    blocker = await asyncpg.connect(db_url)
    try:
        holding = blocker.transaction()
        await holding.start()
        await blocker.execute(
            "INSERT INTO payments (provider, account, merchant_ref) VALUES ($1, $2, $3)",
            "ccpayment",
            batch[0].account,
            "m2",
        )
        async with worker(batching(config.settings), pool):
            waiting = await eventually(lambda: _waiting_on(db, blocker))
            tags = await consumer_tags(inbound)
            killed = await db.fetchval("SELECT pg_terminate_backend($1)", waiting)
            assert killed
            await holding.rollback()
            await eventually(lambda: _settled(inbound))
            assert await consumer_tags(inbound) == tags
    finally:
        await blocker.close()
    rows = await db.fetch("SELECT message_id, outcome FROM inbox")
    assert sorted(r["message_id"] for r in rows) == sorted(e.message_id for e in batch)
    assert {r["outcome"] for r in rows} == {"applied"}
    events = await db.fetch("SELECT payment_id, seq FROM outbox ORDER BY payment_id")
    assert [e["seq"] for e in events] == [1] * GOOD
    assert await db.fetchval("SELECT count(*) FROM payments") == GOOD
    assert await db.fetchval("SELECT count(*) FROM transitions") == GOOD
    assert await queue_counts(inbound) == (0, 0)


async def _waiting_on(db: asyncpg.Connection, blocker: asyncpg.Connection) -> int | None:
    """The backend waiting on the blocker's lock, once it has written rows of its own."""
    holder = blocker.get_server_pid()
    pid: int | None = await db.fetchval(
        "SELECT pid FROM pg_stat_activity"
        " WHERE $1 = ANY(pg_blocking_pids(pid)) AND backend_xid IS NOT NULL",
        holder,
    )
    return pid
