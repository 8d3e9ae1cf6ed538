"""Writes what a decision says (``paysync.state.decision``), inside the caller's
transaction and under the payment's row lock: the payment row; on an event the next
``seq``, and for a status change a transition row; the event in the outbox.

``seq`` counts a payment's events of every type, so ``payment.flagged`` events take their
place in it and consumers can still detect gaps; transition rows keep the ``seq`` of
their status_changed event.
"""

from __future__ import annotations

import uuid
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

import asyncpg
import orjson

from paysync.logging import get_logger
from paysync.state.decision import Decision
from schemas.event import EventType, PaymentEvent
from schemas.status import Status

if TYPE_CHECKING:
    from paysync.db import Conn

log = get_logger(__name__)


@dataclass(frozen=True, slots=True)
class Writes:
    """What a decision writes besides the payment row: the row's new ``seq``, and on an
    event its transition (status changes only) and the event itself."""

    seq: int
    transition: tuple[str | None, str] | None = None
    event: PaymentEvent | None = None


def writes_of(
    decision: Decision,
    *,
    provider: str,
    account: str,
    merchant_ref: str,
    seq: int,
    source: str,
    metadata: Mapping[str, Any],
    message_id: str | None = None,
) -> Writes | None:
    """What ``decision`` writes for the payment whose stored ``seq`` is given (pure: no
    I/O); None when the row stays as it is. Reports a held regression loudly (with the
    receipt's message id when given; else the log context's)."""
    if decision.regression is not None:
        kept, folded = decision.regression
        named = {} if message_id is None else {"message_id": message_id}
        log.error(
            "fold_rank_regression",
            **named,
            merchant_ref=merchant_ref,
            from_status=kept.value,
            to_status=_opt(folded),
        )
    if not decision.changed:
        return None
    if decision.event is None:
        return Writes(seq)
    seq += 1
    transition = None
    if decision.transition is not None:
        transition = (_opt(decision.transition[0]), decision.transition[1].value)
    event = event_of(
        decision,
        provider=provider,
        account=account,
        merchant_ref=merchant_ref,
        source=source,
        seq=seq,
        metadata=metadata,
    )
    return Writes(seq, transition, event)


async def write_decision(
    conn: Conn,
    queries: Mapping[str, str],
    row: asyncpg.Record,
    decision: Decision,
    *,
    source: str,
    inbox_id: int | None,
    metadata: Mapping[str, Any],
) -> EventType | None:
    """Write ``decision`` for the locked payment ``row``; the event type written, if any."""
    writes = writes_of(
        decision,
        provider=row["provider"],
        account=row["account"],
        merchant_ref=row["merchant_ref"],
        seq=row["seq"],
        source=source,
        metadata=metadata,
    )
    if writes is None:
        return None
    seq, after = writes.seq, decision.after
    if writes.transition is not None:
        await conn.execute(
            queries["insert_transition"], row["id"], seq, *writes.transition, source, inbox_id
        )
    if (event := writes.event) is not None:
        await conn.execute(
            queries["insert_outbox"],
            uuid.UUID(event.event_id),
            row["id"],
            seq,
            event.routing_key,
            orjson.dumps(event.to_json()),
        )
    await conn.execute(
        queries["update_payment"],
        row["id"],
        _opt(after.status),
        after.provider_ref,
        after.amount,
        after.currency,
        after.expires_at,
        after.amount_paid,
        after.amount_refunded,
        after.late,
        after.anomaly,
        seq,
    )
    return decision.event


def event_of(
    decision: Decision,
    *,
    provider: str,
    account: str,
    merchant_ref: str,
    source: str,
    seq: int,
    metadata: Mapping[str, Any],
) -> PaymentEvent:
    """The event ``decision`` emits (it must emit one), as the outbox stores it."""
    after, kind = decision.after, decision.event
    assert kind is not None
    assert after.status is not None  # an event is only decided for a payment with one
    previous = decision.transition[0] if decision.transition is not None else after.status
    return PaymentEvent(
        type=kind,
        event_id=str(uuid.uuid4()),
        occurred_at=datetime.now(UTC),
        source=source,
        provider=provider,
        account=account,
        merchant_ref=merchant_ref,
        provider_ref=after.provider_ref,
        status=after.status,
        previous_status=previous,
        amount=after.amount,
        amount_paid=after.amount_paid,
        currency=after.currency,
        late=after.late,
        anomaly=after.anomalies,
        seq=seq,
        metadata=metadata,
    )


def _opt(status: Status | None) -> str | None:
    return None if status is None else status.value
