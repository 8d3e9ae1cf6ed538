"""Plural (Pine Labs Online): the scheme — account model, status mapping, the webhook and
return-URL signatures, and the order object webhooks and Get Order carry.

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
:func:`order_observations` reads both. The adapter (webhooks, the return URL) is in
providers/plural/adapter.py, the status-API client in providers/plural/status.py.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import re
from collections.abc import Mapping
from datetime import UTC, datetime
from decimal import Decimal
from typing import Any, Literal

from pydantic import Field, ValidationInfo, field_validator

from paysync.errors import MalformedMessage
from paysync.settings import Secret, SecretRef
from providers.base import ReturnPagesAccount
from providers.payload import load_json_object, required_text
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
MAX_TIMESTAMP_DIGITS = 15


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
