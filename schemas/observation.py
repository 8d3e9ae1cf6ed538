"""Observations: what one source said about one payment at one time (design §5).

An observation is the unit the worker deduplicates (by ``dedup_key``) and folds into the
payment row. Adapters produce them from provider payloads; the reconciler from polls.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from decimal import Decimal
from enum import StrEnum
from typing import Any

from schemas.status import Status


class Kind(StrEnum):
    STATUS = "status"
    CREDIT = "credit"
    REFUND = "refund"
    CHARGEBACK = "chargeback"
    CLOCK = "clock"


class Source(StrEnum):
    CALLBACK = "callback"
    RETURN_URL = "return_url"
    RECONCILER = "reconciler"
    CLOCK = "clock"


@dataclass(frozen=True, slots=True, kw_only=True)
class Observation:
    kind: Kind
    source: Source
    provider: str
    account: str
    merchant_ref: str
    dedup_key: str
    observed_at: datetime
    provider_ref: str | None = None
    status: Status | None = None
    provider_status: str | None = None
    record_id: str | None = None
    amount: Decimal | None = None
    amount_due: Decimal | None = None
    currency: str | None = None

    def to_json(self) -> dict[str, Any]:
        """A JSON-ready dict: decimals as strings, times as ISO 8601."""
        return {
            "kind": self.kind.value,
            "source": self.source.value,
            "provider": self.provider,
            "account": self.account,
            "merchant_ref": self.merchant_ref,
            "dedup_key": self.dedup_key,
            "observed_at": self.observed_at.isoformat(),
            "provider_ref": self.provider_ref,
            "status": self.status.value if self.status else None,
            "provider_status": self.provider_status,
            "record_id": self.record_id,
            "amount": _dec(self.amount),
            "amount_due": _dec(self.amount_due),
            "currency": self.currency,
        }


def _dec(value: Decimal | None) -> str | None:
    return None if value is None else format(value, "f")
