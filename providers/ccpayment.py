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
from collections.abc import Mapping
from datetime import datetime
from typing import Any

from pydantic import Field

from paysync.errors import AuthenticationError
from paysync.settings import ProviderAccount
from providers.base import JSON_MEDIA_TYPES, Ack, ReturnUrlScheme, Verified
from providers.payload import load_json_object, money, required_header, required_text
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
    callback_media_types = JSON_MEDIA_TYPES
    # CCPayment's hosted page does not sign its redirect back to the merchant.
    returns: ReturnUrlScheme | None = None

    def verify_callback(
        self,
        account: ProviderAccount,
        headers: Mapping[str, str],
        body: bytes,
        now: datetime,
    ) -> Verified:
        assert isinstance(account, CCPaymentAccount)
        app_id, timestamp, given = (
            required_header(headers, h) for h in (HEADER_APP_ID, HEADER_TIMESTAMP, HEADER_SIGN)
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
        doc = load_json_object(envelope.body)
        merchant_ref = required_text(
            doc.get("extend"), "merchant_order_id", "extend.merchant_order_id"
        )
        record_id = required_text(doc, "record_id", "record_id")
        pay_status = required_text(doc, "pay_status", "pay_status")
        common: dict[str, Any] = {
            "source": Source.CALLBACK,
            "provider": NAME,
            "account": envelope.account,
            "merchant_ref": merchant_ref,
            "provider_ref": doc.get("order_id") if isinstance(doc.get("order_id"), str) else None,
            "observed_at": envelope.received_at,
            "record_id": record_id,
            "provider_status": pay_status,
            "amount_due": money(doc, "order_amount", "order_amount"),
            "currency": doc.get("crypto") if isinstance(doc.get("crypto"), str) else None,
        }
        if pay_status == "success":
            return [
                Observation(
                    kind=Kind.CREDIT,
                    dedup_key=f"{NAME}:{envelope.account}:credit:{record_id}",
                    amount=money(doc, "paid_amount", "paid_amount", required=True),
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
