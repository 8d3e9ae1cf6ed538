"""HDFC SmartGateway (Juspay): the scheme — account model, status mapping, the return URL's
signature and the order object webhooks and the status API carry (design §5 and §8,
providers/hdfc_smartgateway.md).

Two inbound schemes:

- **Webhooks** carry no body signature. Juspay sends the username and password set in the
  dashboard as HTTP Basic credentials; the JSON body is an envelope whose
  ``content.order`` is the full order object (the same shape as the Order Status API).
- **Return URL** (the customer's browser, GET query or POST form) is signed with
  ``validateHMAC_SHA256``: every parameter except ``signature`` and
  ``signature_algorithm``, each key and value percent-encoded, sorted by encoded key,
  joined ``k=v&...``, the whole string percent-encoded again, HMAC-SHA256 keyed with the
  dashboard Response Key's UTF-8 bytes, standard base64. The encoding flavour is not
  documented, so we try three variants (design §8) and record which one matched.

The Order Status API (``GET /orders/{order_id}``) answers the same order object as a
webhook's ``content.order``; :func:`order_observations` reads both. The adapter (webhooks,
the return URL) is in providers/hdfc/adapter.py, the status-API client in
providers/hdfc/status.py.

Amounts are rupees as decimals, never paise.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import re
from collections.abc import Callable, Mapping
from datetime import UTC, datetime
from typing import Any
from urllib.parse import quote, quote_plus, unquote

from pydantic import Field, field_validator

from paysync.errors import MalformedMessage
from paysync.settings import SecretRef
from providers.base import ReturnPagesAccount
from providers.payload import money, optional_text, required_text
from schemas.mapping import StatusMapping
from schemas.observation import Kind, Observation, Source
from schemas.status import Status

NAME = "hdfc"
HEADER_AUTHORIZATION = "Authorization"

MAPPING = StatusMapping(
    provider=NAME,
    statuses={
        "NEW": Status.PENDING,
        "PENDING": Status.PENDING,
        "PENDING_VBV": Status.PENDING,
        "VBV_SUCCESSFUL": Status.PENDING,
        "AUTHORIZING": Status.PENDING,
        "STARTED": Status.PENDING,
        "AUTHORIZED": Status.AUTHORIZED,
        # A capture or a void of a pre-auth is pending: the funds are still held.
        "CAPTURE_INITIATED": Status.AUTHORIZED,
        "VOID_INITIATED": Status.AUTHORIZED,
        # CHARGED after AUTHORIZED is a capture; the fold derives "captured" from both.
        "CHARGED": Status.PAID,
        "AUTHENTICATION_FAILED": Status.FAILED,
        "AUTHORIZATION_FAILED": Status.FAILED,
        "JUSPAY_DECLINED": Status.FAILED,
        # The capture of a pre-auth failed: no money was taken. When AUTHORIZED was seen
        # too, the fold keeps the higher "authorized" (the hold may still be captured).
        "CAPTURE_FAILED": Status.FAILED,
        "VOIDED": Status.CANCELLED,
        "AUTO_REFUNDED": Status.REFUNDED,
        # Deliberately unmapped, so they change nothing and are counted as unknown
        # vocabulary for an operator to look at (the doc's "open + alert"):
        # VOID_FAILED ("needs review": the hold stays, the merchant wanted it released),
        # PARTIAL_CHARGED and COD_INITIATED (ids and semantics unconfirmed),
        # NOT_FOUND (a status-API answer about an order, not a payment state).
    },
    # A Juspay order carries several attempts: a customer's retry can still charge it.
    failure_is_final=False,
)

# Numeric ``status_id`` of each status, as the redirect and the order object carry it.
STATUS_IDS: Mapping[str, int] = {
    "NEW": 10,
    "STARTED": 20,
    "CHARGED": 21,
    "JUSPAY_DECLINED": 22,
    "PENDING_VBV": 23,
    "VBV_SUCCESSFUL": 24,
    "AUTHENTICATION_FAILED": 26,
    "AUTHORIZATION_FAILED": 27,
    "AUTHORIZING": 28,
    "VOIDED": 31,
    "VOID_INITIATED": 32,
    "CAPTURE_INITIATED": 33,
    "CAPTURE_FAILED": 34,
    "VOID_FAILED": 35,
    "AUTO_REFUNDED": 36,
    "NOT_FOUND": 40,
}


class HdfcAccount(ReturnPagesAccount):
    """``secrets`` are the webhook passwords (several during a rotation)."""

    status_api_fields = ("api_key", "merchant_id")

    webhook_username: str = Field(min_length=1)
    # Dashboard Response Keys that sign the return URL (several during a rotation).
    response_keys: list[SecretRef] = Field(default_factory=list)
    # Juspay's merchant id, sent as ``x-merchantid`` to the status API.
    merchant_id: str | None = Field(default=None, min_length=1)
    # The Order Status API's key (the Basic username, with an empty password) and the
    # ``version`` date sent with it (the HDFC Node kit's; pinned, as the answer's shape may
    # depend on it).
    api_key: SecretRef | None = None
    api_version: str = Field(default="2024-06-24", pattern=r"^[0-9]{4}-[0-9]{2}-[0-9]{2}$")
    # For creating hosted checkouts (Session API, providers/hdfc/checkout.py): the payment
    # page's client id HDFC issues (sandbox ``hdfcmaster``) and the currencies enabled for
    # the merchant in the dashboard (Juspay refuses others).
    payment_page_client_id: str | None = Field(default=None, pattern=r"^[A-Za-z0-9_.-]{1,64}$")
    checkout_currencies: tuple[str, ...] = Field(default=("INR",), min_length=1)

    @field_validator("checkout_currencies")
    @classmethod
    def _currency_codes(cls, codes: tuple[str, ...]) -> tuple[str, ...]:
        for code in codes:
            if not re.fullmatch(r"[A-Z]{3}", code):
                raise ValueError(f"{code!r} is not an ISO 4217 code (three capital letters)")
        return codes


def api_authorization(api_key: str) -> str:
    """The ``Authorization`` header for Juspay's APIs: the key as a Basic username with an
    empty password (the documented form; the Node kit's colon-less variant is wrong)."""
    return "Basic " + base64.b64encode(f"{api_key}:".encode()).decode("ascii")


# --- return-URL signature -----------------------------------------------------------------

_Encoder = Callable[[str], str]
UNSIGNED_PARAMS = frozenset({"signature", "signature_algorithm"})


def _form(text: str) -> str:
    # Form style, space -> "+", as the doc's reference implementation. Java's URLEncoder
    # and PHP's urlencode also write "+" but differ on "*" and "~" (doc open question 1).
    return quote_plus(text, safe="")


def _rfc3986(text: str) -> str:
    # JS strictEncode style: space -> "%20", only unreserved characters left as they are.
    return quote(text, safe="")


def _verbatim(text: str) -> str:
    return text


# name -> (per-pair encoder, whole-string encoder), in the order they are tried.
RETURN_VARIANTS: Mapping[str, tuple[_Encoder, _Encoder]] = {
    "per_pair_form": (_form, _form),
    "per_pair_rfc3986": (_rfc3986, _rfc3986),
    # The HDFC Node/PHP kits skip the per-pair step (identical to per-pair while every
    # key and value is [A-Za-z0-9._-]); PHP's urlencode is form style.
    "joined_only": (_verbatim, _form),
}


def return_message(params: Mapping[str, str], variant: str = "per_pair_form") -> str:
    """The string that is HMACed: step 5 of ``validateHMAC_SHA256``."""
    per_pair, whole = RETURN_VARIANTS[variant]
    pairs = sorted(
        ((per_pair(k), per_pair(v)) for k, v in params.items() if k not in UNSIGNED_PARAMS),
        key=lambda pair: pair[0],
    )
    return whole("&".join(f"{k}={v}" for k, v in pairs))


def sign_return(params: Mapping[str, str], key: str, variant: str = "per_pair_form") -> str:
    """The base64 ``signature`` of a redirect's parameters under one encoding variant."""
    message = return_message(params, variant).encode("ascii")
    return base64.b64encode(hmac.new(key.encode(), message, hashlib.sha256).digest()).decode()


def received_signature(raw: str) -> str:
    """The signature as signed, from the value the form decoder gave us.

    Juspay double-encodes it in the URL, so one more percent-decoding is due; ``unquote``
    (not ``unquote_plus``) keeps base64's ``+``. A space can only be a ``+`` that a form
    decoder read from a singly-encoded value.
    """
    value = raw
    for _ in range(2):
        if "%" not in value:
            break
        value = unquote(value)
    return value.replace(" ", "+")


def order_observations(
    order: Mapping[str, Any], *, account: str, source: Source, observed_at: datetime
) -> list[Observation]:
    """The observations in one Juspay order object, a webhook's ``content.order`` or an
    Order Status API answer (the same shape, so a fact seen both ways has one dedup key):
    the order's status, stated at ``observed_at``, and each successful refund."""
    order_id = required_text(order, "order_id", "order.order_id")
    status = required_text(order, "status", "order.status")
    common: dict[str, Any] = {
        "source": source,
        "provider": NAME,
        "account": account,
        "merchant_ref": order_id,
        "provider_ref": optional_text(order, "id"),
        "amount_due": money(order, "amount", "order.amount"),
        "currency": optional_text(order, "currency"),
    }
    status_observation = Observation(
        kind=Kind.STATUS,
        dedup_key=f"{NAME}:{account}:{order_id}:status:{status}",
        observed_at=observed_at,
        # An unknown status is recorded as-is and changes nothing.
        status=MAPPING.canonical(status),
        provider_status=status,
        **common,
    )
    refunds = _refunds(order, f"{NAME}:{account}:{order_id}", observed_at, common)
    return [status_observation, *refunds]


def _refunds(
    order: Mapping[str, Any], key_prefix: str, observed_at: datetime, common: Mapping[str, Any]
) -> list[Observation]:
    """One observation per successful refund; the status API shows the same entries, so
    the key is the refund's own id, never a running total."""
    entries = order.get("refunds")
    if entries is None:
        return []
    if not isinstance(entries, list):
        raise MalformedMessage("order.refunds is not a list")
    found = []
    for entry in entries:
        if not isinstance(entry, dict):
            raise MalformedMessage("order.refunds has an entry that is not an object")
        # PENDING, FAILURE and MANUAL_REVIEW move no money (yet).
        if entry.get("status") != "SUCCESS":
            continue
        request_id = required_text(entry, "unique_request_id", "refunds[].unique_request_id")
        found.append(
            Observation(
                kind=Kind.REFUND,
                dedup_key=f"{key_prefix}:refund:{request_id}",
                observed_at=utc_time(entry.get("created")) or observed_at,
                provider_status="SUCCESS",
                record_id=request_id,
                amount=money(entry, "amount", "amount", required=True),
                **common,
            )
        )
    return found


def utc_time(value: object) -> datetime | None:
    """An ISO-8601 time as aware UTC; Juspay states UTC, so a naive one is read as UTC."""
    if not isinstance(value, str):
        return None
    try:
        parsed = datetime.fromisoformat(value)
    except ValueError:
        return None
    if parsed.tzinfo is None:
        parsed = parsed.replace(tzinfo=UTC)
    return parsed.astimezone(UTC)
