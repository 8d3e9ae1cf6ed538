"""Consumes ``paysync.inbound``: envelope → adapter → observations → store; ack after commit.

Outcomes are decided here and only here:
- applied (or a duplicate/stale observation): ack after the transaction committed;
- ``Transient`` (database down, lock conflict): retry with backoff while running; on
  shutdown, requeue;
- ``Permanent`` (unknown provider, unparseable authenticated body): dead-letter with the
  reason and the raw bytes, then ack;
- an unexpected exception (our bug): requeue, and dead-letter on the last delivery the
  queue's ``x-delivery-limit`` allows, so one poison message cannot circle forever.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Awaitable, Callable, Mapping
from datetime import UTC, datetime
from typing import TypeVar

import aio_pika
import structlog
from aio_pika.abc import AbstractChannel, AbstractIncomingMessage, AbstractQueue

from paysync.amqp import PUBLISH_ERRORS
from paysync.broker import Broker
from paysync.errors import (
    BrokerUnavailable,
    DatabaseUnavailable,
    Permanent,
    UnknownAccount,
)
from paysync.logging import get_logger
from paysync.metrics import Metrics
from paysync.retry import Backoff
from paysync.settings import WorkerSettings
from providers.registry import Provider
from schemas.envelope import Envelope, EnvelopeKind
from schemas.observation import Kind, Observation, load_observations
from worker.store import Outcome, Store

log = get_logger(__name__)

T = TypeVar("T")
_QUIET_SECONDS = 0.05

H_ERROR = "x-paysync-error"
H_DEAD_AT = "x-paysync-dead-at"


class _Stopping(Exception):
    """Shutdown began while a message waited for the database."""


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
        with contextlib.suppress(*PUBLISH_ERRORS):
            if not self.channel.is_closed:
                await self.channel.close()


class Consumer:
    def __init__(
        self,
        broker: Broker,
        store: Store,
        registry: Mapping[str, Provider],
        settings: WorkerSettings,
        metrics: Metrics,
        stop: asyncio.Event,
    ) -> None:
        self._metrics = metrics
        self._broker = broker
        self._store = store
        self._registry = registry
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
                session = await self._subscribe()
            except PUBLISH_ERRORS as exc:
                failures += 1
                log.warning("consumer_start_failed", error=type(exc).__name__, attempt=failures)
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
            with contextlib.suppress(*PUBLISH_ERRORS):
                await channel.close()
            raise
        log.info("consumer_started", queue=queue.name, prefetch=self._settings.prefetch)
        return subscription

    async def _finish(self, session: _Subscription) -> None:
        """A clean stop: cancel the consumer, apply and ack what was delivered, close."""
        with contextlib.suppress(*PUBLISH_ERRORS):
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
                await self._handle(message)
        finally:
            self._inflight.discard(task)
            if not self._inflight:
                self._idle.set()

    async def _handle(self, message: AbstractIncomingMessage) -> None:
        try:
            envelope = Envelope.from_amqp(
                message_id=message.message_id,
                headers=message.headers,
                body=message.body,
                content_type=message.content_type,
            )
            structlog.contextvars.bind_contextvars(
                provider=envelope.provider, account=envelope.account
            )
            outcomes = await self._process(envelope)
        except Permanent as exc:
            await self._dead_letter(message, f"{type(exc).__name__}: {exc}")
        except _Stopping:
            await _settle(message.nack(requeue=True))
        except Exception as exc:  # our bug: retry, and give up on the last allowed delivery
            log.exception("message_failed", error=type(exc).__name__)
            if self._last_delivery(message):
                await self._dead_letter(message, f"{type(exc).__name__}: {exc}")
            else:
                await _settle(message.nack(requeue=True))
        else:
            await _settle(message.ack())
            for outcome in outcomes:
                self._count(envelope.provider, outcome)
                _log_outcome(outcome)

    def _note_unknown(self, observations: list[Observation]) -> None:
        for obs in observations:
            if obs.kind is Kind.STATUS and obs.status is None:
                self._metrics.unknown_statuses.labels(obs.provider).inc()
                log.warning(
                    "unknown_status_observed",
                    provider_status=obs.provider_status,
                    merchant_ref=obs.merchant_ref,
                )

    async def _process(self, envelope: Envelope) -> list[Outcome]:
        if envelope.kind is EnvelopeKind.RETURN_URL:
            hint = self._adapter(envelope).parse_return(envelope)
            return [await self._retrying(lambda: self._store.apply_hint(envelope, hint))]
        observations = self._parse(envelope)
        self._note_unknown(observations)
        if not observations:
            log.info("callback_ignored", reason="nothing_tracked")
            return []
        return await self._retrying(lambda: self._store.apply(envelope, observations))

    def _adapter(self, envelope: Envelope) -> Provider:
        adapter = self._registry.get(envelope.provider)
        if adapter is None:
            raise UnknownAccount(envelope.provider, envelope.account)
        return adapter

    def _parse(self, envelope: Envelope) -> list[Observation]:
        if envelope.kind is EnvelopeKind.OBSERVATIONS:
            return load_observations(envelope.body)
        return self._adapter(envelope).parse_callback(envelope)

    async def _retrying(self, attempt_once: Callable[[], Awaitable[T]]) -> T:
        """Retry while the database is unavailable; on shutdown, give the message back."""
        attempt = 0
        while True:
            try:
                return await attempt_once()
            except DatabaseUnavailable as exc:
                attempt += 1
                if self._stop.is_set():
                    raise _Stopping from exc
                delay = self._backoff.delay(attempt)
                log.warning("apply_retried", error=str(exc), attempt=attempt, delay=delay)
                await self._pause(delay)

    def _count(self, provider: str, outcome: Outcome) -> None:
        self._metrics.observations.labels(provider, outcome.outcome).inc()
        if outcome.transition is not None:
            before, after = outcome.transition
            self._metrics.transitions.labels(
                provider, before.value if before else "", after.value, outcome.source
            ).inc()

    def _last_delivery(self, message: AbstractIncomingMessage) -> bool:
        count = message.headers.get("x-delivery-count") or 0
        return isinstance(count, int) and count + 1 >= self._broker.topology.delivery_limit

    async def _dead_letter(self, message: AbstractIncomingMessage, reason: str) -> None:
        headers = dict(message.headers)
        headers[H_ERROR] = reason[:1000]
        headers[H_DEAD_AT] = datetime.now(UTC).isoformat()
        dead = aio_pika.Message(
            message.body,
            headers=headers,
            message_id=message.message_id,
            content_type=message.content_type,
            delivery_mode=aio_pika.DeliveryMode.PERSISTENT,
        )
        try:
            await self._broker.publish(
                self._broker.topology.dead_exchange,
                dead,
                "",
                timeout=self._settings.publish_timeout_seconds,
            )
        except BrokerUnavailable:
            # Never ack what was not safely parked: the broker redelivers it later.
            log.warning("dead_letter_failed", reason=reason)
            await _settle(message.nack(requeue=True))
            return
        self._metrics.dead_letters.labels(reason.partition(":")[0]).inc()
        log.error("message_dead_lettered", reason=reason)
        await _settle(message.ack())


async def _settle(action: Awaitable[None]) -> None:
    """Await an ack/nack; a lost channel means the broker will redeliver anyway."""
    try:
        await action
    except PUBLISH_ERRORS as exc:
        log.warning("settle_failed", error=type(exc).__name__)


def _log_outcome(outcome: Outcome) -> None:
    if outcome.transition is None:
        log.info("observation_absorbed", dedup_key=outcome.dedup_key, outcome=outcome.outcome)
        return
    before, after = outcome.transition
    log.info(
        "transition_applied",
        dedup_key=outcome.dedup_key,
        from_status=before.value if before else None,
        to_status=after.value,
    )
