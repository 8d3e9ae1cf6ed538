"""RabbitMQ: the topology of design §3 and a broker link with confirmed publishing.

Topology (every name takes the configured prefix)::

    paysync.inbound (direct) ──inbound──▶ paysync.inbound (quorum, x-delivery-limit)
                                              │ dead-letters (at-least-once)
    paysync.dlx (fanout) ◀────────────────────┘──▶ paysync.dead (quorum)
    paysync.events (topic)  payment.<status>; consumers bind their own queues

Declaring is idempotent: every role declares at start-up, ``paysync migrate`` too.
"""

from __future__ import annotations

import asyncio
import contextlib
from dataclasses import dataclass
from typing import Any

import aio_pika
import aiormq
from aio_pika.abc import (
    AbstractChannel,
    AbstractExchange,
    AbstractQueue,
    AbstractRobustConnection,
)

from paysync.errors import BrokerUnavailable, PaysyncError
from paysync.logging import get_logger
from schemas.envelope import Envelope

INBOUND_ROUTING_KEY = "inbound"

log = get_logger(__name__)


@dataclass(frozen=True, slots=True)
class Topology:
    prefix: str = ""
    delivery_limit: int = 5

    @property
    def inbound_exchange(self) -> str:
        return f"{self.prefix}paysync.inbound"

    @property
    def inbound_queue(self) -> str:
        return f"{self.prefix}paysync.inbound"

    @property
    def dead_exchange(self) -> str:
        return f"{self.prefix}paysync.dlx"

    @property
    def dead_queue(self) -> str:
        return f"{self.prefix}paysync.dead"

    @property
    def events_exchange(self) -> str:
        return f"{self.prefix}paysync.events"

    def inbound_arguments(self) -> dict[str, Any]:
        return {
            "x-queue-type": "quorum",
            "x-delivery-limit": self.delivery_limit,
            "x-dead-letter-exchange": self.dead_exchange,
            # at-least-once dead-lettering needs reject-publish overflow.
            "x-dead-letter-strategy": "at-least-once",
            "x-overflow": "reject-publish",
        }


class TopologyMismatch(PaysyncError):
    """RabbitMQ refused to declare the topology as configured (permanent until fixed)."""


@dataclass(frozen=True, slots=True)
class Declared:
    inbound_exchange: AbstractExchange
    inbound_queue: AbstractQueue
    dead_exchange: AbstractExchange
    dead_queue: AbstractQueue
    events_exchange: AbstractExchange


async def declare(channel: AbstractChannel, topology: Topology) -> Declared:
    inbound_x = await channel.declare_exchange(
        topology.inbound_exchange, aio_pika.ExchangeType.DIRECT, durable=True
    )
    dead_x = await channel.declare_exchange(
        topology.dead_exchange, aio_pika.ExchangeType.FANOUT, durable=True
    )
    events_x = await channel.declare_exchange(
        topology.events_exchange, aio_pika.ExchangeType.TOPIC, durable=True
    )
    try:
        dead_q = await channel.declare_queue(
            topology.dead_queue, durable=True, arguments={"x-queue-type": "quorum"}
        )
        inbound_q = await channel.declare_queue(
            topology.inbound_queue, durable=True, arguments=topology.inbound_arguments()
        )
    except aiormq.exceptions.ChannelPreconditionFailed as exc:
        raise TopologyMismatch(
            f"a queue exists with other arguments than paysync declares ({exc}); queue "
            "arguments such as x-delivery-limit are fixed when a queue is first declared: "
            "restore broker.delivery_limit, or drain and delete the queue, or use a policy"
        ) from None
    await dead_q.bind(dead_x, routing_key="")
    await inbound_q.bind(inbound_x, routing_key=INBOUND_ROUTING_KEY)
    return Declared(inbound_x, inbound_q, dead_x, dead_q, events_x)


# What a publish can fail with when the broker is down, slow or refuses the message.
PUBLISH_ERRORS: tuple[type[BaseException], ...] = (
    asyncio.TimeoutError,
    ConnectionError,
    OSError,
    RuntimeError,
    aio_pika.exceptions.AMQPError,
    aiormq.exceptions.AMQPError,
)


class Broker:
    """One robust connection with a confirming publisher channel.

    ``start()`` returns at once; the link connects in the background and keeps
    reconnecting, so a role can start (and report not-ready) while RabbitMQ is down.
    """

    def __init__(self, url: str, topology: Topology, *, reconnect_seconds: float) -> None:
        self._url = url
        self.topology = topology
        self._reconnect_seconds = reconnect_seconds
        self._connection: AbstractRobustConnection | None = None
        self._channel: AbstractChannel | None = None
        self._events: AbstractExchange | None = None
        self._declared: Declared | None = None
        self._exchanges: dict[str, AbstractExchange] = {}
        self._task: asyncio.Task[None] | None = None
        self._up = asyncio.Event()

    def start(self) -> None:
        self._task = asyncio.create_task(self._connect(), name="broker-connect")

    async def _connect(self) -> None:
        attempt = 0
        while True:
            try:
                self._connection = await aio_pika.connect_robust(
                    self._url, reconnect_interval=self._reconnect_seconds, fail_fast=True
                )
                break
            except PUBLISH_ERRORS as exc:
                attempt += 1
                if attempt == 1 or attempt % 30 == 0:
                    log.warning("broker_connect_failed", error=type(exc).__name__, attempt=attempt)
                await asyncio.sleep(self._reconnect_seconds)
        self._channel = await self._connection.channel(
            publisher_confirms=True, on_return_raises=True
        )
        try:
            self._declared = await declare(self._channel, self.topology)
        except TopologyMismatch as exc:
            log.error("broker_topology_refused", error=str(exc))
            raise
        self._exchanges = {
            x.name: x
            for x in (
                self._declared.inbound_exchange,
                self._declared.dead_exchange,
                self._declared.events_exchange,
            )
        }
        # Events go through their own channel: an unroutable event (no consumer bound yet)
        # comes back as a return, which is reported, not raised, so the relay moves on.
        events_channel = await self._connection.channel(publisher_confirms=True)
        self._events = await events_channel.get_exchange(self.topology.events_exchange)
        self._up.set()
        log.info("broker_connected")

    async def wait_connected(self, timeout: float | None = None) -> Declared:
        """Wait until connected and declared; re-raise why the link gave up, if it did."""
        assert self._task is not None, "start() first"
        async with asyncio.timeout(timeout):
            up = asyncio.ensure_future(self._up.wait())
            try:
                await asyncio.wait({up, self._task}, return_when=asyncio.FIRST_COMPLETED)
            finally:
                up.cancel()
        if self._task.done() and not self._task.cancelled():
            failure = self._task.exception()
            if failure is not None:
                raise failure
        assert self._declared is not None
        return self._declared

    @property
    def connection(self) -> AbstractRobustConnection:
        if self._connection is None or not self._up.is_set():
            raise BrokerUnavailable("broker not connected yet")
        return self._connection

    @property
    def ready(self) -> bool:
        conn = self._connection
        return (
            self._up.is_set()
            and conn is not None
            and conn.connected.is_set()
            and self._channel is not None
            and not self._channel.is_closed
        )

    async def publish(
        self,
        exchange: str,
        message: aio_pika.Message,
        routing_key: str,
        *,
        timeout: float,
    ) -> None:
        """Publish persistent + mandatory and wait for the broker's confirm.

        Raises ``BrokerUnavailable`` when not connected, on nack or return (unroutable),
        and when no confirm arrives within ``timeout`` seconds.
        """
        if not self.ready or self._declared is None:
            raise BrokerUnavailable("broker not connected")
        confirm = await _confirmed(self._exchange(exchange), message, routing_key, timeout)
        if not isinstance(confirm, aiormq.spec.Basic.Ack):
            raise BrokerUnavailable(f"publish not confirmed: {type(confirm).__name__}")

    async def publish_event(
        self, message: aio_pika.Message, routing_key: str, *, timeout: float
    ) -> bool:
        """Publish to ``paysync.events`` with a confirm; False when no queue was bound."""
        if not self.ready or self._events is None:
            raise BrokerUnavailable("broker not connected")
        confirm = await _confirmed(self._events, message, routing_key, timeout)
        if isinstance(confirm, aiormq.abc.DeliveredMessage):
            return False
        if not isinstance(confirm, aiormq.spec.Basic.Ack):
            raise BrokerUnavailable(f"publish not confirmed: {type(confirm).__name__}")
        return True

    def _exchange(self, name: str) -> AbstractExchange:
        try:
            return self._exchanges[name]
        except KeyError:
            raise ValueError(f"exchange {name} is not part of the topology") from None

    async def close(self) -> None:
        if self._task is not None and not self._task.done():
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
        if self._connection is not None:
            with contextlib.suppress(*PUBLISH_ERRORS):
                await self._connection.close()
        self._up.clear()


async def _confirmed(
    exchange: AbstractExchange, message: aio_pika.Message, routing_key: str, timeout: float
) -> object:
    """Publish mandatory and return the broker's answer, all within ``timeout`` seconds
    (a reconnecting channel included); any failure is ``BrokerUnavailable``."""
    try:
        async with asyncio.timeout(timeout):
            return await exchange.publish(message, routing_key, mandatory=True)
    except PUBLISH_ERRORS as exc:
        raise BrokerUnavailable(f"publish not confirmed: {type(exc).__name__}") from exc


def envelope_message(envelope: Envelope) -> aio_pika.Message:
    """The AMQP message of an inbound envelope: the raw body, ``x-paysync-*`` headers,
    persistent."""
    return aio_pika.Message(
        envelope.body,
        headers=envelope.amqp_headers(),
        message_id=envelope.message_id,
        content_type=envelope.content_type,
        timestamp=envelope.received_at,
        delivery_mode=aio_pika.DeliveryMode.PERSISTENT,
    )


async def publish_envelope(broker: Broker, envelope: Envelope, timeout: float) -> None:
    """An inbound envelope onto ``paysync.inbound``: persistent + mandatory, waiting for the
    broker's confirm (design §6 rule 1). Raises ``BrokerUnavailable``."""
    message = envelope_message(envelope)
    await broker.publish(
        broker.topology.inbound_exchange, message, INBOUND_ROUTING_KEY, timeout=timeout
    )
