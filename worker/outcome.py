"""What the store reports back for each observation and each envelope of a batch."""

from __future__ import annotations

from dataclasses import dataclass

from paysync.state.decision import ReceiptOutcome
from schemas.event import EventType
from schemas.status import Status


@dataclass(frozen=True, slots=True)
class Outcome:
    """What one observation did, for the consumer's metrics and logs."""

    dedup_key: str
    outcome: ReceiptOutcome
    source: str
    transition: tuple[Status | None, Status] | None = None
    event: EventType | None = None


# What one envelope of a batch did: its outcomes, or the error that rolled it back.
Applied = list[Outcome] | Exception
