"""Plural's adapter: Standard Webhooks signatures (every secret against every ``v1``
entry, the timestamp within tolerance), the signed return URL, and the ``200`` ack."""

from __future__ import annotations

import base64
import binascii
import hmac
from collections.abc import Iterable, Mapping
from datetime import UTC, datetime

from paysync.errors import AuthenticationError, MalformedMessage
from paysync.settings import Secret
from providers.base import (
    JSON_MEDIA_TYPES,
    Ack,
    ReturnHint,
    Verified,
    VerifiedReturn,
    parse_form,
)
from providers.payload import required_header
from providers.plural.checkout import PluralCheckoutApi
from providers.plural.scheme import (
    HEADER_ID,
    HEADER_SIGNATURE,
    HEADER_TIMESTAMP,
    MAPPING,
    MAX_TIMESTAMP_DIGITS,
    NAME,
    SIGNATURE_PARAM,
    STATUS_PARAMS,
    KeyEncoding,
    PluralAccount,
    load_order,
    order_observations,
    return_signature,
    stated_time,
    webhook_key,
    webhook_signature,
)
from providers.plural.status import PluralStatusApi
from schemas.envelope import Envelope
from schemas.observation import Observation, Source


class PluralReturns:
    """The signed redirect back from Plural's hosted checkout."""

    def verify_return(
        self, account: PluralAccount, params: Mapping[str, str], now: datetime
    ) -> VerifiedReturn:
        if not account.return_keys:
            raise AuthenticationError("return_not_configured")
        given = _param(params, SIGNATURE_PARAM, AuthenticationError("missing_parameter"))
        order_id = _param(params, "order_id", AuthenticationError("missing_parameter"))
        field, provider_status = _return_status(params, AuthenticationError("missing_parameter"))
        given_bytes = given.upper().encode("utf-8")
        matched: Secret | None = None
        for key in account.return_keys:
            expected = return_signature(params, key.reveal()).encode("ascii")
            if hmac.compare_digest(expected, given_bytes) and matched is None:
                matched = key
        if matched is None:
            raise AuthenticationError("bad_signature")
        return VerifiedReturn(
            secret_ref=matched.ref,
            # Which status field arrived: open question 3 of providers/plural.md.
            variant=field,
            order_id=order_id,
            provider_status=provider_status,
            status=MAPPING.canonical(provider_status),
        )

    def parse_return(self, envelope: Envelope) -> ReturnHint:
        params = parse_form(envelope.body)
        order_id = _param(params, "order_id", MalformedMessage("order_id is missing"))
        _, provider_status = _return_status(params, MalformedMessage("status is missing"))
        return ReturnHint(
            provider=NAME,
            account=envelope.account,
            merchant_ref=None,
            provider_ref=order_id,
            provider_status=provider_status,
            observed_at=envelope.received_at,
            dedup_key=f"{NAME}:{envelope.account}:{order_id}:return:{provider_status}",
        )


class PluralAdapter:
    name = NAME
    account_model = PluralAccount
    mapping = MAPPING
    callback_ack = Ack(status=200, body=b"", content_type="text/plain")
    callback_media_types = JSON_MEDIA_TYPES
    returns = PluralReturns()

    status_api = PluralStatusApi()
    # POST /v1/checkouts: Create Hosted Checkout (providers/plural/checkout.py).
    checkout_api = PluralCheckoutApi()

    def verify_callback(
        self,
        account: PluralAccount,
        headers: Mapping[str, str],
        body: bytes,
        now: datetime,
    ) -> Verified:
        msg_id, timestamp, header = (
            required_header(headers, h) for h in (HEADER_ID, HEADER_TIMESTAMP, HEADER_SIGNATURE)
        )
        if not (timestamp.isascii() and timestamp.isdigit()):
            raise AuthenticationError("bad_timestamp", "webhook-timestamp must be Unix seconds")
        if (
            len(timestamp) > MAX_TIMESTAMP_DIGITS
            or abs(now.timestamp() - int(timestamp)) > account.timestamp_tolerance_seconds
        ):
            raise AuthenticationError("stale_timestamp")
        given = list(_v1_signatures(header))
        matched: tuple[Secret, KeyEncoding] | None = None
        # Every secret against every entry, so timing does not tell which one matched.
        for secret in account.secrets:
            encoding, key = webhook_key(secret.reveal(), account.webhook_key_encoding)
            expected = webhook_signature(msg_id, timestamp, body, key)
            for candidate in given:
                if hmac.compare_digest(expected, candidate) and matched is None:
                    matched = (secret, encoding)
        if matched is None:
            raise AuthenticationError("bad_signature")
        return Verified(
            secret_ref=matched[0].ref,
            http_headers={HEADER_ID: msg_id, HEADER_TIMESTAMP: timestamp},
            variant=matched[1],
            replay_key=msg_id,
        )

    def parse_callback(self, envelope: Envelope) -> list[Observation]:
        order = load_order(envelope.body)
        return order_observations(
            order,
            account=envelope.account,
            source=Source.CALLBACK,
            observed_at=stated_time(order) or _sent_time(envelope),
            record_id=envelope.http_headers.get(HEADER_ID) or None,
        )


ADAPTER = PluralAdapter()


def _v1_signatures(header: str) -> Iterable[bytes]:
    """The decoded ``v1`` entries; other versions and undecodable entries are ignored."""
    for entry in header.split():
        version, _, value = entry.partition(",")
        if version != "v1":
            continue
        try:
            yield base64.b64decode(value, validate=True)
        except (binascii.Error, ValueError):
            continue


def _param(params: Mapping[str, str], name: str, error: Exception) -> str:
    value = params.get(name)
    if not value:
        raise error
    return value


def _return_status(params: Mapping[str, str], error: Exception) -> tuple[str, str]:
    for name in STATUS_PARAMS:
        if value := params.get(name):
            return name, value
    raise error


def _sent_time(envelope: Envelope) -> datetime:
    """When the webhook was sent (its signed timestamp), else when it arrived."""
    sent = envelope.http_headers.get(HEADER_TIMESTAMP)
    if sent is None:
        return envelope.received_at
    if not (sent.isascii() and sent.isdigit()) or len(sent) > MAX_TIMESTAMP_DIGITS:
        raise MalformedMessage("webhook-timestamp in the envelope is not Unix seconds")
    return datetime.fromtimestamp(int(sent), tz=UTC)
