"""examples/fulfilment_consumer.py end to end, against `paysync all`: it dedups on event_id,
detects a seq gap and gets the missed event by replay, and after its queue was deleted
and recreated it gets every event published meanwhile back by replay, with none
processed twice."""

from __future__ import annotations

import asyncio
import os
import sqlite3
import sys
from collections import Counter
from pathlib import Path

import aio_pika
import asyncpg
import orjson
import pytest

from paysync.connections import broker_of
from tests.integration.test_worker import credit, publish
from tests.support.config import API_TABLE, TOKEN_ENV, RunConfig, with_tokens, write_config
from tests.support.process import assert_no_secret_in, run_command, running
from tests.support.services import AMQP_URL, BrokerNames
from tests.support.waiting import eventually

pytestmark = [pytest.mark.e2e, pytest.mark.timeout(120)]

EXAMPLE = Path(__file__).parents[2] / "examples" / "fulfilment_consumer.py"


@pytest.fixture
def api_config(tmp_path: Path, db_url: str, names: BrokerNames) -> RunConfig:
    return with_tokens(
        write_config(tmp_path, database_url=db_url, prefix=names.prefix, extra=API_TABLE)
    )


class Consumer:
    """The example as a child process, as a downstream team would run it."""

    def __init__(self, config: RunConfig, names: BrokerNames, state: Path) -> None:
        self.config = config
        self.queue = f"{names.prefix}consumer.fulfilment"
        self.exchange = names.topology.events_exchange
        self.state = state
        self.logs: list[Path] = []
        self.proc: asyncio.subprocess.Process | None = None
        if self.queue not in names.extra_queues:
            names.extra_queues.append(self.queue)

    async def start(self) -> None:
        log = self.state.with_name(f"consumer-{len(self.logs)}.log")
        self.logs.append(log)
        env = {**os.environ, "FULFILMENT_API_TOKEN": self.config.env[TOKEN_ENV]}
        with log.open("wb") as out:
            self.proc = await asyncio.create_subprocess_exec(
                sys.executable,
                str(EXAMPLE),
                "--amqp-url",
                AMQP_URL,
                "--exchange",
                self.exchange,
                "--queue",
                self.queue,
                "--api-url",
                self.config.url,
                "--token-env",
                "FULFILMENT_API_TOKEN",
                "--state",
                str(self.state),
                env=env,
                stdout=out,
                stderr=asyncio.subprocess.STDOUT,
            )
        await eventually(lambda: self._logged("consumer_started"), what="the consumer started")

    async def _logged(self, event: str) -> bool:
        assert self.proc is not None
        if self.proc.returncode is not None:
            raise AssertionError(f"the consumer exited:\n{self.logs[-1].read_text()}")
        return any(line.get("event") == event for line in self.lines())

    def lines(self) -> list[dict[str, object]]:
        found = []
        for log in self.logs:
            for raw in log.read_text(errors="replace").splitlines():
                if raw.startswith("{"):
                    found.append(orjson.loads(raw))
        return found

    async def stop(self) -> None:
        assert self.proc is not None
        self.proc.terminate()
        assert await asyncio.wait_for(self.proc.wait(), 20) == 0, self.logs[-1].read_text()

    def kill(self) -> None:
        """After a failed test: never leave the child running."""
        if self.proc is not None and self.proc.returncode is None:
            self.proc.kill()

    def seen(self) -> dict[str, str]:
        """event_id -> outcome (acted | stale), from the consumer's own state."""
        with sqlite3.connect(self.state) as db:
            return dict(db.execute("SELECT event_id, outcome FROM events").fetchall())


async def published_ids(db: asyncpg.Connection) -> set[str] | None:
    rows = await db.fetch("SELECT event_id::text, published_at FROM outbox")
    if any(r["published_at"] is None for r in rows):
        return None
    return {r["event_id"] for r in rows}


async def gap_event_published(db: asyncpg.Connection) -> bool:
    published: bool = await db.fetchval(
        "SELECT published_at IS NOT NULL FROM outbox o JOIN payments p ON p.id = o.payment_id"
        " WHERE p.merchant_ref = 'gap-1' AND o.seq = 1"
    )
    return bool(published)


async def simulate(config: RunConfig, count: int) -> None:
    code, out = await run_command(config, "simulate", "ccpayment", "--payments", str(count))
    assert code == 0, out


async def test_the_consumer_gets_back_what_it_missed_and_processes_nothing_twice(
    api_config: RunConfig,
    db: asyncpg.Connection,
    names: BrokerNames,
    tmp_path: Path,
    request: pytest.FixtureRequest,
) -> None:
    config = api_config
    consumer = Consumer(config, names, tmp_path / "fulfilment.sqlite3")
    request.addfinalizer(consumer.kill)
    async with running(config, "all") as paysync:
        await consumer.start()
        await simulate(config, 2)  # two payments: underpaid, paid each

        async def caught_up() -> bool:
            ids = await published_ids(db)
            return ids is not None and set(consumer.seen()) == ids and len(ids) >= 4

        await eventually(caught_up, what="the consumer has every event")

        # A gap: the queue misses a payment's first event, then sees its second.
        connection = await aio_pika.connect(AMQP_URL)
        async with connection:
            channel = await connection.channel()
            queue = await channel.get_queue(consumer.queue, ensure=False)
            await queue.unbind(consumer.exchange, "payment.#")
            link = broker_of(config.settings, "test")
            link.start()
            await link.wait_connected(10)
            await publish(link, credit("gap-1", "gap-1-a", "10"))
            await eventually(lambda: gap_event_published(db), what="the first event published")
            await queue.bind(consumer.exchange, "payment.#")
            await publish(link, credit("gap-1", "gap-1-b", "15"))
            await link.close()
        await eventually(caught_up, what="the gap filled by replay")
        assert any(line.get("event") == "gap_detected" for line in consumer.lines())

        def gap_outcomes() -> list[tuple[int, str]]:
            return sorted(
                (int(str(line["seq"])), str(line["event"]))
                for line in consumer.lines()
                if str(line.get("payment", "")).endswith("/gap-1")
            )

        # The replay brings the missed one (stale now: acted on no more) and, when the relay
        # had already marked it published by then, a copy of the one the consumer had,
        # dropped as a duplicate. Either way each event is acted on at most once.
        async def missed_one_seen() -> bool:
            return (1, "event_stale") in gap_outcomes()

        await eventually(missed_one_seen, what="the missed event replayed")
        assert gap_outcomes() in (
            [(1, "event_stale"), (2, "event_acted")],
            [(1, "event_stale"), (2, "event_acted"), (2, "event_duplicate")],
        )

        # The queue is deleted while the consumer is down; events flow on meanwhile.
        await consumer.stop()
        connection = await aio_pika.connect(AMQP_URL)
        async with connection:
            await (await connection.channel()).queue_delete(consumer.queue)
        before = await published_ids(db)
        await simulate(config, 2)

        async def four_more() -> bool:
            ids = await published_ids(db)
            return ids is not None and before is not None and len(ids) == len(before) + 4

        await eventually(four_more, what="the missed events published")
        await consumer.start()  # recreates its queue, asks for a replay since its last event
        await eventually(caught_up, what="every missed event replayed")
        await consumer.stop()
    assert_no_secret_in(paysync.log, config)

    lines = consumer.lines()
    firsts = Counter(
        line["event_id"] for line in lines if line["event"] in ("event_acted", "event_stale")
    )
    assert firsts
    assert max(firsts.values()) == 1, "an event processed twice"
    assert set(firsts) == await published_ids(db)
    # Replays overlap what it had: those copies were dropped as duplicates.
    assert any(line["event"] == "event_duplicate" for line in lines)
    assert any(line["event"] == "replay_received" for line in lines)
