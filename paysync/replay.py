"""Event replay: re-publish outbox events a consumer missed, exactly as first published.

Each event goes to ``paysync.events`` again with its original ``event_id`` (the AMQP
``message_id``), its original body bytes and routing key, persistent, with a publisher
confirm (``Broker.publish_event``), one at a time in commit order, so each payment's
events arrive in ``seq`` order, spaced by a rate limit. Every bound queue gets the copies:
consumers dedup on ``event_id``, so a replay is harmless to those that had them.

Only published events are replayed (the relay sends the others). A selection is one
payment (provider, account, merchant ref) or everything since a time, optionally of one
provider and one status (``payment.status`` in the event: the status after the event).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any

import aio_pika
import asyncpg

from paysync.broker import Broker
from paysync.db import translated_errors
from paysync.errors import BrokerUnavailable
from paysync.logging import get_logger
from paysync.rate import RateLimiter
from schemas.status import Status

log = get_logger(__name__)

QUERIES_PATH = Path(__file__).with_name("replay.sql")
# A replay of more than this many events is refused: narrow it (``--since``, a provider).
MAX_EVENTS = 100_000
DEFAULT_RATE = 200.0


@dataclass(frozen=True, slots=True, kw_only=True)
class ReplaySelection:
    """One payment (all three of provider, account, merchant_ref), or ``since`` a time."""

    provider: str | None = None
    account: str | None = None
    merchant_ref: str | None = None
    since: datetime | None = None
    status: Status | None = None

    def __post_init__(self) -> None:
        one_payment = self.merchant_ref is not None
        if one_payment and (self.provider is None or self.account is None):
            raise ValueError("a payment is provider, account and merchant_ref")
        if one_payment == (self.since is not None):
            raise ValueError("replay one payment or everything since a time: exactly one")
        if self.since is not None and self.since.tzinfo is None:
            raise ValueError("since must carry a time zone")
        if self.account is not None and self.provider is None:
            raise ValueError("an account belongs to a provider: give the provider too")

    def query_args(self, limit: int) -> tuple[Any, ...]:
        status = self.status.value if self.status else None
        return (self.provider, self.account, self.merchant_ref, self.since, status, limit)

    def to_json(self) -> dict[str, Any]:
        return {
            "provider": self.provider,
            "account": self.account,
            "merchant_ref": self.merchant_ref,
            "since": self.since.isoformat() if self.since else None,
            "status": self.status.value if self.status else None,
        }


def payment_selection(ref: str, status: Status | None = None) -> ReplaySelection:
    """``provider/account/merchant_ref`` (the merchant ref may hold more slashes)."""
    provider, _, rest = ref.partition("/")
    account, _, merchant_ref = rest.partition("/")
    if not (provider and account and merchant_ref):
        raise ValueError(f"{ref!r} is not PROVIDER/ACCOUNT/MERCHANT_REF")
    return ReplaySelection(
        provider=provider, account=account, merchant_ref=merchant_ref, status=status
    )


@dataclass(frozen=True, slots=True, kw_only=True)
class ReplayedEvent:
    event_id: str
    payment: str
    seq: int
    routing_key: str

    def to_json(self) -> dict[str, Any]:
        return {
            "event_id": self.event_id,
            "payment": self.payment,
            "seq": self.seq,
            "routing_key": self.routing_key,
        }


@dataclass(slots=True, kw_only=True)
class ReplayReport:
    selection: ReplaySelection
    dry_run: bool
    selected: list[ReplayedEvent] = field(default_factory=list)
    replayed: int = 0
    unroutable: int = 0
    error: str | None = None

    @property
    def ok(self) -> bool:
        return self.error is None

    def to_json(self) -> dict[str, Any]:
        return {
            "selection": self.selection.to_json(),
            "dry_run": self.dry_run,
            "selected": len(self.selected),
            "replayed": self.replayed,
            "unroutable": self.unroutable,
            "error": self.error,
            "events": [e.to_json() for e in self.selected],
        }


class TooManyEvents(ValueError):
    """The selection holds more than ``MAX_EVENTS`` events."""


async def select_events(
    pool: asyncpg.Pool,
    queries: Mapping[str, str],
    selection: ReplaySelection,
    max_events: int = MAX_EVENTS,
) -> list[asyncpg.Record]:
    """The selected events in commit order. Raises ``DatabaseUnavailable``, ``TooManyEvents``."""
    async with translated_errors(), pool.acquire() as conn:
        rows = await conn.fetch(queries["replay_selection"], *selection.query_args(max_events + 1))
    if len(rows) > max_events:
        raise TooManyEvents(f"more than {max_events} events selected: narrow the selection")
    return list(rows)


def message_of(row: asyncpg.Record) -> aio_pika.Message:
    """The event as the relay first published it (``worker/relay.py``)."""
    return aio_pika.Message(
        row["body"].encode(),
        message_id=row["event_id"],
        content_type="application/json",
        delivery_mode=aio_pika.DeliveryMode.PERSISTENT,
    )


async def replay_events(
    pool: asyncpg.Pool,
    queries: Mapping[str, str],
    broker: Broker | None,
    selection: ReplaySelection,
    *,
    rate: float = DEFAULT_RATE,
    confirm_timeout: float = 5.0,
    dry_run: bool = False,
    max_events: int = MAX_EVENTS,
    limiter: Callable[[float], RateLimiter] = RateLimiter,
) -> ReplayReport:
    """Select, then (unless ``dry_run``) publish each with a confirm, at most ``rate`` a
    second. Stops at the first publish not confirmed (``report.error``)."""
    rows = await select_events(pool, queries, selection, max_events)
    report = ReplayReport(selection=selection, dry_run=dry_run)
    report.selected = [
        ReplayedEvent(
            event_id=r["event_id"],
            payment=f"{r['provider']}/{r['account']}/{r['merchant_ref']}",
            seq=r["seq"],
            routing_key=r["routing_key"],
        )
        for r in rows
    ]
    if dry_run or not rows:
        return report
    if broker is None:
        raise ValueError("a replay that is not a dry run needs a broker")
    pace = limiter(rate)
    for row in rows:
        await pace.wait()
        try:
            routed = await broker.publish_event(
                message_of(row), row["routing_key"], timeout=confirm_timeout
            )
        except BrokerUnavailable as exc:
            report.error = f"event {row['event_id']} not confirmed: {exc}"
            log.warning("event_replay_failed", event_id=row["event_id"], error=str(exc))
            break
        report.replayed += 1
        report.unroutable += not routed
    log.info(
        "events_replayed",
        selected=len(rows),
        replayed=report.replayed,
        unroutable=report.unroutable,
        **{k: v for k, v in selection.to_json().items() if v is not None},
    )
    return report
