"""The benchmark's own broker names: purge between runs, delete at the end, server version;
the events queue, consumer counts and pre-filling ``paysync.inbound``."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Sequence

import aio_pika
import aiormq

from bench.config import events_queue, exchanges, queues
from paysync.amqp import INBOUND_ROUTING_KEY, Topology, declare, envelope_message
from schemas.envelope import Envelope

PUBLISH_IN_FLIGHT = 256
PUBLISH_TIMEOUT_SECONDS = 30.0

_MISSING = (aio_pika.exceptions.ChannelClosed, aiormq.exceptions.ChannelNotFoundEntity)


async def purge(amqp_url: str, prefix: str) -> int:
    """Empty every queue under ``prefix``; returns how many messages were dropped."""
    dropped = 0
    async with await aio_pika.connect(amqp_url) as connection:
        for name in queues(prefix):
            channel = await connection.channel()
            with contextlib.suppress(*_MISSING):
                queue = await channel.get_queue(name, ensure=True)
                result = await queue.purge()
                dropped += int(getattr(result, "message_count", 0) or 0)
    return dropped


async def declare_topology(amqp_url: str, prefix: str) -> None:
    """paysync's topology under ``prefix``, declared as ``paysync migrate`` does."""
    async with await aio_pika.connect(amqp_url) as connection:
        await declare(connection, Topology(prefix=prefix))


async def delete_all(amqp_url: str, prefix: str) -> None:
    """Delete every queue and exchange the benchmark servers declared under ``prefix``."""
    async with await aio_pika.connect(amqp_url) as connection:
        channel = await connection.channel()
        for name in queues(prefix):
            await channel.queue_delete(name)
        for name in exchanges(prefix):
            await channel.exchange_delete(name)


async def server_version(amqp_url: str) -> str | None:
    """RabbitMQ's version from the connection's server properties, if it says."""
    async with await aio_pika.connect(amqp_url) as connection:
        transport = connection.transport
        if transport is None:
            return None
        version = transport.connection.server_properties.get("version")
    if isinstance(version, bytes):
        return version.decode()
    return str(version) if version is not None else None


async def bind_events_queue(amqp_url: str, prefix: str) -> str:
    """A durable quorum queue bound to ``paysync.events`` (``payment.#``), as a fulfilment
    system would bind one: the relay's events are routed, not returned."""
    async with await aio_pika.connect(amqp_url) as connection:
        topology = Topology(prefix=prefix)
        channel = await connection.channel()
        name = events_queue(prefix)
        queue = await channel.declare_queue(
            name, durable=True, arguments={"x-queue-type": "quorum"}
        )
        await queue.bind(topology.events_exchange, routing_key="payment.#")
    return name


async def consumer_count(amqp_url: str, queue_name: str) -> int:
    async with await aio_pika.connect(amqp_url) as connection:
        channel = await connection.channel()
        queue = await channel.declare_queue(queue_name, passive=True)
        result = queue.declaration_result
        return int(getattr(result, "consumer_count", 0) or 0)


async def publish_envelopes(amqp_url: str, prefix: str, envelopes: Sequence[Envelope]) -> None:
    """Publish onto ``paysync.inbound`` exactly as ``paysync.amqp.publish_envelope`` does
    (same headers, persistent + mandatory, confirmed), many in flight."""
    topology = Topology(prefix=prefix)
    slots = asyncio.Semaphore(PUBLISH_IN_FLIGHT)
    async with await aio_pika.connect(amqp_url) as connection:
        channel = await connection.channel(publisher_confirms=True, on_return_raises=True)
        exchange = await channel.get_exchange(topology.inbound_exchange, ensure=False)

        async def one(envelope: Envelope) -> None:
            message = envelope_message(envelope)
            async with slots:
                confirm = await exchange.publish(
                    message,
                    INBOUND_ROUTING_KEY,
                    mandatory=True,
                    timeout=PUBLISH_TIMEOUT_SECONDS,
                )
            if not isinstance(confirm, aiormq.spec.Basic.Ack):
                raise RuntimeError(f"pre-fill publish not confirmed: {confirm!r}")

        await asyncio.gather(*(one(e) for e in envelopes))
