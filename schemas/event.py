"""The downstream events: the body of every message on ``paysync.events`` (design §3).

Two types share one body shape (``payment`` is the payment as paysync holds it after the
event; ``payment.seq`` counts the payment's events of both types, 1, 2, 3...):

- ``payment.status_changed``, routing key ``payment.<status>``: the status changed;
- ``payment.flagged``, routing key ``payment.flagged``: the payment gained an anomaly (its
  ``payment.anomaly`` list names them all) while its status stayed; ``previous_status``
  then equals ``status``. A status change that brings an anomaly is one status_changed
  event, carrying it.

``schemas/json/payment-status-changed.schema.json`` and ``payment-flagged.schema.json``
are the same contracts for consumers. Money is a decimal string, never a float; times
are UTC with milliseconds and ``Z``. Both types are schema_version 1: ``anomaly`` and the
flagged type were added without changing the meaning of any field.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from decimal import Decimal
from enum import StrEnum
from typing import Any

from schemas.status import Status

SCHEMA_VERSION = 1
FLAGGED_ROUTING_KEY = "payment.flagged"


class EventType(StrEnum):
    STATUS_CHANGED = "payment.status_changed"
    FLAGGED = "payment.flagged"


@dataclass(frozen=True, slots=True, kw_only=True)
class PaymentEvent:
    type: EventType
    event_id: str
    occurred_at: datetime
    source: str
    provider: str
    account: str
    merchant_ref: str
    provider_ref: str | None
    status: Status
    previous_status: Status | None
    amount: Decimal | None
    amount_paid: Decimal
    currency: str | None
    late: bool
    # Every anomaly the payment has (sorted; empty when none).
    anomaly: tuple[str, ...]
    seq: int
    metadata: Mapping[str, Any] = field(default_factory=dict)

    @property
    def routing_key(self) -> str:
        if self.type is EventType.FLAGGED:
            return FLAGGED_ROUTING_KEY
        return f"payment.{self.status.value}"

    def to_json(self) -> dict[str, Any]:
        return {
            "event_id": self.event_id,
            "type": self.type.value,
            "schema_version": SCHEMA_VERSION,
            "occurred_at": format_time(self.occurred_at),
            "source": self.source,
            "payment": {
                "provider": self.provider,
                "account": self.account,
                "merchant_ref": self.merchant_ref,
                "provider_ref": self.provider_ref,
                "status": self.status.value,
                "previous_status": self.previous_status.value if self.previous_status else None,
                "amount": None if self.amount is None else format_money(self.amount),
                "amount_paid": format_money(self.amount_paid),
                "currency": self.currency,
                "late": self.late,
                "anomaly": list(self.anomaly),
                "seq": self.seq,
                "metadata": dict(self.metadata),
            },
        }


def format_money(value: Decimal) -> str:
    """A plain decimal string, never exponent notation (``1E-7`` → ``0.0000001``)."""
    return format(value, "f")


def format_time(moment: datetime) -> str:
    """``2026-11-21T10:00:00.123Z``: UTC, millisecond precision."""
    utc = moment.astimezone(UTC)
    return utc.strftime("%Y-%m-%dT%H:%M:%S.") + f"{utc.microsecond // 1000:03d}Z"
