"""CCPayment's adapter: verifies a callback's ``Appid``/``Timestamp``/``Sign`` headers,
parses it (a ``success`` transfer is a credit, any other state a pending status), and
acknowledges with the ``success`` body CCPayment requires."""

from __future__ import annotations

import hmac
from collections.abc import Mapping
from datetime import datetime
from typing import Any

from paysync.errors import AuthenticationError
from providers.base import JSON_MEDIA_TYPES, Ack, Verified
from providers.ccpayment.checkout import CCPaymentCheckoutApi
from providers.ccpayment.scheme import (
    HEADER_APP_ID,
    HEADER_SIGN,
    HEADER_TIMESTAMP,
    MAPPING,
    NAME,
    CCPaymentAccount,
    credit_observation,
    header_bytes,
    matching_secret,
    order_terms,
    required_money,
)
from providers.ccpayment.status import CCPaymentStatusApi
from providers.payload import load_json_object, optional_text, required_header, required_text
from schemas.envelope import Envelope
from schemas.observation import Kind, Observation, Source


class CCPaymentAdapter:
    name = NAME
    account_model = CCPaymentAccount
    mapping = MAPPING
    callback_ack = Ack(status=200, body=b"success", content_type="text/plain")
    callback_media_types = JSON_MEDIA_TYPES
    # CCPayment's hosted page does not sign its redirect back to the merchant.
    returns = None

    status_api = CCPaymentStatusApi()
    checkout_api = CCPaymentCheckoutApi()

    def verify_callback(
        self,
        account: CCPaymentAccount,
        headers: Mapping[str, str],
        body: bytes,
        now: datetime,
    ) -> Verified:
        app_id, timestamp, given = (
            required_header(headers, h) for h in (HEADER_APP_ID, HEADER_TIMESTAMP, HEADER_SIGN)
        )
        # Header values are bytes to an attacker: aiohttp keeps non-UTF-8 ones as surrogates.
        if not hmac.compare_digest(header_bytes(app_id), account.app_id.encode()):
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
        terms = order_terms(doc)
        common: dict[str, Any] = {
            "source": Source.CALLBACK,
            "account": envelope.account,
            "merchant_ref": merchant_ref,
            "provider_ref": optional_text(doc, "order_id"),
            "observed_at": envelope.received_at,
            "record_id": record_id,
            "provider_status": pay_status,
        }
        if pay_status == "success":
            return [
                credit_observation(
                    txid=required_text(doc, "txid", "txid"),
                    paid=required_money(doc, "paid_amount", "paid_amount"),
                    terms=terms,
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
                amount_due=terms.amount_due,
                currency=terms.currency,
                **common,
            )
        ]


ADAPTER = CCPaymentAdapter()
