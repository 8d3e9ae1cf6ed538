"""Operator redrive of paysync.dead against real RabbitMQ and Postgres: listing leaves every
dead letter where it was, replay moves exactly the selected ones back to paysync.inbound
as ingest published them, and the worker applies them through its usual dedup."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Mapping
from contextlib import asynccontextmanager
from datetime import UTC, datetime

import aio_pika
import asyncpg
import orjson
import pytest

from paysync.amqp import INBOUND_ROUTING_KEY
from paysync.broker import Broker
from paysync.connections import broker_of
from paysync.db import create_pool
from paysync.dead import Selection, list_dead, replay, replay_headers
from paysync.metrics import Metrics
from paysync.settings import Settings
from providers import MAPPINGS, REGISTRY
from providers.registry import Provider
from schemas.envelope import H_DEAD_AT, H_ERROR, Envelope
from schemas.observation import Observation
from tests.integration.test_worker import credit, envelope, publish
from tests.support.amqp import depth, take
from tests.support.config import RunConfig
from tests.support.db import one
from tests.support.process import run_paysync
from tests.support.services import AMQP_URL, BrokerNames
from tests.support.waiting import eventually
from worker.consumer import Consumer
from worker.handler import dead_letter_message
from worker.outcome import Outcome
from worker.store import Store

pytestmark = pytest.mark.integration

MALFORMED = "MalformedMessage: extend.merchant_order_id is missing"
UNKNOWN = "UnknownAccount: unknown provider account ccpayment/shop"


@pytest.fixture
async def pool(db_url: str) -> AsyncIterator[asyncpg.Pool]:
    pool = await create_pool(db_url, max_size=4)
    yield pool
    await pool.close()


async def bury(broker: Broker, env: Envelope, reason: str) -> None:
    """Park an envelope on paysync.dead exactly as the worker's dead-lettering does: its
    headers as it arrived (the quorum queue's delivery count included) plus why and when."""
    message = dead_letter_message(
        body=env.body,
        headers=env.amqp_headers() | {"x-delivery-count": 2},
        message_id=env.message_id,
        content_type=env.content_type,
        reason=reason,
        at=datetime.now(UTC),
    )
    await broker.publish(broker.topology.dead_exchange, message, "", timeout=5)


async def bury_all(broker: Broker, *reasons: str) -> list[Envelope]:
    envelopes = [credit(f"r{i}", f"rec-{i}", "25") for i in range(len(reasons))]
    for env, reason in zip(envelopes, reasons, strict=True):
        await bury(broker, env, reason)
    return envelopes


def assert_as_published(message: aio_pika.abc.AbstractIncomingMessage, env: Envelope) -> None:
    """Body, id, type and headers as ingest published them; nothing dead-lettering added."""
    assert message.body == env.body
    assert message.message_id == env.message_id
    assert message.content_type == env.content_type
    # The quorum queue stamps its own delivery count on every delivery (0: the first).
    headers = dict(message.headers)
    assert headers.pop("x-delivery-count", 0) == 0
    assert headers == env.amqp_headers()


async def ids_on(queue: str, count: int) -> list[str | None]:
    return [m.message_id for m in await take(queue, count)]


async def cli(config: RunConfig, *args: str) -> tuple[int, str, str]:
    """The installed console script as a real process: exit code, stdout, stderr."""
    return await run_paysync(config, *args, timeout=30)


def test_replay_headers_keep_the_envelope_and_drop_what_dead_lettering_added() -> None:
    env = envelope(b"{}")
    dead = env.amqp_headers() | {
        H_ERROR: MALFORMED,
        H_DEAD_AT: "2026-01-01T00:00:00+00:00",
        "x-delivery-count": 4,
        "x-death": [{"count": 1, "reason": "delivery_limit"}],
        "x-first-death-reason": "delivery_limit",
        "x-first-death-queue": "paysync.inbound",
        "x-first-death-exchange": "paysync.inbound",
        "x-last-death-reason": "delivery_limit",
    }
    assert replay_headers(dead) == env.amqp_headers()


async def test_list_shows_every_dead_letter_and_leaves_them_all_in_order(
    config: RunConfig, names: BrokerNames, broker: Broker
) -> None:
    envelopes = await bury_all(broker, MALFORMED, UNKNOWN, MALFORMED)
    code, out, err = await cli(config, "dead", "list", "--json")
    assert code == 0, err
    listed = orjson.loads(out)
    assert [d["message_id"] for d in listed] == [e.message_id for e in envelopes]
    assert [d["reason"] for d in listed] == [MALFORMED, UNKNOWN, MALFORMED]
    first = listed[0]
    assert (first["provider"], first["account"], first["kind"]) == ("ccpayment", "shop", "callback")
    assert first["body_bytes"] == len(envelopes[0].body)
    assert datetime.fromisoformat(first["dead_at"]).tzinfo is not None
    assert '"dead_letters_listed"' in err, "logs belong on stderr"

    code, out, err = await cli(config, "dead", "list")
    assert code == 0, err
    assert all(e.message_id in out for e in envelopes)
    assert UNKNOWN in out
    assert "3 dead letters" in out

    # A limit shows fewer, but the whole queue is held and given back: its order survives.
    short = await list_dead(broker, limit=2)
    assert [d.message_id for d in short.letters] == [e.message_id for e in envelopes[:2]]
    assert short.hidden == 1

    assert await ids_on(names.topology.dead_queue, 3) == [e.message_id for e in envelopes]
    assert await depth(names.topology.inbound_queue) == 0


async def test_replay_by_id_moves_exactly_that_one_back_as_it_was_published(
    config: RunConfig, names: BrokerNames, broker: Broker
) -> None:
    a, b, c = await bury_all(broker, MALFORMED, MALFORMED, MALFORMED)
    report = await replay(broker, Selection(ids=frozenset({b.message_id})), confirm_timeout=5)
    assert report.ok
    assert [d.message_id for d in report.replayed] == [b.message_id]
    assert report.kept == 2
    [back] = await take(names.topology.inbound_queue, 1)
    assert_as_published(back, b)
    assert await depth(names.topology.inbound_queue) == 0
    assert await ids_on(names.topology.dead_queue, 2) == [a.message_id, c.message_id]


async def test_a_message_the_broker_dead_lettered_is_listed_and_replayed_without_x_death(
    config: RunConfig, names: BrokerNames, broker: Broker
) -> None:
    """No worker: a consumer that keeps giving the message back until the inbound queue's
    delivery limit dead-letters it, with RabbitMQ's own x-death headers."""
    env = credit("bx", "rec-bx", "25")
    await publish(broker, env)
    connection = await aio_pika.connect(AMQP_URL)
    async with connection:
        channel = await connection.channel()
        inbound = await channel.get_queue(names.topology.inbound_queue, ensure=False)

        async def dead_lettered() -> bool:
            message = await inbound.get(no_ack=False, fail=False)
            if message is not None:
                await message.nack(requeue=True)
            return await depth(names.topology.dead_queue) == 1

        await eventually(dead_lettered, what="dead-lettered by the delivery limit")
    [letter] = (await list_dead(broker)).letters
    assert letter.reason == "rabbitmq: delivery_limit"
    assert letter.dead_at is not None
    report = await replay(broker, Selection(reason="delivery_limit"), confirm_timeout=5)
    assert [d.message_id for d in report.replayed] == [env.message_id]
    [back] = await take(names.topology.inbound_queue, 1)
    assert_as_published(back, env)
    assert await depth(names.topology.dead_queue) == 0


async def test_replay_by_reason_takes_the_matching_ones_and_keeps_the_rest(
    config: RunConfig, names: BrokerNames, broker: Broker
) -> None:
    a, b, c = await bury_all(broker, MALFORMED, UNKNOWN, MALFORMED)
    report = await replay(broker, Selection(reason="MalformedMessage"), confirm_timeout=5)
    assert (len(report.replayed), report.kept) == (2, 1)
    back = await take(names.topology.inbound_queue, 2)
    for message, env in zip(back, (a, c), strict=True):
        assert_as_published(message, env)
    assert await ids_on(names.topology.dead_queue, 1) == [b.message_id]


async def test_replay_all_after_a_dry_run_that_moved_nothing(
    config: RunConfig, names: BrokerNames, broker: Broker
) -> None:
    envelopes = await bury_all(broker, MALFORMED, UNKNOWN, MALFORMED)
    code, out, err = await cli(config, "dead", "replay", "--all", "--dry-run")
    assert code == 0, err
    assert all(e.message_id in out for e in envelopes)
    assert "would replay 3, keep 0" in out
    assert await depth(names.topology.inbound_queue) == 0
    assert await depth(names.topology.dead_queue) == 3

    code, out, err = await cli(config, "dead", "replay", "--all")
    assert code == 0, err
    assert "replayed 3, kept 0" in out
    assert await depth(names.topology.dead_queue) == 0
    back = await take(names.topology.inbound_queue, 3)
    for message, env in zip(back, envelopes, strict=True):
        assert_as_published(message, env)


async def test_an_unknown_id_exits_1_and_moves_nothing(
    config: RunConfig, names: BrokerNames, broker: Broker
) -> None:
    a, b = await bury_all(broker, MALFORMED, MALFORMED)
    for ids in (["no-such-id"], [a.message_id, "no-such-id"]):
        args = [arg for i in ids for arg in ("--id", i)]
        code, out, err = await cli(config, "dead", "replay", *args)
        assert code == 1, out + err
        assert "not found on paysync.dead: no-such-id" in out
        assert "replayed 0, kept 2" in out
    assert await depth(names.topology.inbound_queue) == 0
    assert await ids_on(names.topology.dead_queue, 2) == [a.message_id, b.message_id]


async def test_a_publish_that_is_not_confirmed_leaves_the_message_dead(
    config: RunConfig, names: BrokerNames, broker: Broker
) -> None:
    """With paysync.inbound unbound the copy is unroutable: returned, not confirmed."""
    a, b = await bury_all(broker, MALFORMED, MALFORMED)
    t = names.topology
    connection = await aio_pika.connect(AMQP_URL)
    async with connection:
        channel = await connection.channel()
        inbound = await channel.get_queue(t.inbound_queue, ensure=False)
        await inbound.unbind(t.inbound_exchange, INBOUND_ROUTING_KEY)
    report = await replay(broker, Selection(everything=True), confirm_timeout=5)
    assert not report.ok
    assert [letter.message_id for letter, _ in report.failed] == [a.message_id, b.message_id]
    assert (report.replayed, report.kept) == ((), 2)
    assert await ids_on(t.dead_queue, 2) == [a.message_id, b.message_id]


class RecordingStore(Store):
    """The real store, noting which message each finished ``apply`` came from."""

    def __init__(self, pool: asyncpg.Pool) -> None:
        super().__init__(pool, MAPPINGS)
        self.applied: list[str] = []

    async def apply(self, envelope: Envelope, observations: list[Observation]) -> list[Outcome]:
        outcomes = await super().apply(envelope, observations)
        self.applied.append(envelope.message_id)
        return outcomes


@asynccontextmanager
async def consuming(
    settings: Settings, store: Store, registry: Mapping[str, Provider]
) -> AsyncIterator[Broker]:
    """One consumer in this event loop, knowing the providers of ``registry``."""
    stop = asyncio.Event()
    link = broker_of(settings, "test")
    link.start()
    await link.wait_connected(10)
    consumer = Consumer(link, store, registry, settings.worker, Metrics(), stop)
    task = asyncio.create_task(consumer.run())
    try:
        yield link
    finally:
        stop.set()
        await task
        await link.close()


async def test_a_message_of_an_unknown_provider_is_applied_once_after_replay(
    config: RunConfig, names: BrokerNames, pool: asyncpg.Pool, db: asyncpg.Connection
) -> None:
    """A rolling upgrade: ingest already accepts a provider the running worker does not
    know yet. Its callbacks (one, and the provider's retry of it) are dead-lettered as
    UnknownAccount; once the worker knows the provider, the operator replays them."""
    settings = config.settings
    first = credit("e2e", "rec-e2e", "25")
    retry = credit("e2e", "rec-e2e", "25")  # the provider resent it: a new message id
    older = {name: adapter for name, adapter in REGISTRY.items() if name != "ccpayment"}
    async with consuming(settings, Store(pool, MAPPINGS), older) as link:
        for env in (first, retry):
            await publish(link, env)

        async def both_dead() -> bool:
            return await depth(names.topology.dead_queue) == 2

        await eventually(both_dead, what="both callbacks dead-lettered")
    assert await db.fetchval("SELECT count(*) FROM payments") == 0

    store = RecordingStore(pool)
    async with consuming(settings, store, REGISTRY) as link:

        async def applied(message_id: str, times: int = 1) -> bool:
            return store.applied.count(message_id) == times

        code, out, err = await cli(config, "dead", "replay", "--id", first.message_id)
        assert (code, out.strip()) == (0, "replayed 1, kept 1"), err
        await eventually(lambda: applied(first.message_id), what="replayed callback applied")
        row = await one(db, "SELECT status, seq FROM payments")
        assert (row["status"], row["seq"]) == ("paid", 1)
        assert await db.fetchval("SELECT count(*) FROM transitions") == 1

        # The provider's retry of the same fact: only a duplicate receipt.
        report = await replay(link, Selection(reason="UnknownAccount"), confirm_timeout=5)
        assert [d.message_id for d in report.replayed] == [retry.message_id]
        await eventually(lambda: applied(retry.message_id), what="retry applied")

        # The very same message dead once more (at-least-once dead-lettering, or a replay
        # run twice) and replayed again: the inbox already holds that message, nothing new.
        await bury(link, first, UNKNOWN)
        report = await replay(link, Selection(ids=frozenset({first.message_id})), confirm_timeout=5)
        assert report.ok
        await eventually(lambda: applied(first.message_id, 2), what="second replay handled")

    receipts = await db.fetch("SELECT outcome, message_id FROM inbox ORDER BY id")
    assert [(r["outcome"], r["message_id"]) for r in receipts] == [
        ("applied", first.message_id),
        ("duplicate", retry.message_id),
    ]
    assert await db.fetchval("SELECT count(*) FROM transitions") == 1
    assert await db.fetchval("SELECT seq FROM payments") == 1
    assert await depth(names.topology.dead_queue) == 0
