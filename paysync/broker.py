"""The link to RabbitMQ: one connection at a time, to any of the configured nodes, kept up
by a supervisor task, with a confirming publisher channel.

``start()`` returns at once. The supervisor connects to the first node that answers,
checks the topology passively, opens the publisher channels and then watches them; when
the connection (or one of its channels) is lost it moves on to the next node, backing off
with jitter after a full round of failed nodes. Every user of the link gets it afresh
after a loss: publishers through ``publish`` (``BrokerUnavailable`` while there is none),
the consumer through ``wait_up``/``connection``, opening its own channel on each new link.

Publisher confirms are watched too: after a publish that was not confirmed,
``confirms_ready`` is false until a later publish, or a probe (a mandatory publish that no
queue takes: the broker returns and confirms it), is confirmed again.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import Awaitable, Sequence
from dataclasses import dataclass
from typing import Protocol
from urllib.parse import urlsplit

import aio_pika
import aiormq
from aio_pika.abc import AbstractChannel, AbstractConnection, AbstractExchange
from yarl import URL

from paysync.amqp import (
    INBOUND_ROUTING_KEY,
    Topology,
    broker_errors,
    check,
    envelope_message,
)
from paysync.errors import BrokerUnavailable, TopologyMissing
from paysync.logging import get_logger
from paysync.retry import Backoff
from schemas.envelope import Envelope

log = get_logger(__name__)

# A link that dies sooner than this after it opened counts as a failed attempt (backoff),
# so a node that accepts and then drops connections is not hammered.
_STABLE_SECONDS = 5.0
_PROBE_ROUTING_KEY = "paysync.readiness-probe"
# After this many publishes in a row were refused (nacked or returned), the link is dropped
# and made afresh, on the next node. RabbitMQ 3.10 nacks every publish, for good, on a
# channel opened while a quorum queue was electing a new leader (found by
# `make faults-cluster`); a new connection publishes at once. A refusal that persists
# (a queue gone: the topology check on reconnecting says so) costs one reconnect per round.
_REFUSALS_BEFORE_RELINK = 3


@dataclass(slots=True)
class _Link:
    node: str
    connection: AbstractConnection
    channel: AbstractChannel  # publisher confirms; a return raises
    events_channel: AbstractChannel  # publisher confirms; a return is reported
    exchanges: dict[str, AbstractExchange]
    events: AbstractExchange
    probe: AbstractExchange
    lost: asyncio.Event

    @property
    def open(self) -> bool:
        return not (
            self.lost.is_set()
            or self.connection.is_closed
            or self.channel.is_closed
            or self.events_channel.is_closed
        )


def node_of(url: str) -> str:
    """``host:port`` of a broker URL: safe to log (no credentials)."""
    parts = urlsplit(url)
    return f"{parts.hostname}:{parts.port or (5671 if parts.scheme == 'amqps' else 5672)}"


class Publisher(Protocol):
    """What a publisher needs of the broker link: the topology's names and a confirmed
    publish. ``Broker`` is one; unit tests use a recording fake."""

    @property
    def topology(self) -> Topology: ...

    async def publish(
        self, exchange: str, message: aio_pika.Message, routing_key: str, *, timeout: float
    ) -> None:
        """Publish persistent + mandatory and wait for the confirm; ``BrokerUnavailable``
        when none came."""
        ...


class Broker:
    def __init__(
        self,
        urls: str | Sequence[str],
        topology: Topology,
        *,
        reconnect_seconds: float,
        reconnect_max_seconds: float = 10.0,
        heartbeat_seconds: int = 10,
        connect_timeout_seconds: float = 10.0,
        name: str = "paysync",
    ) -> None:
        self._urls = [urls] if isinstance(urls, str) else list(urls)
        if not self._urls:
            raise ValueError("a broker needs at least one URL")
        self.topology = topology
        self.name = name
        self._heartbeat = heartbeat_seconds
        self._connect_timeout = connect_timeout_seconds
        self._backoff = Backoff(initial=reconnect_seconds, maximum=reconnect_max_seconds)
        self._link: _Link | None = None
        self._up = asyncio.Event()
        self._task: asyncio.Task[None] | None = None
        self._next = 0  # index of the node to try first
        self._connected_once = False
        self._confirms_failing = False
        self._refusals = 0
        self._probe_lock = asyncio.Lock()

    # --- the supervisor ------------------------------------------------------------------

    def start(self) -> None:
        self._task = asyncio.create_task(self._supervise(), name="broker-link")

    @property
    def task(self) -> asyncio.Task[None]:
        assert self._task is not None, "start() first"
        return self._task

    async def _supervise(self) -> None:
        failed_rounds = 0
        while True:
            link = await self._connect_round()
            if link is None:
                failed_rounds += 1
                await asyncio.sleep(self._backoff.delay(failed_rounds))
                continue
            opened = time.monotonic()
            await self._serve(link)
            if time.monotonic() - opened < _STABLE_SECONDS:
                failed_rounds += 1
                await asyncio.sleep(self._backoff.delay(failed_rounds))
            else:
                failed_rounds = 0

    async def _connect_round(self) -> _Link | None:
        """Try every node once, starting after the last one used; None when none answered."""
        for i in range(len(self._urls)):
            index = (self._next + i) % len(self._urls)
            url = self._urls[index]
            try:
                with broker_errors("connect"):
                    link = await self._open(url)
            except TopologyMissing as exc:
                if not self._connected_once:
                    log.error("broker_topology_missing", node=node_of(url), error=str(exc))
                    raise
                log.error("broker_topology_missing", node=node_of(url), error=str(exc))
                continue
            except BrokerUnavailable as exc:
                cause = exc.__cause__ or exc
                log.warning("broker_connect_failed", node=node_of(url), error=_describe(cause))
                continue
            self._next = (index + 1) % len(self._urls)
            return link
        return None

    async def _open(self, url: str) -> _Link:
        query = URL(url).query
        target = (
            URL(url) if "heartbeat" in query else URL(url).update_query(heartbeat=self._heartbeat)
        )
        async with asyncio.timeout(self._connect_timeout):
            connection = await aio_pika.connect(
                target,
                timeout=self._connect_timeout,
                client_properties={"connection_name": self.name},
            )
        try:
            async with asyncio.timeout(self._connect_timeout):
                return await self._channels(node_of(url), connection)
        except BaseException:
            await _close_quietly(connection)
            raise

    async def _channels(self, node: str, connection: AbstractConnection) -> _Link:
        await check(connection, self.topology)
        channel = await connection.channel(publisher_confirms=True, on_return_raises=True)
        exchanges = {
            name: await channel.get_exchange(name, ensure=False)
            for name in self.topology.exchanges()
        }
        # Events go through their own channel: an unroutable event (no consumer bound yet)
        # comes back as a return, which is reported, not raised, so the relay moves on.
        events_channel = await connection.channel(publisher_confirms=True)
        lost = asyncio.Event()

        def on_close(*_: object) -> None:
            lost.set()
            self._up.clear()

        for closable in (connection, channel, events_channel):
            closable.close_callbacks.add(on_close)
        return _Link(
            node=node,
            connection=connection,
            channel=channel,
            events_channel=events_channel,
            exchanges=exchanges,
            events=await events_channel.get_exchange(self.topology.events_exchange, ensure=False),
            probe=await events_channel.get_exchange(self.topology.inbound_exchange, ensure=False),
            lost=lost,
        )

    async def _serve(self, link: _Link) -> None:
        self._link = link
        self._connected_once = True
        self._confirms_failing = False
        if not link.lost.is_set():
            self._up.set()
        log.info("broker_connected", node=link.node)
        try:
            await link.lost.wait()
        finally:
            self._up.clear()
            self._link = None
            await _close_quietly(link.connection)
        log.warning("broker_disconnected", node=link.node)

    # --- what the roles use --------------------------------------------------------------

    async def wait_connected(self, timeout: float | None = None) -> None:
        """Wait until a link is up; re-raise why the supervisor gave up, if it did."""
        task = self.task
        async with asyncio.timeout(timeout):
            up = asyncio.ensure_future(self._up.wait())
            try:
                await asyncio.wait({up, task}, return_when=asyncio.FIRST_COMPLETED)
            finally:
                up.cancel()
        if task.done() and not task.cancelled() and task.exception() is not None:
            raise task.exception()  # type: ignore[misc]

    async def wait_up(self, stop: asyncio.Event) -> bool:
        """Wait for a link or for ``stop``; True when a link is up and ``stop`` is not set
        (so ``while await broker.wait_up(stop)`` ends at shutdown)."""
        while not self.ready:
            waits = {asyncio.ensure_future(self._up.wait()), asyncio.ensure_future(stop.wait())}
            try:
                await asyncio.wait(waits, return_when=asyncio.FIRST_COMPLETED)
            finally:
                for waiting in waits:
                    waiting.cancel()
            if stop.is_set():
                return False
        return not stop.is_set()

    @property
    def connection(self) -> AbstractConnection:
        link = self._link
        if link is None or not link.open:
            raise BrokerUnavailable("broker not connected")
        return link.connection

    @property
    def node(self) -> str | None:
        """The node the link is connected to, if any."""
        return self._link.node if self._link is not None else None

    @property
    def ready(self) -> bool:
        link = self._link
        return self._up.is_set() and link is not None and link.open

    async def confirms_ready(self, timeout: float = 2.0) -> bool:
        """True while publishes are being confirmed. After one was not, a probe publish
        (returned and confirmed by the broker, stored nowhere) decides."""
        link = self._link
        if not self.ready or link is None:
            return False
        if not self._confirms_failing:
            return True
        async with self._probe_lock:
            if self._confirms_failing:
                probe = aio_pika.Message(b"", delivery_mode=aio_pika.DeliveryMode.NOT_PERSISTENT)
                with contextlib.suppress(BrokerUnavailable):
                    await _confirmed(link.probe, probe, _PROBE_ROUTING_KEY, timeout)
                    self._confirms_failing = False
        return not self._confirms_failing

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
        link = self._link
        if link is None or not link.open:
            raise BrokerUnavailable("broker not connected")
        try:
            target = link.exchanges[exchange]
        except KeyError:
            raise ValueError(f"exchange {exchange} is not part of the topology") from None
        confirm = await self._watched(_confirmed(target, message, routing_key, timeout))
        if not isinstance(confirm, aiormq.spec.Basic.Ack):
            raise BrokerUnavailable(f"publish not confirmed: {type(confirm).__name__}")

    async def publish_event(
        self, message: aio_pika.Message, routing_key: str, *, timeout: float
    ) -> bool:
        """Publish to ``paysync.events`` with a confirm; False when no queue was bound."""
        link = self._link
        if link is None or not link.open:
            raise BrokerUnavailable("broker not connected")
        confirm = await self._watched(_confirmed(link.events, message, routing_key, timeout))
        if isinstance(confirm, aiormq.abc.DeliveredMessage):
            return False
        if not isinstance(confirm, aiormq.spec.Basic.Ack):
            raise BrokerUnavailable(f"publish not confirmed: {type(confirm).__name__}")
        return True

    async def publish_events(
        self, events: Sequence[OutgoingEvent], *, timeout: float
    ) -> list[bool]:
        """Publish several events to ``paysync.events`` at once, each persistent + mandatory
        with its own confirm, all within ``timeout`` seconds; for each, False when no
        queue was bound. ``BrokerUnavailable`` when any was not confirmed (the caller
        publishes them all again: consumers dedup on the event id). The broker receives
        them in the order given."""
        link = self._link
        if link is None or not link.open:
            raise BrokerUnavailable("broker not connected")
        answers = await self._watched(_all_confirmed(link.events, events, timeout))
        assert isinstance(answers, list)
        routed = []
        for answer in answers:
            if not isinstance(answer, aiormq.abc.DeliveredMessage | aiormq.spec.Basic.Ack):
                raise BrokerUnavailable(f"publish not confirmed: {type(answer).__name__}")
            routed.append(isinstance(answer, aiormq.spec.Basic.Ack))
        return routed

    async def _watched(self, publishing: Awaitable[object]) -> object:
        link = self._link
        try:
            answer = await publishing
        except BrokerUnavailable as exc:
            self._confirms_failing = True
            if isinstance(exc.__cause__, aio_pika.exceptions.DeliveryError):
                self._refused(link)
            raise
        self._confirms_failing = False
        self._refusals = 0
        return answer

    def _refused(self, link: _Link | None) -> None:
        self._refusals += 1
        if link is None or self._refusals < _REFUSALS_BEFORE_RELINK or link.lost.is_set():
            return
        log.warning("broker_publishes_refused", node=link.node, refusals=self._refusals)
        self._refusals = 0
        link.lost.set()  # the supervisor closes it and connects afresh

    async def close(self, timeout: float = 5.0) -> None:
        if self._task is not None and not self._task.done():
            self._task.cancel()
            # Bounded: a connection whose close handshake stalls while the supervisor is
            # being cancelled (seen closing a link a few ms after it opened) must not hold
            # the caller for ever. Its connection is closed again below either way.
            with contextlib.suppress(asyncio.CancelledError, Exception):
                async with asyncio.timeout(timeout):
                    await self._task
        link, self._link = self._link, None
        self._up.clear()
        if link is not None:
            await _close_quietly(link.connection, timeout)


async def _confirmed(
    exchange: AbstractExchange, message: aio_pika.Message, routing_key: str, timeout: float
) -> object:
    """Publish mandatory and return the broker's answer, all within ``timeout`` seconds;
    any failure is ``BrokerUnavailable``."""
    assert isinstance(exchange, aio_pika.Exchange)
    with broker_errors("publish not confirmed"):
        async with asyncio.timeout(timeout):
            channel = await exchange.channel.get_underlay_channel()
            assert isinstance(channel, aiormq.Channel)
            # As Exchange.publish, but without waiting for the frame to be written
            # (``wait=False``): aiormq holds the channel's lock until that drain, which
            # serialises concurrent publishes one event-loop turn apart. The confirm is
            # still awaited; the client's bounded write queue still pushes back.
            return await channel.basic_publish(
                message.body,
                exchange=exchange.name,
                routing_key=routing_key,
                properties=message.properties,
                mandatory=True,
                wait=False,
            )


@dataclass(frozen=True, slots=True)
class OutgoingEvent:
    """An event as the relay publishes it: the outbox row's exact bytes."""

    body: bytes
    event_id: str
    routing_key: str

    def properties(self) -> aiormq.spec.Basic.Properties:
        return aiormq.spec.Basic.Properties(
            message_id=self.event_id,
            content_type="application/json",
            delivery_mode=int(aio_pika.DeliveryMode.PERSISTENT),
        )


async def _all_confirmed(
    exchange: AbstractExchange, events: Sequence[OutgoingEvent], timeout: float
) -> list[object]:
    """Publish every event mandatory, in order, and return the broker's answers, all within
    ``timeout`` seconds (one deadline for the lot); any failure is ``BrokerUnavailable``."""
    assert isinstance(exchange, aio_pika.Exchange)
    with broker_errors("publish not confirmed"):
        async with asyncio.timeout(timeout):
            channel = await exchange.channel.get_underlay_channel()
            assert isinstance(channel, aiormq.Channel)
            # Each publish is written before the next starts (``wait=False``: no drain
            # waited for), so the broker gets them in this order.
            return await asyncio.gather(
                *(
                    channel.basic_publish(
                        event.body,
                        exchange=exchange.name,
                        routing_key=event.routing_key,
                        properties=event.properties(),
                        mandatory=True,
                        wait=False,
                    )
                    for event in events
                )
            )


async def _close_quietly(connection: AbstractConnection, timeout: float = 5.0) -> None:
    with contextlib.suppress(BrokerUnavailable), broker_errors("close"):
        async with asyncio.timeout(timeout):
            await connection.close()


def _describe(exc: BaseException) -> str:
    text = str(exc)
    return f"{type(exc).__name__}: {text}" if text else type(exc).__name__


async def publish_envelope(broker: Publisher, envelope: Envelope, timeout: float) -> None:
    """An inbound envelope onto ``paysync.inbound``: persistent + mandatory, waiting for the
    broker's confirm (design §6 rule 1). Raises ``BrokerUnavailable``."""
    message = envelope_message(envelope)
    await broker.publish(
        broker.topology.inbound_exchange, message, INBOUND_ROUTING_KEY, timeout=timeout
    )
