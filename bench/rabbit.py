"""The benchmark's own broker names: purge between runs, delete at the end, server version."""

from __future__ import annotations

import contextlib

import aio_pika
import aiormq

from bench.config import exchanges, queues

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
