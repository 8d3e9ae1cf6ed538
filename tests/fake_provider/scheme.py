"""Acme's scheme: ``X-Acme-Signature`` = hex HMAC-SHA256 of ``timestamp + "." + body``,
``X-Acme-Timestamp`` Unix seconds; the body is the order ``{"id", "order", "status",
"amount", "currency"}``, the same document its status API answers."""

from __future__ import annotations

import hashlib
import hmac
from collections.abc import Mapping
from datetime import datetime
from typing import Any

from paysync.settings import ProviderAccount, SecretRef
from providers.payload import money, required_text
from schemas.mapping import StatusMapping
from schemas.observation import Kind, Observation, Source
from schemas.status import Status

NAME = "acme"
HEADER_SIGNATURE = "X-Acme-Signature"
HEADER_TIMESTAMP = "X-Acme-Timestamp"
MAPPING = StatusMapping(
    provider=NAME,
    statuses={"OPEN": Status.PENDING, "PAID": Status.PAID, "FAILED": Status.FAILED},
    failure_is_final=False,
)


class AcmeAccount(ProviderAccount):
    status_api_fields = ("api_key",)

    api_key: SecretRef | None = None
    timestamp_tolerance_seconds: int = 300


def sign(secret: str, timestamp: str, body: bytes) -> str:
    return hmac.new(secret.encode(), timestamp.encode() + b"." + body, hashlib.sha256).hexdigest()


def order_observations(
    doc: Mapping[str, Any], *, account: str, source: Source, observed_at: datetime
) -> list[Observation]:
    order_id = required_text(doc, "id", "id")
    status = required_text(doc, "status", "status")
    return [
        Observation(
            kind=Kind.STATUS,
            source=source,
            provider=NAME,
            account=account,
            merchant_ref=required_text(doc, "order", "order"),
            dedup_key=f"{NAME}:{account}:{order_id}:{status}",
            observed_at=observed_at,
            provider_ref=order_id,
            status=MAPPING.canonical(status),
            provider_status=status,
            amount_due=money(doc, "amount", "amount"),
            currency=doc.get("currency") if isinstance(doc.get("currency"), str) else None,
        )
    ]
