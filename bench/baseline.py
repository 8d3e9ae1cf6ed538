"""The baseline receiver: the least an HTTP-to-RabbitMQ ingest can do and still be safe.

A bare aiohttp handler in the style of ``ingest/app.py``: read the body, publish it
persistent + mandatory on a confirming channel to a direct exchange bound to a quorum
queue, answer ``200 success`` once the broker acked. No signature check, no envelope
headers, no logging, no metrics: what paysync adds on top of this is what the pair measures.
"""

from __future__ import annotations

import asyncio

import aio_pika
import aiormq
from aio_pika.abc import AbstractExchange, AbstractRobustConnection
from aiohttp import web

from bench.config import baseline_name

ROUTING_KEY = "inbound"
PUBLISH_TIMEOUT_SECONDS = 5.0
MAX_BODY_BYTES = 64 * 1024  # as paysync's default ingest.max_body_bytes

PUBLISH_ERRORS: tuple[type[BaseException], ...] = (
    TimeoutError,
    ConnectionError,
    OSError,
    RuntimeError,
    aio_pika.exceptions.AMQPError,
    aiormq.exceptions.AMQPError,
)

EXCHANGE = web.AppKey("exchange", AbstractExchange)


async def connect(amqp_url: str, prefix: str) -> tuple[AbstractRobustConnection, AbstractExchange]:
    """Connect, open a confirming channel and declare the exchange and its quorum queue."""
    connection = await aio_pika.connect_robust(amqp_url)
    channel = await connection.channel(publisher_confirms=True, on_return_raises=True)
    name = baseline_name(prefix)
    exchange = await channel.declare_exchange(name, aio_pika.ExchangeType.DIRECT, durable=True)
    queue = await channel.declare_queue(name, durable=True, arguments={"x-queue-type": "quorum"})
    await queue.bind(exchange, routing_key=ROUTING_KEY)
    return connection, exchange


def build_app(exchange: AbstractExchange) -> web.Application:
    app = web.Application(client_max_size=MAX_BODY_BYTES)
    app[EXCHANGE] = exchange
    app.router.add_post("/webhooks/{provider}/{account}", receive)
    app.router.add_get("/readyz", readyz)
    return app


async def receive(request: web.Request) -> web.Response:
    body = await request.read()
    message = aio_pika.Message(body, delivery_mode=aio_pika.DeliveryMode.PERSISTENT)
    try:
        async with asyncio.timeout(PUBLISH_TIMEOUT_SECONDS):
            confirm = await request.app[EXCHANGE].publish(message, ROUTING_KEY, mandatory=True)
    except PUBLISH_ERRORS:
        return web.json_response({"error": "broker_unavailable"}, status=503)
    if not isinstance(confirm, aiormq.spec.Basic.Ack):
        return web.json_response({"error": "broker_unavailable"}, status=503)
    return web.Response(status=200, body=b"success", content_type="text/plain")


async def readyz(_request: web.Request) -> web.Response:
    return web.json_response({"status": "ready"})
