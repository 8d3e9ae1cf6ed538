"""Fakes of what the worker's message handler talks to (worker/handler.py): a list-backed
store, a recording broker, a delivery that records how it was settled. No mock objects."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import aio_pika

from paysync.amqp import Topology
from paysync.errors import BrokerUnavailable
from paysync.state.decision import ReceiptOutcome
from providers.base import ReturnHint
from schemas.envelope import Envelope
from schemas.observation import Observation, Source
from worker.outcome import Applied, Outcome

DELIVERY_LIMIT = 3


@dataclass
class FakeStore:
    """Records what it was asked to apply; fails as told (a list of errors, in turn)."""

    failures: list[Exception] = field(default_factory=list)
    applied: list[tuple[Envelope, list[Observation]]] = field(default_factory=list)
    hints: list[tuple[Envelope, ReturnHint]] = field(default_factory=list)
    attempts: int = 0

    async def apply(self, envelope: Envelope, observations: list[Observation]) -> list[Outcome]:
        self._attempt()
        return self._applied(envelope, observations)

    def _applied(self, envelope: Envelope, observations: list[Observation]) -> list[Outcome]:
        self.applied.append((envelope, observations))
        return [
            Outcome(
                obs.dedup_key,
                ReceiptOutcome.APPLIED,
                obs.source.value,
                transition=(None, obs.status) if obs.status else None,
            )
            for obs in observations
        ]

    async def apply_batch(
        self, batch: Sequence[tuple[Envelope, list[Observation]]]
    ) -> list[Applied]:
        """As the real store: one attempt for the whole batch."""
        self._attempt()
        return [self._applied(envelope, observations) for envelope, observations in batch]

    async def apply_hint(self, envelope: Envelope, hint: ReturnHint) -> Outcome:
        self._attempt()
        self.hints.append((envelope, hint))
        return Outcome(hint.dedup_key, ReceiptOutcome.HINT, Source.RETURN_URL.value)

    def _attempt(self) -> None:
        self.attempts += 1
        if self.failures:
            raise self.failures.pop(0)


@dataclass
class FakeBroker:
    """Records each confirmed publish; ``confirms=False``: every publish is unconfirmed."""

    topology: Topology = field(
        default_factory=lambda: Topology(prefix="t.", delivery_limit=DELIVERY_LIMIT)
    )
    confirms: bool = True
    published: list[tuple[str, aio_pika.Message, str]] = field(default_factory=list)

    async def publish(
        self, exchange: str, message: aio_pika.Message, routing_key: str, *, timeout: float
    ) -> None:
        if not self.confirms:
            raise BrokerUnavailable("publish not confirmed: Nack")
        self.published.append((exchange, message, routing_key))


@dataclass
class FakeMessage:
    """A delivery: what the handler reads, and how it was settled."""

    body: bytes
    headers: dict[str, Any]
    message_id: str | None
    content_type: str | None = "application/json"
    redelivered: bool | None = False
    settled: list[str] = field(default_factory=list)

    @classmethod
    def of(cls, envelope: Envelope, **headers: Any) -> FakeMessage:
        return cls(
            body=envelope.body,
            headers=envelope.amqp_headers() | headers,
            message_id=envelope.message_id,
            content_type=envelope.content_type,
        )

    async def ack(self) -> None:
        self.settled.append("ack")

    async def nack(self, *, requeue: bool = True) -> None:
        self.settled.append("requeue" if requeue else "reject")
