"""Operator redrive of ``paysync.dead``: list dead letters without consuming them, and
replay chosen ones onto ``paysync.inbound`` exactly as ingest first published them.

This is the inverse of ``MessageHandler._dead_letter`` (same header names), so it lives beside it.

Reading a queue without consuming it is, in AMQP 0-9-1, taking its messages unacked and
giving them back. A scan takes every ready message (``basic.get`` until the queue is empty,
up to ``MAX_SCAN``: QoS does not apply to ``basic.get``, so the cap is what bounds the
unacked messages held), and when done returns each one it did not remove with
``nack(requeue=True)``, in delivery order. Holding the whole queue is what keeps its order
whichever way the broker requeues: a quorum queue without a delivery limit (paysync.dead on
RabbitMQ 3.x) appends returned messages at its back, so returning all of them in order is
a full rotation; one with a delivery limit (paysync.inbound; every quorum queue on 4.x by
default) serves them first, in the order they came back. Returning some early would rotate
the queue, or hand them back to the same scan. A crash mid-scan loses nothing: the broker
returns a closed channel's unacked messages.

A replayed message is removed (acked) only after ``paysync.inbound`` confirmed its copy;
the worker's inbox, unique on (dedup key, message id), makes a replay that happens twice
harmless.
"""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator, Mapping
from contextlib import asynccontextmanager
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import aio_pika
from aio_pika.abc import AbstractIncomingMessage, HeadersType

from paysync.amqp import INBOUND_ROUTING_KEY, PUBLISH_ERRORS
from paysync.broker import Broker
from paysync.errors import BrokerUnavailable
from paysync.logging import get_logger
from schemas.envelope import H_ACCOUNT, H_DEAD_AT, H_ERROR, H_KIND, H_PROVIDER

log = get_logger(__name__)

# At most this many dead letters are held by one scan (each in memory, unacked). A longer
# queue is scanned in part, and a 3.x quorum queue is then rotated by that many.
MAX_SCAN = 10_000

ENVELOPE_HEADER_PREFIX = "x-paysync-"
# Added on the way to paysync.dead; the broker's own (x-death, x-first-death-*,
# x-last-death-*, x-delivery-count) are dropped because they are not x-paysync-*.
DEAD_LETTER_HEADERS = frozenset({H_ERROR, H_DEAD_AT})


@dataclass(frozen=True, slots=True, kw_only=True)
class DeadLetter:
    """What an operator needs to see of one message on ``paysync.dead``."""

    message_id: str | None
    dead_at: str | None
    provider: str | None
    account: str | None
    kind: str | None
    reason: str
    body_bytes: int

    def to_json(self) -> dict[str, Any]:
        return {
            "message_id": self.message_id,
            "dead_at": self.dead_at,
            "provider": self.provider,
            "account": self.account,
            "kind": self.kind,
            "reason": self.reason,
            "body_bytes": self.body_bytes,
        }


@dataclass(frozen=True, slots=True, kw_only=True)
class Selection:
    """Which dead letters to replay: exactly one of ids, a reason substring, everything."""

    ids: frozenset[str] = frozenset()
    reason: str | None = None
    everything: bool = False

    def __post_init__(self) -> None:
        if [bool(self.ids), self.reason is not None, self.everything].count(True) != 1:
            raise ValueError("select by ids, by reason or everything: exactly one")
        if self.reason == "":
            raise ValueError("an empty reason would select everything: say so with --all")

    def matches(self, letter: DeadLetter) -> bool:
        if self.everything:
            return True
        if self.reason is not None:
            return self.reason in letter.reason
        return letter.message_id in self.ids


@dataclass(frozen=True, slots=True, kw_only=True)
class Listing:
    letters: tuple[DeadLetter, ...]  # the first ``limit`` ones
    scanned: int
    ready: int  # ready on paysync.dead when the scan began

    @property
    def hidden(self) -> int:
        """Dead letters not shown: beyond the limit, or beyond the scan."""
        return max(self.scanned, self.ready) - len(self.letters)


@dataclass(frozen=True, slots=True, kw_only=True)
class ReplayReport:
    scanned: int
    ready: int
    selected: tuple[DeadLetter, ...]
    replayed: tuple[DeadLetter, ...]
    failed: tuple[tuple[DeadLetter, str], ...]
    missing: tuple[str, ...]  # selected ids found nowhere on paysync.dead: nothing replayed
    dry_run: bool

    @property
    def kept(self) -> int:
        """Messages left on paysync.dead: scanned and not removed, plus any not scanned."""
        return self.scanned - len(self.replayed) + max(0, self.ready - self.scanned)

    @property
    def ok(self) -> bool:
        return not self.missing and not self.failed


def describe(message: AbstractIncomingMessage) -> DeadLetter:
    headers = message.headers
    return DeadLetter(
        message_id=message.message_id,
        dead_at=_dead_at(headers),
        provider=_text(headers.get(H_PROVIDER)),
        account=_text(headers.get(H_ACCOUNT)),
        kind=_text(headers.get(H_KIND)),
        reason=_reason(headers),
        body_bytes=len(message.body),
    )


def replay_headers(headers: Mapping[str, Any]) -> HeadersType:
    """The envelope's own headers, without what dead-lettering added to them."""
    return {
        name: value
        for name, value in headers.items()
        if name.startswith(ENVELOPE_HEADER_PREFIX) and name not in DEAD_LETTER_HEADERS
    }


def redriven(message: AbstractIncomingMessage) -> aio_pika.Message:
    """The message as ingest (or the reconciler) published it: same body, id, type."""
    return aio_pika.Message(
        message.body,
        headers=replay_headers(message.headers),
        message_id=message.message_id,
        content_type=message.content_type,
        timestamp=message.timestamp,
        delivery_mode=aio_pika.DeliveryMode.PERSISTENT,
    )


@dataclass(frozen=True, slots=True)
class _Scan:
    messages: list[AbstractIncomingMessage]
    ready: int


@asynccontextmanager
async def _held(broker: Broker, cap: int) -> AsyncIterator[_Scan]:
    """Hold every dead letter (up to ``cap``) unacked; give back, in order, all not removed."""
    channel = await broker.connection.channel()
    messages: list[AbstractIncomingMessage] = []
    try:
        queue = await channel.declare_queue(broker.topology.dead_queue, passive=True)
        ready = queue.declaration_result.message_count or 0
        while len(messages) < cap:
            message = await queue.get(no_ack=False, fail=False)
            if message is None:
                break
            messages.append(message)
        yield _Scan(messages, ready)
    finally:
        for message in messages:
            if not message.processed:
                # A lost channel returns them anyway.
                with contextlib.suppress(*PUBLISH_ERRORS):
                    await message.nack(requeue=True)
        with contextlib.suppress(*PUBLISH_ERRORS):
            await channel.close()


async def list_dead(broker: Broker, *, limit: int = MAX_SCAN, cap: int = MAX_SCAN) -> Listing:
    """The first ``limit`` dead letters, oldest first; every one stays on paysync.dead.

    The whole queue is scanned (up to ``cap``) even for a few: see the module docstring.
    """
    async with _held(broker, cap) as scan:
        listing = Listing(
            letters=tuple(describe(m) for m in scan.messages[:limit]),
            scanned=len(scan.messages),
            ready=scan.ready,
        )
    log.info("dead_letters_listed", shown=len(listing.letters), scanned=listing.scanned)
    return listing


async def replay(
    broker: Broker,
    selection: Selection,
    *,
    confirm_timeout: float,
    dry_run: bool = False,
    cap: int = MAX_SCAN,
) -> ReplayReport:
    """Republish the selected dead letters to paysync.inbound; remove each once confirmed.

    Nothing is replayed when a selected id is not on paysync.dead: the operator's
    selection is not what they think it is.
    """
    async with _held(broker, cap) as scan:
        letters = [(message, describe(message)) for message in scan.messages]
        chosen = [(message, letter) for message, letter in letters if selection.matches(letter)]
        missing = tuple(sorted(selection.ids - {letter.message_id for _, letter in letters}))
        replayed: list[DeadLetter] = []
        failed: list[tuple[DeadLetter, str]] = []
        if not (dry_run or missing):
            for message, letter in chosen:
                error = await _replay_one(broker, message, letter, confirm_timeout)
                if error is None:
                    replayed.append(letter)
                else:
                    failed.append((letter, error))
    return ReplayReport(
        scanned=len(letters),
        ready=scan.ready,
        selected=tuple(letter for _, letter in chosen),
        replayed=tuple(replayed),
        failed=tuple(failed),
        missing=missing,
        dry_run=dry_run,
    )


async def _replay_one(
    broker: Broker, message: AbstractIncomingMessage, letter: DeadLetter, timeout: float
) -> str | None:
    """Publish a copy with a confirm, then remove the original; the error, if any."""
    topology = broker.topology
    try:
        await broker.publish(
            topology.inbound_exchange, redriven(message), INBOUND_ROUTING_KEY, timeout=timeout
        )
    except BrokerUnavailable as exc:
        log.warning("dead_letter_replay_failed", message_id=letter.message_id, error=str(exc))
        return str(exc)
    try:
        await message.ack()
    except PUBLISH_ERRORS as exc:
        # The copy is on paysync.inbound and the original back on paysync.dead: replaying
        # it again is harmless, the inbox knows the message id.
        log.warning("dead_letter_ack_failed", message_id=letter.message_id)
        return f"replayed, but still on {topology.dead_queue}: {type(exc).__name__}"
    log.info(
        "dead_letter_replayed",
        message_id=letter.message_id,
        provider=letter.provider,
        account=letter.account,
        reason=letter.reason,
    )
    return None


def _reason(headers: Mapping[str, Any]) -> str:
    """Why the worker gave up, or, when the broker dead-lettered it, the broker's reason."""
    reason = _text(headers.get(H_ERROR))
    if reason is not None:
        return reason
    broker_reason = _text(headers.get("x-first-death-reason"))
    return f"rabbitmq: {broker_reason}" if broker_reason else ""


def _dead_at(headers: Mapping[str, Any]) -> str | None:
    dead_at = _text(headers.get(H_DEAD_AT))
    if dead_at is not None:
        return dead_at
    deaths = headers.get("x-death")
    if isinstance(deaths, list) and deaths and isinstance(deaths[0], Mapping):
        at = deaths[0].get("time")
        if isinstance(at, datetime):
            return at.isoformat()
    return None


def _text(value: object) -> str | None:
    if isinstance(value, bytes):
        return value.decode("utf-8", errors="replace")
    return value if isinstance(value, str) else None
