"""One delivered message of ``paysync.inbound``, start to end: envelope → adapter →
observations → store, then the settlement ``worker.settle.settle`` decides, carried out
here: ack after commit, requeue, or dead-letter (the raw bytes and the reason to
``paysync.dead``, then ack; requeued instead when the broker does not confirm the copy).

A database outage is retried with backoff while running, holding the message; on
shutdown the message is given back. The store and the broker are interfaces (``Ledger``,
``paysync.broker.Publisher``), so unit tests run it over fakes.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Awaitable, Callable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any, Protocol, TypeVar

import aio_pika
import structlog

from paysync.amqp import broker_errors
from paysync.broker import Publisher
from paysync.errors import BrokerUnavailable, DatabaseUnavailable, UnknownAccount
from paysync.logging import get_logger
from paysync.metrics import Metrics
from paysync.retry import Backoff
from paysync.settings import WorkerSettings
from providers.base import ReturnHint
from providers.registry import Provider
from schemas.envelope import H_DEAD_AT, H_ERROR, Envelope, EnvelopeKind
from schemas.observation import Kind, Observation, load_observations
from worker.outcome import Applied, Outcome
from worker.settle import Action, Settlement, Stopping, settle

log = get_logger(__name__)

T = TypeVar("T")


class Delivery(Protocol):
    """What the handler reads of a delivered message (aio-pika's incoming message)."""

    @property
    def message_id(self) -> str | None: ...
    @property
    def headers(self) -> Mapping[str, Any]: ...
    @property
    def body(self) -> bytes: ...
    @property
    def content_type(self) -> str | None: ...
    @property
    def redelivered(self) -> bool | None: ...

    def ack(self) -> Awaitable[None]: ...

    def nack(self, *, requeue: bool = True) -> Awaitable[None]: ...


class Ledger(Protocol):
    """What the handler needs of the store (``worker.store.Store``)."""

    async def apply(self, envelope: Envelope, observations: list[Observation]) -> list[Outcome]:
        """Apply one envelope's observations in one transaction; raises DatabaseUnavailable."""
        ...

    async def apply_batch(
        self, batch: Sequence[tuple[Envelope, list[Observation]]]
    ) -> list[Applied]:
        """Apply several envelopes in one transaction, one savepoint each: each one's
        outcomes or its own error; raises DatabaseUnavailable (nothing committed)."""
        ...

    async def apply_hint(self, envelope: Envelope, hint: ReturnHint) -> Outcome:
        """Record a verified return URL's hint; raises DatabaseUnavailable."""
        ...


@dataclass(slots=True)
class _Item:
    """One delivery on its way through a batch."""

    message: Delivery
    envelope: Envelope | None = None
    provider: str = ""
    observations: list[Observation] = field(default_factory=list)
    hint: ReturnHint | None = None
    outcomes: list[Outcome] = field(default_factory=list)
    error: BaseException | None = None


def _bound(item: _Item) -> contextlib.AbstractContextManager[None]:
    """The delivery's log context: a batch runs in one task for many deliveries."""
    envelope = item.envelope
    if envelope is None:
        return structlog.contextvars.bound_contextvars(message_id=item.message.message_id)
    return structlog.contextvars.bound_contextvars(
        message_id=item.message.message_id, provider=envelope.provider, account=envelope.account
    )


class MessageHandler:
    def __init__(
        self,
        store: Ledger,
        registry: Mapping[str, Provider],
        broker: Publisher,
        settings: WorkerSettings,
        metrics: Metrics,
        stop: asyncio.Event,
    ) -> None:
        self._store = store
        self._registry = registry
        self._broker = broker
        self._settings = settings
        self._metrics = metrics
        self._stop = stop
        self._backoff = Backoff(
            initial=settings.retry_initial_seconds, maximum=settings.retry_max_seconds
        )

    async def handle(self, message: Delivery) -> None:
        """Apply, settle, carry out the settlement; never raises."""
        await self.handle_batch([message])

    async def handle_batch(self, messages: Sequence[Delivery]) -> None:
        """Apply several deliveries in one transaction (a savepoint each), then settle and
        carry out each one's settlement as ``handle`` does; never raises. One delivery's
        failure is its own: the others still commit and are acked."""
        items = [self._prepare(message) for message in messages]
        for item in items:
            if item.hint is not None:
                await self._apply_hint(item, item.hint)
        await self._apply([i for i in items if i.error is None and i.observations])
        # Together: each ack waits for the client to write its frame, one event-loop turn;
        # one after another that is a turn per delivery.
        await asyncio.gather(*(self._finish(item) for item in items))

    def _prepare(self, message: Delivery) -> _Item:
        """Envelope and observations of one delivery (pure: no I/O), or why not."""
        item = _Item(message)
        try:
            envelope = Envelope.from_amqp(
                message_id=message.message_id,
                headers=message.headers,
                body=message.body,
                content_type=message.content_type,
            )
            item.envelope, item.provider = envelope, envelope.provider
            with _bound(item):
                if envelope.kind is EnvelopeKind.RETURN_URL:
                    item.hint = self._provider(envelope).parse_return(envelope)
                    return item
                item.observations = self._parse(envelope)
                self._note_unknown(item.observations)
                if not item.observations:
                    log.info("callback_ignored", reason="nothing_tracked")
        except Exception as exc:
            item.error = exc
        return item

    async def _apply_hint(self, item: _Item, hint: ReturnHint) -> None:
        envelope = item.envelope
        assert envelope is not None
        try:
            with _bound(item):
                item.outcomes = [
                    await self._retrying(lambda: self._store.apply_hint(envelope, hint))
                ]
        except Exception as exc:
            item.error = exc

    async def _apply(self, items: list[_Item]) -> None:
        """Apply the items' observations: one transaction for all, retried as a whole
        while the database is unavailable; one item's own failure is set on it."""
        if not items:
            return
        work = [(i.envelope, i.observations) for i in items if i.envelope is not None]
        results: list[Applied]
        if len(work) == 1:
            # Today's path: one transaction, no savepoint.
            results = [await self._apply_alone(*work[0])]
            return self._set(items, results)
        try:
            results = await self._retrying(lambda: self._store.apply_batch(work))
        except Stopping as exc:
            results = [exc] * len(items)
        except Exception:
            # Failed outside any envelope's savepoint (a poison key refused by the batch's
            # first statement): apply each one alone, so it fails alone.
            results = [await self._apply_alone(envelope, obs) for envelope, obs in work]
        self._set(items, results)

    @staticmethod
    def _set(items: list[_Item], results: list[Applied]) -> None:
        for item, result in zip(items, results, strict=True):
            if isinstance(result, Exception):
                item.error = result
            else:
                item.outcomes = result

    async def _apply_alone(self, envelope: Envelope, observations: list[Observation]) -> Applied:
        try:
            return await self._retrying(lambda: self._store.apply(envelope, observations))
        except Exception as exc:
            return exc

    async def _finish(self, item: _Item) -> None:
        message, error = item.message, item.error
        with _bound(item):
            settlement = settle(
                error,
                deliveries=message.headers.get("x-delivery-count"),
                delivery_limit=self._broker.topology.delivery_limit,
            )
            if settlement.unexpected:
                log.error("message_failed", error=type(error).__name__, exc_info=error)
            if await self._carry_out(message, settlement):
                for outcome in item.outcomes:
                    self._count(item.provider, outcome)
                    _log_outcome(outcome)

    async def _carry_out(self, message: Delivery, settlement: Settlement) -> bool:
        """Ack, requeue or dead-letter; True when the message was acked as applied."""
        if settlement.action is Action.ACK:
            await _settled(message.ack())
            return True
        if settlement.action is Action.REQUEUE:
            await _settled(message.nack(requeue=True))
        else:
            await self._dead_letter(message, settlement.reason)
        return False

    def _provider(self, envelope: Envelope) -> Provider:
        provider = self._registry.get(envelope.provider)
        if provider is None:
            raise UnknownAccount(envelope.provider, envelope.account)
        return provider

    def _parse(self, envelope: Envelope) -> list[Observation]:
        if envelope.kind is EnvelopeKind.OBSERVATIONS:
            return load_observations(envelope.body)
        return self._provider(envelope).parse_callback(envelope)

    def _note_unknown(self, observations: list[Observation]) -> None:
        for obs in observations:
            if obs.kind is Kind.STATUS and obs.status is None:
                self._metrics.unknown_statuses.labels(obs.provider).inc()
                log.warning(
                    "unknown_status_observed",
                    provider_status=obs.provider_status,
                    merchant_ref=obs.merchant_ref,
                )

    async def _retrying(self, attempt_once: Callable[[], Awaitable[T]]) -> T:
        """Retry while the database is unavailable; on shutdown, give the message back."""
        attempt = 0
        while True:
            try:
                return await attempt_once()
            except DatabaseUnavailable as exc:
                attempt += 1
                if self._stop.is_set():
                    raise Stopping from exc
                delay = self._backoff.delay(attempt)
                log.warning("apply_retried", error=str(exc), attempt=attempt, delay=delay)
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(self._stop.wait(), delay)

    def _count(self, provider: str, outcome: Outcome) -> None:
        self._metrics.observations.labels(provider, outcome.outcome).inc()
        if outcome.transition is not None:
            before, after = outcome.transition
            self._metrics.transitions.labels(
                provider, before.value if before else "", after.value, outcome.source
            ).inc()

    async def _dead_letter(self, message: Delivery, reason: str) -> None:
        dead = dead_letter_message(
            body=message.body,
            headers=message.headers,
            message_id=message.message_id,
            content_type=message.content_type,
            reason=reason,
            at=datetime.now(UTC),
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
            await _settled(message.nack(requeue=True))
            return
        self._metrics.dead_letters.labels(reason.partition(":")[0]).inc()
        log.error("message_dead_lettered", reason=reason)
        await _settled(message.ack())


def dead_letter_message(
    *,
    body: bytes,
    headers: Mapping[str, Any],
    message_id: str | None,
    content_type: str | None,
    reason: str,
    at: datetime,
) -> aio_pika.Message:
    """The copy parked on ``paysync.dead``: the raw body and every header as delivered,
    plus why (``x-paysync-error``) and when (``x-paysync-dead-at``)."""
    return aio_pika.Message(
        body,
        headers={**headers, H_ERROR: reason[:1000], H_DEAD_AT: at.isoformat()},
        message_id=message_id,
        content_type=content_type,
        delivery_mode=aio_pika.DeliveryMode.PERSISTENT,
    )


async def _settled(action: Awaitable[None]) -> None:
    """Await an ack/nack; a lost channel means the broker will redeliver anyway."""
    try:
        with broker_errors("settle"):
            await action
    except BrokerUnavailable as exc:
        log.warning("settle_failed", error=str(exc))


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
