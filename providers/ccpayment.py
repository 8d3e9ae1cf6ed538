"""CCPayment (v1 API): callback signature, callback parsing and acknowledgement.

Scheme (providers/ccpayment.md): ``Sign`` = lowercase hex SHA-256 of
``appId + appSecret + Timestamp + raw_body`` (a plain hash, not an HMAC), with headers
``Appid`` and ``Timestamp`` (10-digit Unix seconds). A callback reports one on-chain
transaction (``record_id``); only ``pay_status=success`` credits money. The order status
is derived from the credits by the fold.
"""

from __future__ import annotations

import hashlib
import hmac
import json
from collections.abc import Mapping
from datetime import datetime
from decimal import Decimal, InvalidOperation
from typing import Any

from pydantic import Field

from paysync.errors import AuthenticationError, MalformedMessage
from paysync.settings import ProviderAccount
from providers.base import Ack, Verified
from schemas.envelope import Envelope
from schemas.mapping import StatusMapping
from schemas.observation import Kind, Observation, Source
from schemas.status import Status

NAME = "ccpayment"
HEADER_APP_ID = "Appid"
HEADER_TIMESTAMP = "Timestamp"
HEADER_SIGN = "Sign"

# Transaction states. Only ``success`` credits money (a credit observation); the others
# say a transaction exists and the order is still pending. The order status itself is
# derived from the credits by the fold.
MAPPING = StatusMapping(
    provider=NAME,
    statuses={
        "pending": Status.PENDING,
        "processing": Status.PENDING,
        "failed": Status.PENDING,
        "success": Status.PENDING,
    },
    # A failed transaction never fails the order: the customer may pay again.
    failure_is_final=False,
)


class CCPaymentAccount(ProviderAccount):
    app_id: str = Field(min_length=1)
    # design §8: retries may reuse the original timestamp; an authentic replay is harmless.
    timestamp_tolerance_seconds: int = Field(default=600, ge=1)


def sign(app_id: str, app_secret: str, timestamp: str, body: bytes) -> str:
    """The v1 ``Sign`` for a request or response body."""
    return hashlib.sha256((app_id + app_secret + timestamp).encode() + body).hexdigest()


class CCPaymentAdapter:
    name = NAME
    account_model = CCPaymentAccount
    callback_ack = Ack(status=200, body=b"success", content_type="text/plain")

    def verify_callback(
        self,
        account: ProviderAccount,
        headers: Mapping[str, str],
        body: bytes,
        now: datetime,
    ) -> Verified:
        assert isinstance(account, CCPaymentAccount)
        app_id, timestamp, given = (
            _header(headers, h) for h in (HEADER_APP_ID, HEADER_TIMESTAMP, HEADER_SIGN)
        )
        if not hmac.compare_digest(app_id.encode(), account.app_id.encode()):
            raise AuthenticationError("foreign_app_id")
        if len(timestamp) != 10 or not (timestamp.isascii() and timestamp.isdigit()):
            raise AuthenticationError("bad_timestamp", "Timestamp must be 10-digit Unix seconds")
        if abs(now.timestamp() - int(timestamp)) > account.timestamp_tolerance_seconds:
            raise AuthenticationError("stale_timestamp")
        given_bytes = given.strip().lower().encode()
        for secret in account.secrets:
            expected = sign(app_id, secret.reveal(), timestamp, body).encode()
            if hmac.compare_digest(expected, given_bytes):
                return Verified(secret_ref=secret.ref, http_headers={HEADER_TIMESTAMP: timestamp})
        raise AuthenticationError("bad_signature")

    def parse_callback(self, envelope: Envelope) -> list[Observation]:
        doc = _load_object(envelope.body)
        merchant_ref = _field(doc.get("extend"), "merchant_order_id", "extend.merchant_order_id")
        record_id = _field(doc, "record_id")
        pay_status = _field(doc, "pay_status")
        common: dict[str, Any] = {
            "source": Source.CALLBACK,
            "provider": NAME,
            "account": envelope.account,
            "merchant_ref": merchant_ref,
            "provider_ref": doc.get("order_id") if isinstance(doc.get("order_id"), str) else None,
            "observed_at": envelope.received_at,
            "record_id": record_id,
            "provider_status": pay_status,
            "amount_due": _money(doc, "order_amount"),
            "currency": doc.get("crypto") if isinstance(doc.get("crypto"), str) else None,
        }
        if pay_status == "success":
            return [
                Observation(
                    kind=Kind.CREDIT,
                    dedup_key=f"{NAME}:{envelope.account}:credit:{record_id}",
                    amount=_money(doc, "paid_amount", required=True),
                    **common,
                )
            ]
        return [
            Observation(
                kind=Kind.STATUS,
                dedup_key=f"{NAME}:{envelope.account}:tx:{record_id}:{pay_status}",
                # An unknown transaction status is recorded as-is and changes nothing.
                status=MAPPING.canonical(pay_status),
                **common,
            )
        ]


ADAPTER = CCPaymentAdapter()


def _header(headers: Mapping[str, str], name: str) -> str:
    value = headers.get(name)
    if not value:
        raise AuthenticationError("missing_header", name)
    return value


def _load_object(body: bytes) -> dict[str, Any]:
    try:
        # Amounts are decimal strings in the docs; parse_float keeps stray numbers exact too.
        doc = json.loads(body, parse_float=Decimal)
    except (ValueError, RecursionError) as exc:
        raise MalformedMessage(f"body is not JSON: {exc}") from None
    if not isinstance(doc, dict):
        raise MalformedMessage("body is not a JSON object")
    return doc


def _field(doc: object, key: str, label: str | None = None) -> str:
    value = doc.get(key) if isinstance(doc, dict) else None
    if not isinstance(value, str) or not value:
        raise MalformedMessage(f"{label or key} is missing or not a string")
    return value


def _money(doc: Mapping[str, Any], key: str, *, required: bool = False) -> Decimal | None:
    raw = doc.get(key)
    if raw is None and not required:
        return None
    try:
        value = Decimal(str(raw)) if isinstance(raw, str | int | Decimal) else None
    except InvalidOperation:
        value = None
    if value is None or not value.is_finite() or value < 0:
        raise MalformedMessage(f"{key} is not a non-negative decimal amount")
    return value
