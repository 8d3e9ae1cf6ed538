"""The downstream event: the body of every message on ``paysync.events`` (design §3).

``schemas/json/payment-status-changed.schema.json`` is the same contract for consumers.
Money is a decimal string, never a float; times are UTC with milliseconds and ``Z``.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from decimal import Decimal
from typing import Any

from schemas.status import Status

EVENT_TYPE = "payment.status_changed"
SCHEMA_VERSION = 1


@dataclass(frozen=True, slots=True, kw_only=True)
class StatusChanged:
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
    seq: int
    metadata: Mapping[str, Any] = field(default_factory=dict)

    @property
    def routing_key(self) -> str:
        return f"payment.{self.status.value}"

    def to_json(self) -> dict[str, Any]:
        return {
            "event_id": self.event_id,
            "type": EVENT_TYPE,
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
