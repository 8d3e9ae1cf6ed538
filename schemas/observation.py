"""Observations: what one source said about one payment at one time (design §5).

An observation is the unit the worker deduplicates (by ``dedup_key``) and folds into the
payment row. Adapters produce them from provider payloads; the reconciler from polls.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime
from decimal import Decimal
from enum import StrEnum
from typing import Any

from paysync.errors import MalformedMessage
from schemas.status import Status


class Kind(StrEnum):
    STATUS = "status"
    CREDIT = "credit"
    REFUND = "refund"
    CHARGEBACK = "chargeback"
    CLOCK = "clock"
    # A verified return URL: asks for a status poll, recorded in the inbox, never folded.
    HINT = "hint"
    # A merchant's registration (POST /v1/payments): terms and metadata, no status.
    TERMS = "terms"


class Source(StrEnum):
    MERCHANT = "merchant"
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
    # When the payment's valid period ends, if this source says so.
    expires_at: datetime | None = None
    # The merchant's own data about the payment (registrations only); echoed in events.
    metadata: Mapping[str, Any] | None = None

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
            "expires_at": None if self.expires_at is None else self.expires_at.isoformat(),
            "metadata": None if self.metadata is None else dict(self.metadata),
        }

    @classmethod
    def from_json(cls, doc: Mapping[str, Any]) -> Observation:
        """Inverse of :meth:`to_json` (the inbox stores observations this way)."""
        return cls(
            kind=Kind(doc["kind"]),
            source=Source(doc["source"]),
            provider=doc["provider"],
            account=doc["account"],
            merchant_ref=doc["merchant_ref"],
            dedup_key=doc["dedup_key"],
            observed_at=datetime.fromisoformat(doc["observed_at"]),
            provider_ref=doc.get("provider_ref"),
            status=Status(doc["status"]) if doc.get("status") else None,
            provider_status=doc.get("provider_status"),
            record_id=doc.get("record_id"),
            amount=_parse_dec(doc.get("amount")),
            amount_due=_parse_dec(doc.get("amount_due")),
            currency=doc.get("currency"),
            expires_at=datetime.fromisoformat(doc["expires_at"]) if doc.get("expires_at") else None,
            metadata=doc.get("metadata"),
        )


def _parse_dec(value: str | None) -> Decimal | None:
    return None if value is None else Decimal(value)


def _dec(value: Decimal | None) -> str | None:
    return None if value is None else format(value, "f")


def dump_observations(observations: list[Observation]) -> bytes:
    """The body of an ``observations`` envelope."""
    return json.dumps([o.to_json() for o in observations], separators=(",", ":")).encode()


def load_observations(body: bytes) -> list[Observation]:
    """Parse the body of an ``observations`` envelope; ``MalformedMessage`` when invalid."""
    try:
        docs = json.loads(body)
        if not isinstance(docs, list):
            raise TypeError("not a JSON list")
        return [Observation.from_json(d) for d in docs]
    except (ValueError, TypeError, KeyError, ArithmeticError) as exc:
        raise MalformedMessage(f"invalid observations body: {exc!r}") from None
