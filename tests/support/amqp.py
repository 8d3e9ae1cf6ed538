"""Reading messages from a test's own queues."""

from __future__ import annotations

import aio_pika
from aio_pika.abc import AbstractIncomingMessage

from tests.support.services import AMQP_URL


async def take(
    queue_name: str, count: int, *, timeout: float = 15.0
) -> list[AbstractIncomingMessage]:
    """Consume exactly ``count`` messages (acking them), failing after ``timeout`` seconds."""
    messages: list[AbstractIncomingMessage] = []
    connection = await aio_pika.connect(AMQP_URL)
    async with connection:
        channel = await connection.channel()
        queue = await channel.get_queue(queue_name, ensure=False)
        async with queue.iterator(timeout=timeout) as iterator:
            async for message in iterator:
                await message.ack()
                messages.append(message)
                if len(messages) == count:
                    break
    return messages


async def depth(queue_name: str) -> int:
    """Messages ready in a queue (a passive declare; unacked ones are not counted)."""
    connection = await aio_pika.connect(AMQP_URL)
    async with connection:
        channel = await connection.channel()
        queue = await channel.declare_queue(queue_name, passive=True)
        count = queue.declaration_result.message_count
        assert count is not None
        return count
