"""Plural (Pine Labs Online): webhook and return-URL signatures, parsing, status mapping.

Webhooks follow the Standard Webhooks layout (providers/plural.md): headers ``webhook-id``,
``webhook-timestamp`` (Unix seconds) and ``webhook-signature`` (space-separated
``v1,<base64>`` entries); the signature is ``base64(HMAC-SHA256(key, id "." ts "." body))``.
The key is the base64-decoded secret (Pine Labs' published vector) or, per account, the
secret's own bytes (the official Magento plugin); a ``whsec_`` prefix always means base64
(design §8). The body is ``{"event_type", "data": <order as in Get Order>}``.

The customer's redirect carries ``order_id``, ``status`` (or ``payment_status``), error
fields and ``signature`` = uppercase hex HMAC-SHA256 over the arriving fields (minus
``signature``) sorted by key and joined ``k=v`` with ``&``, unencoded, keyed with the
hex-decoded secret key. It is a hint to poll, never a status change.

Dedup keys name the raw Plural status, so the status API reporting the same order status
later produces the same key: ``plural:<account>:<order_id>:status:<STATUS>``.

Get Order (the status API) answers the same order object as a webhook's ``data``;
:func:`order_observations` reads both. Its client lives in providers/plural_status.py
(``PluralAdapter.status_api``).
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import re
from collections.abc import Iterable, Mapping
from datetime import UTC, datetime
from decimal import Decimal
from typing import Any, Literal

from pydantic import Field, ValidationInfo, field_validator

from paysync.errors import AuthenticationError, MalformedMessage
from paysync.settings import ProviderAccount, Secret, SecretRef
from providers.base import (
    JSON_MEDIA_TYPES,
    Ack,
    ReturnHint,
    ReturnPagesAccount,
    StatusApi,
    Verified,
    VerifiedReturn,
    parse_form,
)
from providers.payload import load_json_object, required_header, required_text
from schemas.envelope import Envelope
from schemas.mapping import StatusMapping
from schemas.observation import Kind, Observation, Source
from schemas.status import Status

NAME = "plural"
HEADER_ID = "webhook-id"
HEADER_TIMESTAMP = "webhook-timestamp"
HEADER_SIGNATURE = "webhook-signature"
WHSEC_PREFIX = "whsec_"
SIGNATURE_PARAM = "signature"
STATUS_PARAMS = ("status", "payment_status")
# Plural amounts are integers in the currency's minor unit; only INR is documented.
MINOR_UNIT_EXPONENTS = {"INR": 2}

KeyEncoding = Literal["base64", "raw"]

MAPPING = StatusMapping(
    provider=NAME,
    statuses={
        "CREATED": Status.PENDING,
        "PENDING": Status.PENDING,
        "ATTEMPTED": Status.PENDING,
        "AUTHORIZED": Status.AUTHORIZED,
        # PROCESSED on a pre-auth order is a capture; the fold derives it from AUTHORIZED.
        "PROCESSED": Status.PAID,
        "CANCELLED": Status.CANCELLED,
        "FAILED": Status.FAILED,
        "PARTIALLY_REFUNDED": Status.PARTIALLY_REFUNDED,
        "FULLY_REFUNDED": Status.REFUNDED,
    },
    # FAILED is final per Plural's docs (ATTEMPTED exists for retryable failures).
    failure_is_final=True,
)

_HEX = re.compile(r"(?:[0-9A-Fa-f]{2})+")
# Longer than any Unix time in seconds for millennia: outside every tolerance, and keeps
# int() away from its digit limit.
_MAX_TIMESTAMP_DIGITS = 15


def webhook_key(secret: str, encoding: KeyEncoding) -> tuple[KeyEncoding, bytes]:
    """The HMAC key a webhook secret stands for, and the encoding that produced it.

    Raises ``ValueError`` (without the secret in it) when the secret cannot be decoded.
    """
    if secret.startswith(WHSEC_PREFIX):
        secret, encoding = secret[len(WHSEC_PREFIX) :], "base64"
    if encoding == "raw":
        return encoding, secret.encode("utf-8")
    try:
        key = base64.b64decode(secret, validate=True)
    except (binascii.Error, ValueError):
        raise ValueError("is not valid base64") from None
    if not key:
        raise ValueError("decodes to an empty key")
    return encoding, key


def webhook_signature(msg_id: str, timestamp: str, body: bytes, key: bytes) -> bytes:
    """The raw HMAC-SHA256 of a webhook (the header carries its base64 after ``v1,``)."""
    # surrogateescape restores the header's exact bytes as aiohttp decoded them.
    signed = f"{msg_id}.{timestamp}.".encode("utf-8", "surrogateescape") + body
    return hmac.new(key, signed, hashlib.sha256).digest()


def return_signature(params: Mapping[str, str], hex_key: str) -> str:
    """The uppercase hex signature of a redirect's decoded parameters."""
    message = "&".join(f"{k}={params[k]}" for k in sorted(params) if k != SIGNATURE_PARAM)
    mac = hmac.new(bytes.fromhex(hex_key), message.encode("utf-8"), hashlib.sha256)
    return mac.hexdigest().upper()


class PluralAccount(ReturnPagesAccount):
    status_api_fields = ("client_id", "client_secret")

    # ``secrets`` (inherited) are the webhook secrets; several during a rotation.
    webhook_key_encoding: KeyEncoding = Field(default="base64", validate_default=True)
    timestamp_tolerance_seconds: int = Field(default=300, ge=1)
    # Hex secret keys for the return-URL signature.
    return_keys: list[SecretRef] = Field(default_factory=list)
    # For the status API (token from client_id + client_secret).
    client_id: str | None = Field(default=None, min_length=1)
    client_secret: SecretRef | None = None

    @field_validator("webhook_key_encoding")
    @classmethod
    def _secrets_decode(cls, encoding: KeyEncoding, info: ValidationInfo) -> KeyEncoding:
        # Runs after ``secrets`` (declared first); says which secret, never its value.
        for i, secret in enumerate(info.data.get("secrets", [])):
            try:
                webhook_key(secret.reveal(), encoding)
            except ValueError as exc:
                raise ValueError(
                    f"secrets[{i}] ({secret.ref}) {exc} under webhook_key_encoding "
                    f'"{encoding}" (use "raw" for a secret used as plain text)'
                ) from None
        return encoding

    @field_validator("return_keys")
    @classmethod
    def _return_keys_are_hex(cls, keys: list[Secret]) -> list[Secret]:
        for i, key in enumerate(keys):
            if not _HEX.fullmatch(key.reveal()):
                raise ValueError(f"return_keys[{i}] ({key.ref}) is not an even-length hex string")
        return keys


class PluralReturns:
    """The signed redirect back from Plural's hosted checkout."""

    def verify_return(
        self, account: ProviderAccount, params: Mapping[str, str], now: datetime
    ) -> VerifiedReturn:
        assert isinstance(account, PluralAccount)
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
    callback_ack = Ack(status=200, body=b"", content_type="text/plain")
    callback_media_types = JSON_MEDIA_TYPES
    returns = PluralReturns()

    @property
    def status_api(self) -> StatusApi:
        # Imported on use: that module builds on this one (the account, the order parser).
        from providers.plural_status import PluralStatusApi

        return PluralStatusApi()

    def verify_callback(
        self,
        account: ProviderAccount,
        headers: Mapping[str, str],
        body: bytes,
        now: datetime,
    ) -> Verified:
        assert isinstance(account, PluralAccount)
        msg_id, timestamp, header = (
            required_header(headers, h) for h in (HEADER_ID, HEADER_TIMESTAMP, HEADER_SIGNATURE)
        )
        if not (timestamp.isascii() and timestamp.isdigit()):
            raise AuthenticationError("bad_timestamp", "webhook-timestamp must be Unix seconds")
        if (
            len(timestamp) > _MAX_TIMESTAMP_DIGITS
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


def order_observations(
    order: Mapping[str, Any],
    *,
    account: str,
    source: Source,
    observed_at: datetime,
    record_id: str | None = None,
) -> list[Observation]:
    """What an order object (a webhook's or Get Order's ``data``) says, for either source."""
    order_id = required_text(order, "order_id", "data.order_id")
    provider_status = required_text(order, "status", "data.status")
    status = MAPPING.canonical(provider_status)
    if _pre_auth(order) and provider_status == "PROCESSED":
        status = Status.CAPTURED
    amount_due, currency = _order_amount(order.get("order_amount"))
    return [
        Observation(
            kind=Kind.STATUS,
            source=source,
            provider=NAME,
            account=account,
            merchant_ref=required_text(
                order, "merchant_order_reference", "data.merchant_order_reference"
            ),
            dedup_key=f"{NAME}:{account}:{order_id}:status:{provider_status}",
            observed_at=observed_at,
            provider_ref=order_id,
            status=status,
            provider_status=provider_status,
            record_id=record_id,
            amount_due=amount_due,
            currency=currency,
        )
    ]


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


def load_order(body: bytes) -> dict[str, Any]:
    """The order object (``data``) of a webhook body or a Get Order answer."""
    order = load_json_object(body).get("data")
    if not isinstance(order, dict):
        raise MalformedMessage("data is missing or not a JSON object")
    return order


def _pre_auth(order: Mapping[str, Any]) -> bool:
    value = order.get("pre_auth")
    if value is not None and not isinstance(value, bool):
        raise MalformedMessage("data.pre_auth is not a boolean")
    return value is True


def _order_amount(raw: object) -> tuple[Decimal | None, str | None]:
    """``order_amount`` in major units: ``{"value": 125000, "currency": "INR"}`` → 1250.00."""
    if raw is None:
        return None, None
    if not isinstance(raw, dict):
        raise MalformedMessage("data.order_amount is not a JSON object")
    value, currency = raw.get("value"), raw.get("currency")
    if isinstance(value, int) and not isinstance(value, bool) and value >= 0:
        digits = str(value)
    elif isinstance(value, str) and value.isascii() and value.isdigit():
        digits = value
    else:
        raise MalformedMessage("data.order_amount.value is not a non-negative integer")
    if not isinstance(currency, str) or currency not in MINOR_UNIT_EXPONENTS:
        raise MalformedMessage("data.order_amount.currency is missing or has no known minor unit")
    # Built from the digits, so it is exact at any size (no context rounding).
    return Decimal(f"{digits}E-{MINOR_UNIT_EXPONENTS[currency]}"), currency


def stated_time(order: Mapping[str, Any]) -> datetime | None:
    """The time the order last changed, when the order states it."""
    stated = order.get("updated_at")
    if stated is None:
        return None
    try:
        when = datetime.fromisoformat(stated) if isinstance(stated, str) else None
    except ValueError:
        when = None
    if when is None or when.tzinfo is None:
        raise MalformedMessage("data.updated_at is not an ISO-8601 time with a zone")
    return when.astimezone(UTC)


def _sent_time(envelope: Envelope) -> datetime:
    """When the webhook was sent (its signed timestamp), else when it arrived."""
    sent = envelope.http_headers.get(HEADER_TIMESTAMP)
    if sent is None:
        return envelope.received_at
    if not (sent.isascii() and sent.isdigit()) or len(sent) > _MAX_TIMESTAMP_DIGITS:
        raise MalformedMessage("webhook-timestamp in the envelope is not Unix seconds")
    return datetime.fromtimestamp(int(sent), tz=UTC)
