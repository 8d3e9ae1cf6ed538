"""RabbitMQ: the topology of design §3, declared by ``paysync migrate`` and checked
passively by every long-running role.

Topology (every name takes the configured prefix)::

    paysync.inbound (direct) ──inbound──▶ paysync.inbound (quorum, x-delivery-limit)
                                              │ dead-letters (at-least-once)
    paysync.dlx (fanout) ◀────────────────────┘──▶ paysync.dead (quorum, x-delivery-limit
                                                    DEAD_DELIVERY_LIMIT: never reached)
    paysync.events (topic)  payment.<status>; consumers bind their own queues

Only ``paysync migrate`` declares (so the roles' RabbitMQ users need no configure
permission); the roles check passively that every name exists and refuse to start, with a
line saying to run the migration, when one does not.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import aio_pika
import aiormq
from aio_pika.abc import AbstractChannel, AbstractConnection

from paysync.errors import BrokerUnavailable, TopologyMismatch, TopologyMissing
from paysync.logging import get_logger
from schemas.envelope import Envelope

INBOUND_ROUTING_KEY = "inbound"

# paysync.dead must never drop a dead letter. A quorum queue without a delivery limit has
# none on RabbitMQ 3.x but gets 20 on 4.x, and every `paysync dead list` returns each
# message once; 3.x refuses -1 ("unlimited" on 4.x), so the limit is set, explicitly, far
# beyond reach (a scan a second for thirty years).
DEAD_DELIVERY_LIMIT = 1_000_000_000

log = get_logger(__name__)

# What an AMQP call can fail with when the broker is down, slow or refuses it.
PUBLISH_ERRORS: tuple[type[BaseException], ...] = (
    asyncio.TimeoutError,
    ConnectionError,
    OSError,
    RuntimeError,
    aio_pika.exceptions.AMQPError,
    aiormq.exceptions.AMQPError,
)


@contextlib.contextmanager
def broker_errors(what: str) -> Iterator[None]:
    """Every way an AMQP call fails, as ``BrokerUnavailable``: the ``PUBLISH_ERRORS``, and a
    cancellation that leaks out of aiormq when it finds a connection stuck (it cancels the
    reader, and whatever awaited that connection gets the cancellation). Found by
    ``make faults-cluster``: a paused node cancelled the relay and the broker supervisor.
    The task's own cancellation (shutdown) still propagates."""
    try:
        yield
    except PUBLISH_ERRORS as exc:
        raise BrokerUnavailable(f"{what}: {type(exc).__name__}") from exc
    except asyncio.CancelledError:
        task = asyncio.current_task()
        if task is not None and task.cancelling():
            raise
        raise BrokerUnavailable(f"{what}: the connection was lost") from None


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

    def exchanges(self) -> dict[str, aio_pika.ExchangeType]:
        return {
            self.inbound_exchange: aio_pika.ExchangeType.DIRECT,
            self.dead_exchange: aio_pika.ExchangeType.FANOUT,
            self.events_exchange: aio_pika.ExchangeType.TOPIC,
        }

    def queues(self) -> dict[str, dict[str, Any]]:
        """Each queue with its arguments, the dead-letter queue first (the inbound queue
        names its exchange)."""
        return {
            self.dead_queue: {"x-queue-type": "quorum", "x-delivery-limit": DEAD_DELIVERY_LIMIT},
            self.inbound_queue: self.inbound_arguments(),
        }

    def inbound_arguments(self) -> dict[str, Any]:
        return {
            "x-queue-type": "quorum",
            "x-delivery-limit": self.delivery_limit,
            "x-dead-letter-exchange": self.dead_exchange,
            # at-least-once dead-lettering needs reject-publish overflow.
            "x-dead-letter-strategy": "at-least-once",
            "x-overflow": "reject-publish",
        }


async def declare(connection: AbstractConnection, topology: Topology) -> None:
    """Declare every exchange, queue and binding (``paysync migrate``; idempotent).

    A queue that exists with other arguments is never deleted here (a quorum queue cannot
    be deleted only-if-empty, so nothing could prove it safe): the operator is told what
    to do. The one exception is ``paysync.dead`` declared by an older paysync without its
    delivery limit: it is kept, with a warning saying how to add the limit.
    """
    channel = await connection.channel()
    try:
        for name, kind in topology.exchanges().items():
            await channel.declare_exchange(name, kind, durable=True)
    finally:
        await close_quietly(channel)
    for name, arguments in topology.queues().items():
        refused = await _declare_queue(connection, name, arguments)
        if refused is None:
            continue
        if name == topology.dead_queue:
            log.warning(
                "dead_queue_without_delivery_limit",
                queue=name,
                advice="on RabbitMQ 4.x add a policy with delivery-limit, or replay its "
                "messages, delete it and run paysync migrate again (docs/operations.md)",
            )
            continue
        raise TopologyMismatch(
            f"queue {name} exists with other arguments than paysync declares ({refused}); "
            "queue arguments such as x-delivery-limit are fixed when a queue is first "
            "declared: restore broker.delivery_limit, or drain and delete the queue, or "
            "use a policy"
        )
    channel = await connection.channel()
    try:
        dead = await channel.get_queue(topology.dead_queue, ensure=False)
        await dead.bind(topology.dead_exchange, routing_key="")
        inbound = await channel.get_queue(topology.inbound_queue, ensure=False)
        await inbound.bind(topology.inbound_exchange, routing_key=INBOUND_ROUTING_KEY)
    finally:
        await close_quietly(channel)


async def _declare_queue(
    connection: AbstractConnection, name: str, arguments: dict[str, Any]
) -> str | None:
    """Declare one durable queue; why the broker refused, if it did."""
    channel = await connection.channel()
    try:
        await channel.declare_queue(name, durable=True, arguments=arguments)
    except aiormq.exceptions.ChannelPreconditionFailed as exc:
        return str(exc)
    finally:
        await close_quietly(channel)
    return None


async def check(connection: AbstractConnection, topology: Topology) -> None:
    """Passively check that every exchange and queue exists (needs no configure
    permission). Raises ``TopologyMissing`` naming the first one that does not."""
    names = [(name, True) for name in topology.exchanges()]
    names += [(name, False) for name in topology.queues()]
    for name, is_exchange in names:
        # A failed passive declare closes its channel: one channel per name.
        channel = await connection.channel()
        try:
            if is_exchange:
                await channel.declare_exchange(name, passive=True)
            else:
                await channel.declare_queue(name, passive=True)
        except aiormq.exceptions.ChannelNotFoundEntity:
            kind = "exchange" if is_exchange else "queue"
            raise TopologyMissing(
                f"RabbitMQ has no {kind} {name}: run `paysync migrate` (it declares the "
                "topology) with the same broker.name_prefix"
            ) from None
        finally:
            await close_quietly(channel)


async def close_quietly(channel: AbstractChannel) -> None:
    """Close a channel if it is open; a broker failure on the way changes nothing."""
    with contextlib.suppress(BrokerUnavailable), broker_errors("close"):
        if not channel.is_closed:
            await channel.close()


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
