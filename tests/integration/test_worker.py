"""The worker against real Postgres and RabbitMQ: store, consumer outcomes, outbox relay."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from datetime import UTC, datetime
from decimal import Decimal

import aio_pika
import asyncpg
import orjson
import pytest

from paysync.amqp import INBOUND_ROUTING_KEY
from paysync.broker import Broker
from paysync.connections import broker_of
from paysync.db import create_pool
from paysync.metrics import Metrics
from paysync.settings import Settings
from providers import MAPPINGS, REGISTRY
from schemas.envelope import H_ERROR, Envelope, EnvelopeKind
from simulator.ccpayment import webhook_body
from tests.support.amqp import depth, take
from tests.support.config import ACCOUNT, RunConfig
from tests.support.db import one
from tests.support.services import BrokerNames
from tests.support.waiting import eventually
from worker.consumer import Consumer
from worker.relay import Relay
from worker.store import Store

pytestmark = pytest.mark.integration


def envelope(body: bytes, provider: str = "ccpayment") -> Envelope:
    return Envelope(
        message_id=str(uuid.uuid4()),
        kind=EnvelopeKind.CALLBACK,
        provider=provider,
        account=ACCOUNT,
        received_at=datetime.now(UTC),
        body=body,
        content_type="application/json",
    )


def credit(ref: str, record: str, paid: str, due: str = "25") -> Envelope:
    return envelope(
        webhook_body(
            merchant_ref=ref,
            record_id=record,
            order_id="o-" + ref,
            order_amount=Decimal(due),
            paid_amount=Decimal(paid),
        )
    )


async def apply(store: Store, env: Envelope) -> list[str]:
    observations = REGISTRY[env.provider].parse_callback(env)
    return [o.outcome for o in await store.apply(env, observations)]


@pytest.fixture
async def pool(db_url: str) -> AsyncIterator[asyncpg.Pool]:
    pool = await create_pool(db_url, max_size=4)
    yield pool
    await pool.close()


async def test_store_applies_a_credit_once_and_absorbs_its_duplicates(
    pool: asyncpg.Pool, db: asyncpg.Connection
) -> None:
    store = Store(pool, MAPPINGS)
    first = credit("r1", "rec-1", "25")
    assert await apply(store, first) == ["applied"]
    # The provider resends: a new message, the same record.
    assert await apply(store, credit("r1", "rec-1", "25")) == ["duplicate"]
    assert await apply(store, first) == ["duplicate"]
    row = await one(db, "SELECT status, amount_paid, seq FROM payments")
    assert dict(row) == {"status": "paid", "amount_paid": Decimal("25"), "seq": 1}
    assert await db.fetchval("SELECT count(*) FROM outbox") == 1
    receipts = await db.fetch("SELECT raw, outcome, message_id FROM inbox ORDER BY id")
    # The resent callback is a second receipt; the redelivered message adds nothing.
    assert [r["outcome"] for r in receipts] == ["applied", "duplicate"]
    assert receipts[0]["raw"] == first.body
    assert receipts[0]["message_id"] == first.message_id


async def test_store_records_each_status_change_with_the_next_seq(
    pool: asyncpg.Pool, db: asyncpg.Connection
) -> None:
    store = Store(pool, MAPPINGS)
    await apply(store, credit("r2", "rec-a", "10"))
    await apply(store, credit("r2", "rec-b", "15"))
    await apply(store, credit("r2", "rec-c", "1"))
    transitions = await db.fetch("SELECT seq, from_status, to_status FROM transitions ORDER BY seq")
    assert [tuple(t) for t in transitions] == [
        (1, None, "underpaid"),
        (2, "underpaid", "paid"),
        (3, "paid", "overpaid"),
    ]
    bodies = [
        orjson.loads(r["body"]) for r in await db.fetch("SELECT body::text FROM outbox ORDER BY id")
    ]
    assert [b["payment"]["seq"] for b in bodies] == [1, 2, 3]
    assert [b["payment"]["amount_paid"] for b in bodies] == ["10", "25", "26"]


@asynccontextmanager
async def worker(
    settings: Settings, pool: asyncpg.Pool, store: Store | None = None, consumers: int = 1
) -> AsyncIterator[Broker]:
    """``consumers`` consumers (each its own channel) and one relay, in this event loop."""
    stop = asyncio.Event()
    broker = broker_of(settings, "test")
    broker.start()
    await broker.wait_connected(10)
    metrics = Metrics()
    roles = [
        Consumer(broker, store or Store(pool, MAPPINGS), REGISTRY, settings.worker, metrics, stop)
        for _ in range(consumers)
    ]
    tasks = [asyncio.create_task(role.run()) for role in roles]
    tasks.append(asyncio.create_task(Relay(pool, broker, settings.worker, metrics, stop).run()))
    try:
        yield broker
    finally:
        stop.set()
        await asyncio.gather(*tasks)
        await broker.close()


async def publish(broker: Broker, env: Envelope) -> None:
    message = aio_pika.Message(
        env.body,
        headers=env.amqp_headers(),
        message_id=env.message_id,
        content_type=env.content_type,
        delivery_mode=aio_pika.DeliveryMode.PERSISTENT,
    )
    await broker.publish(broker.topology.inbound_exchange, message, INBOUND_ROUTING_KEY, timeout=5)


async def test_an_unparseable_authenticated_body_is_dead_lettered_with_reason_and_raw_bytes(
    config: RunConfig, names: BrokerNames, pool: asyncpg.Pool, db: asyncpg.Connection
) -> None:
    poison = envelope(b'{"pay_status":"success","record_id":"x"}')  # no merchant_order_id
    async with worker(config.settings, pool) as broker:
        await publish(broker, poison)
        [dead] = await take(names.topology.dead_queue, 1)
    assert dead.body == poison.body
    assert dead.message_id == poison.message_id
    assert "extend.merchant_order_id" in str(dead.headers[H_ERROR])
    assert dead.headers["x-paysync-provider"] == "ccpayment"
    assert await depth(names.topology.inbound_queue) == 0
    assert await db.fetchval("SELECT count(*) FROM inbox") == 0


async def test_an_envelope_of_an_unknown_provider_is_dead_lettered(
    config: RunConfig, names: BrokerNames, pool: asyncpg.Pool
) -> None:
    async with worker(config.settings, pool) as broker:
        await publish(broker, envelope(b"{}", provider="nope"))
        [dead] = await take(names.topology.dead_queue, 1)
    assert str(dead.headers[H_ERROR]).startswith("UnknownAccount")


async def test_the_relay_publishes_each_payment_in_seq_order_and_marks_rows(
    config: RunConfig, names: BrokerNames, pool: asyncpg.Pool, db: asyncpg.Connection
) -> None:
    events = await names.bind_events_queue()
    store = Store(pool, MAPPINGS)
    for i in range(3):  # interleaved: underpaid, paid, overpaid for each of two payments
        await apply(store, credit("pa", f"a{i}", "10", due="20"))
        await apply(store, credit("pb", f"b{i}", "10", due="20"))
    async with worker(config.settings, pool):
        messages = await take(events, 6)

        async def all_marked() -> bool:
            pending: int = await db.fetchval(
                "SELECT count(*) FROM outbox WHERE published_at IS NULL"
            )
            return pending == 0

        await eventually(all_marked, what="outbox rows marked published")
    by_payment: dict[str, list[int]] = {}
    for message in messages:
        payment = orjson.loads(message.body)["payment"]
        by_payment.setdefault(payment["merchant_ref"], []).append(payment["seq"])
    assert by_payment == {"pa": [1, 2, 3], "pb": [1, 2, 3]}
