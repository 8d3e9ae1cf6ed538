"""The naive per-event pipeline's consumer: ``python -m bench.naive``.

With the bare receiver (``bench/baseline.py``: aiohttp → confirmed publish to a quorum
queue) it is the whole-pipeline pair's baseline: what a straightforward service does per
event, written without paysync. Per message from the receiver's queue (``prefetch`` in
flight, as many pooled connections as paysync's worker): parse the JSON, one transaction
(a dedup row, the payment upsert), then, after the commit, publish the event persistent +
mandatory with a confirm to ``naive.events`` (a direct exchange bound to a quorum queue
the benchmark consumes), then ack. No fold, no outbox, no relay, no logging, no metrics.
Exits on SIGTERM/SIGINT or when its parent dies.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Awaitable, Callable, Mapping, Sequence
from pathlib import Path

import aio_pika
import asyncpg
import orjson
from aio_pika.abc import AbstractExchange, AbstractIncomingMessage

from bench.config import DEFAULT_AMQP_URL, baseline_name, naive_events
from bench.lifetime import wait_for_stop
from bench.loop import same_loop
from paysync.db import load_queries

QUERIES_PATH = Path(__file__).with_name("naive.sql")
PREFETCH = 32  # as paysync's worker.prefetch
POOL_SIZE = 10  # as paysync's database_pool_size
ROUTING_KEY = "payment.paid"
PUBLISH_TIMEOUT_SECONDS = 5.0


def parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python -m bench.naive", description=__doc__)
    parser.add_argument("--prefix", required=True)
    parser.add_argument("--amqp-url", default=DEFAULT_AMQP_URL)
    parser.add_argument("--database-url", required=True)
    return parser.parse_args(argv)


async def declare(channel: aio_pika.abc.AbstractChannel, prefix: str) -> AbstractExchange:
    """The events exchange and its quorum queue (also what the benchmark consumes)."""
    name = naive_events(prefix)
    exchange = await channel.declare_exchange(name, aio_pika.ExchangeType.DIRECT, durable=True)
    queue = await channel.declare_queue(name, durable=True, arguments={"x-queue-type": "quorum"})
    await queue.bind(exchange, routing_key=ROUTING_KEY)
    return exchange


def handler(
    pool: asyncpg.Pool, queries: Mapping[str, str], events: AbstractExchange
) -> Callable[[AbstractIncomingMessage], Awaitable[None]]:
    async def handle(message: AbstractIncomingMessage) -> None:
        doc = orjson.loads(message.body)
        ref = doc["extend"]["merchant_order_id"]
        async with pool.acquire() as conn, conn.transaction():
            record = doc["record_id"]
            fresh = await conn.fetchval(queries["insert_inbox"], record, ref, message.body)
            if fresh:
                await conn.execute(queries["upsert_payment"], ref, doc["paid_amount"])
        if fresh:
            event = orjson.dumps({"merchant_ref": ref, "status": "paid"})
            await events.publish(
                aio_pika.Message(event, delivery_mode=aio_pika.DeliveryMode.PERSISTENT),
                routing_key=ROUTING_KEY,
                mandatory=True,
                timeout=PUBLISH_TIMEOUT_SECONDS,
            )
        await message.ack()

    return handle


async def serve(args: argparse.Namespace) -> None:
    queries = load_queries(QUERIES_PATH)
    pool = await asyncpg.create_pool(args.database_url, min_size=POOL_SIZE, max_size=POOL_SIZE)
    try:
        async with pool.acquire() as conn:
            await conn.execute(queries["create"])
        connection = await aio_pika.connect_robust(args.amqp_url)
        async with connection:
            publisher = await connection.channel(publisher_confirms=True, on_return_raises=True)
            events = await declare(publisher, args.prefix)
            consumer = await connection.channel()
            await consumer.set_qos(prefetch_count=PREFETCH)
            queue = await consumer.get_queue(baseline_name(args.prefix), ensure=True)
            await queue.consume(handler(pool, queries, events))
            await wait_for_stop()
    finally:
        await pool.close()


def main(argv: Sequence[str] | None = None) -> int:
    same_loop(serve(parse_args(argv)))
    return 0


if __name__ == "__main__":
    sys.exit(main())
