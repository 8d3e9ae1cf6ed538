"""Acme's adapter: the signature and timestamp, the order parsed, ``200`` as the ack."""

from __future__ import annotations

import hmac
from collections.abc import Mapping
from datetime import datetime

from paysync.errors import AuthenticationError
from providers.base import JSON_MEDIA_TYPES, Ack, Verified
from providers.payload import load_json_object, required_header
from schemas.envelope import Envelope
from schemas.observation import Observation, Source
from tests.fake_provider.scheme import (
    HEADER_SIGNATURE,
    HEADER_TIMESTAMP,
    MAPPING,
    NAME,
    AcmeAccount,
    order_observations,
    sign,
)
from tests.fake_provider.status import AcmeStatusApi


class AcmeAdapter:
    name = NAME
    account_model = AcmeAccount
    mapping = MAPPING
    callback_ack = Ack(status=200, body=b"", content_type="text/plain")
    callback_media_types = JSON_MEDIA_TYPES
    returns = None
    status_api = AcmeStatusApi()
    # Not yet: POST /v1/checkouts answers 501 for this provider.
    checkout_api = None

    def verify_callback(
        self, account: AcmeAccount, headers: Mapping[str, str], body: bytes, now: datetime
    ) -> Verified:
        given = required_header(headers, HEADER_SIGNATURE).encode("utf-8", "surrogateescape")
        timestamp = required_header(headers, HEADER_TIMESTAMP)
        if not (timestamp.isascii() and timestamp.isdigit()) or len(timestamp) > 12:
            raise AuthenticationError("bad_timestamp")
        if abs(now.timestamp() - int(timestamp)) > account.timestamp_tolerance_seconds:
            raise AuthenticationError("stale_timestamp")
        matched = None
        for secret in account.secrets:
            expected = sign(secret.reveal(), timestamp, body).encode()
            if hmac.compare_digest(expected, given) and matched is None:
                matched = secret.ref
        if matched is None:
            raise AuthenticationError("bad_signature")
        return Verified(secret_ref=matched)

    def parse_callback(self, envelope: Envelope) -> list[Observation]:
        return order_observations(
            load_json_object(envelope.body),
            account=envelope.account,
            source=Source.CALLBACK,
            observed_at=envelope.received_at,
        )


ADAPTER = AcmeAdapter()
