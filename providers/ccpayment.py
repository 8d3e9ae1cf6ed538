"""CCPayment (v1 API): callback signature, callback parsing and acknowledgement, and the
credit observations the status API shares with callbacks.

Scheme (providers/ccpayment.md): ``Sign`` = lowercase hex SHA-256 of
``appId + appSecret + Timestamp + raw_body`` (a plain hash, not an HMAC), with headers
``Appid`` and ``Timestamp`` (10-digit Unix seconds). A callback reports one on-chain
transaction (``record_id``); only ``pay_status=success`` credits money. The order status
is derived from the credits by the fold.

The status API (``POST /ccpayment/v1/bill/info``) is signed like a callback, and its
``trade_list`` entries are credits keyed like the webhook's (by ``txid``: see
:func:`credit_key`), so a transfer seen both ways is counted once. Its client lives in
providers/ccpayment_status.py (``CCPaymentAdapter.status_api``).
"""

from __future__ import annotations

import hashlib
import hmac
from collections.abc import Mapping
from datetime import datetime
from decimal import Decimal
from typing import Any

from pydantic import Field

from paysync.errors import AuthenticationError
from paysync.settings import ProviderAccount
from providers.base import JSON_MEDIA_TYPES, Ack, ReturnUrlScheme, StatusApi, Verified
from providers.payload import (
    load_json_object,
    money,
    optional_text,
    required_header,
    required_text,
)
from schemas.envelope import Envelope
from schemas.mapping import StatusMapping
from schemas.observation import Kind, Observation, Source
from schemas.status import Status

NAME = "ccpayment"
HEADER_APP_ID = "Appid"
HEADER_TIMESTAMP = "Timestamp"
HEADER_SIGN = "Sign"
CONTENT_TYPE = "application/json; charset=utf-8"

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
    # ``secrets`` (inherited) are the app secrets; the first signs status-API requests.
    app_id: str = Field(min_length=1)
    # design §8: retries may reuse the original timestamp; an authentic replay is harmless.
    timestamp_tolerance_seconds: int = Field(default=600, ge=1)


def sign(app_id: str, app_secret: str, timestamp: str, body: bytes) -> str:
    """The v1 ``Sign`` for a request or response body."""
    return hashlib.sha256((app_id + app_secret + timestamp).encode() + body).hexdigest()


def credit_key(account: str, merchant_ref: str, txid: str, amount: Decimal) -> str:
    """The dedup key of one credited transfer, the same from the webhook and the status API.

    The status API's ``trade_list`` names a transfer only by its ``txid`` (it has no
    ``record_id``), so both sides key credits by ``txid``. CCPayment puts a label such as
    ``internal transfer`` in place of a hash for internal moves; a label repeats across
    transfers, so the amount is added to tell them apart. Two identical labelled transfers
    of the same amount on one order then count once: the order shows underpaid, for review,
    never money counted twice.
    """
    if any(ch.isspace() for ch in txid):
        return f"{NAME}:{account}:{merchant_ref}:credit:{txid}|{_plain(amount)}"
    return f"{NAME}:{account}:{merchant_ref}:credit:{txid}"


def credit_observation(
    *,
    source: Source,
    account: str,
    merchant_ref: str,
    txid: str,
    amount: Decimal,
    observed_at: datetime,
    provider_status: str | None,
    record_id: str | None = None,
    provider_ref: str | None = None,
    amount_due: Decimal | None = None,
    currency: str | None = None,
) -> Observation:
    """One credited transfer, as the webhook or the status API reports it."""
    return Observation(
        kind=Kind.CREDIT,
        source=source,
        provider=NAME,
        account=account,
        merchant_ref=merchant_ref,
        dedup_key=credit_key(account, merchant_ref, txid, amount),
        observed_at=observed_at,
        provider_ref=provider_ref,
        provider_status=provider_status,
        record_id=record_id,
        amount=amount,
        amount_due=amount_due,
        currency=currency,
    )


class CCPaymentAdapter:
    name = NAME
    account_model = CCPaymentAccount
    callback_ack = Ack(status=200, body=b"success", content_type="text/plain")
    callback_media_types = JSON_MEDIA_TYPES
    # CCPayment's hosted page does not sign its redirect back to the merchant.
    returns: ReturnUrlScheme | None = None

    @property
    def status_api(self) -> StatusApi:
        # Imported on use: that module builds on this one (the account, the signature, the
        # credit observation).
        from providers.ccpayment_status import CCPaymentStatusApi

        return CCPaymentStatusApi()

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
        # Header values are bytes to an attacker: aiohttp keeps non-UTF-8 ones as surrogates.
        if not hmac.compare_digest(_raw(app_id), account.app_id.encode()):
            raise AuthenticationError("foreign_app_id")
        if len(timestamp) != 10 or not (timestamp.isascii() and timestamp.isdigit()):
            raise AuthenticationError("bad_timestamp", "Timestamp must be 10-digit Unix seconds")
        if abs(now.timestamp() - int(timestamp)) > account.timestamp_tolerance_seconds:
            raise AuthenticationError("stale_timestamp")
        secret = matching_secret(account, app_id, timestamp, body, given)
        if secret is None:
            raise AuthenticationError("bad_signature")
        return Verified(secret_ref=secret, http_headers={HEADER_TIMESTAMP: timestamp})

    def parse_callback(self, envelope: Envelope) -> list[Observation]:
        doc = load_json_object(envelope.body)
        merchant_ref = required_text(
            doc.get("extend"), "merchant_order_id", "extend.merchant_order_id"
        )
        record_id = required_text(doc, "record_id", "record_id")
        pay_status = required_text(doc, "pay_status", "pay_status")
        common: dict[str, Any] = {
            "source": Source.CALLBACK,
            "account": envelope.account,
            "merchant_ref": merchant_ref,
            "provider_ref": optional_text(doc, "order_id"),
            "observed_at": envelope.received_at,
            "record_id": record_id,
            "provider_status": pay_status,
            "amount_due": money(doc, "order_amount", "order_amount"),
            "currency": optional_text(doc, "crypto"),
        }
        if pay_status == "success":
            return [
                credit_observation(
                    txid=required_text(doc, "txid", "txid"),
                    amount=required_money(doc, "paid_amount", "paid_amount"),
                    **common,
                )
            ]
        return [
            Observation(
                kind=Kind.STATUS,
                provider=NAME,
                dedup_key=f"{NAME}:{envelope.account}:tx:{record_id}:{pay_status}",
                # An unknown transaction status is recorded as-is and changes nothing.
                status=MAPPING.canonical(pay_status),
                **common,
            )
        ]


ADAPTER = CCPaymentAdapter()


def matching_secret(
    account: CCPaymentAccount, app_id: str, timestamp: str, body: bytes, given: str
) -> str | None:
    """The ref of the secret that signed ``body``; every secret is tried (constant time)."""
    given_bytes = _raw(given.strip().lower())
    matched = None
    for secret in account.secrets:
        expected = sign(app_id, secret.reveal(), timestamp, body).encode()
        if hmac.compare_digest(expected, given_bytes) and matched is None:
            matched = secret.ref
    return matched


def _raw(header_value: str) -> bytes:
    """A header value's bytes, whatever they are (never an exception, never a 500)."""
    return header_value.encode("utf-8", "surrogateescape")


def required_money(doc: Mapping[str, Any], key: str, label: str) -> Decimal:
    """A required amount (a callback's ``paid_amount``, a status answer's trade ``amount``)."""
    value = money(doc, key, label, required=True)
    assert value is not None  # required=True raises instead
    return value


def _plain(amount: Decimal) -> str:
    """``amount`` without an exponent or trailing zeros, exactly (no context rounding)."""
    text = format(amount, "f")
    return text.rstrip("0").rstrip(".") if "." in text else text
