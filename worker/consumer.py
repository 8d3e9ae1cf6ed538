"""Consumes ``paysync.inbound``: one consumer on a channel of its own, subscribed again on
every new broker link and whenever the broker cancels it; each delivery goes to
``worker.handler.MessageHandler`` (apply, then ack / requeue / dead-letter as
``worker.settle.settle`` decides), gathered into batches (``worker.batch``) of up to
``worker.batch_size`` that are applied in one transaction each. A clean stop cancels
the consumer and lets every delivery in hand finish and be acked first."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Awaitable, Callable, Mapping

import structlog
from aio_pika.abc import AbstractChannel, AbstractIncomingMessage, AbstractQueue

from paysync.amqp import broker_errors, close_quietly
from paysync.broker import Broker
from paysync.errors import BrokerUnavailable
from paysync.logging import get_logger
from paysync.metrics import Metrics
from paysync.retry import Backoff
from paysync.settings import WorkerSettings
from providers.registry import Provider
from worker.batch import Batcher
from worker.handler import Ledger, MessageHandler

log = get_logger(__name__)

_QUIET_SECONDS = 0.05


class _Subscription:
    """One consumer on ``paysync.inbound``, on a channel of its own."""

    def __init__(self, channel: AbstractChannel, queue: AbstractQueue) -> None:
        self.channel = channel
        self.queue = queue
        self.tag = ""
        self._cancelled = asyncio.Event()

    async def start(self, callback: Callable[[AbstractIncomingMessage], Awaitable[None]]) -> None:
        underlay = await self.channel.get_underlay_channel()
        underlay.on_consumer_cancel_callbacks.add(self._on_cancel)
        self.tag = await self.queue.consume(callback)

    def _on_cancel(self, frame: object) -> None:
        if getattr(frame, "consumer_tag", None) == self.tag:
            self._cancelled.set()

    @property
    def active(self) -> bool:
        return bool(self.tag) and not self.channel.is_closed and not self._cancelled.is_set()

    async def until_lost(self, stop: asyncio.Event) -> str | None:
        """Wait for ``stop`` (None) or for the consumer to be lost (why)."""
        waits = {
            asyncio.ensure_future(stop.wait()): None,
            asyncio.ensure_future(self.channel.closed()): "channel_closed",
            asyncio.ensure_future(self._cancelled.wait()): "cancelled_by_broker",
        }
        try:
            done, _ = await asyncio.wait(waits, return_when=asyncio.FIRST_COMPLETED)
        finally:
            for waiting in waits:
                waiting.cancel()
        if stop.is_set():
            return None
        return next(reason for task, reason in waits.items() if task in done)

    async def close(self) -> None:
        await close_quietly(self.channel)


class Consumer:
    def __init__(
        self,
        broker: Broker,
        store: Ledger,
        registry: Mapping[str, Provider],
        settings: WorkerSettings,
        metrics: Metrics,
        stop: asyncio.Event,
    ) -> None:
        self._broker = broker
        self._handler = MessageHandler(store, registry, broker, settings, metrics, stop)
        size = min(settings.batch_size, settings.prefetch)
        self._batcher: Batcher[AbstractIncomingMessage] | None = (
            Batcher(size, settings.batch_linger_ms / 1000, self._handler.handle_batch)
            if size > 1
            else None
        )
        self._settings = settings
        self._stop = stop
        self._backoff = Backoff(
            initial=settings.retry_initial_seconds, maximum=settings.retry_max_seconds
        )
        self._inflight: set[asyncio.Task[object]] = set()
        self._idle = asyncio.Event()
        self._idle.set()
        self._last_arrival = 0.0
        self._session: _Subscription | None = None

    async def run(self) -> None:
        """Consume until ``stop`` is set, then let in-flight messages finish. Whenever the
        channel, the consumer or the whole broker link is lost, consume again on the next
        link: the broker redelivers what the lost channel held unacked."""
        failures = 0
        while not self._stop.is_set():
            if not await self._broker.wait_up(self._stop):
                break
            try:
                with broker_errors("subscribe"):
                    session = await self._subscribe()
            except BrokerUnavailable as exc:
                failures += 1
                log.warning("consumer_start_failed", error=str(exc), attempt=failures)
                await self._pause(self._backoff.delay(failures))
                continue
            failures = 0
            self._session = session
            lost = await session.until_lost(self._stop)
            self._session = None
            if lost is None:
                await self._finish(session)
                break
            log.warning("consumer_lost", reason=lost)
            await session.close()
        log.info("consumer_stopped")

    @property
    def ready(self) -> bool:
        """True while a consumer is registered on ``paysync.inbound`` on an open channel."""
        session = self._session
        return session is not None and session.active

    async def _subscribe(self) -> _Subscription:
        channel = await self._broker.connection.channel()
        try:
            await channel.set_qos(prefetch_count=self._settings.prefetch)
            queue = await channel.declare_queue(self._broker.topology.inbound_queue, passive=True)
            subscription = _Subscription(channel, queue)
            await subscription.start(self._on_message)
        except BaseException:
            await close_quietly(channel)
            raise
        log.info("consumer_started", queue=queue.name, prefetch=self._settings.prefetch)
        return subscription

    async def _finish(self, session: _Subscription) -> None:
        """A clean stop: cancel the consumer, apply and ack what was delivered, close."""
        with contextlib.suppress(BrokerUnavailable), broker_errors("cancel"):
            await session.queue.cancel(session.tag)
        await self._drain()
        await session.close()

    async def _pause(self, seconds: float) -> None:
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self._stop.wait(), seconds)

    async def _drain(self) -> None:
        """Finish every delivery we hold. Deliveries the broker sent before it confirmed the
        cancel (up to the prefetch) may still be on their way through the client library:
        wait until none has arrived for a quiet moment and none is in flight, so they are
        applied and acked now rather than redelivered after a clean stop."""
        loop = asyncio.get_running_loop()
        while True:
            await asyncio.sleep(_QUIET_SECONDS)
            await self._idle.wait()
            if loop.time() - self._last_arrival >= _QUIET_SECONDS:
                return

    async def _on_message(self, message: AbstractIncomingMessage) -> None:
        self._last_arrival = asyncio.get_running_loop().time()
        self._idle.clear()
        task = asyncio.current_task()
        assert task is not None
        self._inflight.add(task)
        try:
            with structlog.contextvars.bound_contextvars(message_id=message.message_id):
                if message.redelivered:
                    # After a crash or a lost connection; never after a clean stop.
                    log.info("message_redelivered")
                if self._batcher is None:
                    await self._handler.handle(message)
                else:
                    await self._batcher.submit(message)
        finally:
            self._inflight.discard(task)
            if not self._inflight:
                self._idle.set()
