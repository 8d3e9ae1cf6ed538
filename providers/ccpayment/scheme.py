"""CCPayment (v1 API): the scheme — account model, status mapping, the signature, and the
credit observations callbacks and the status API share.

Scheme (providers/ccpayment.md): ``Sign`` = lowercase hex SHA-256 of
``appId + appSecret + Timestamp + raw_body`` (a plain hash, not an HMAC), with headers
``Appid`` and ``Timestamp`` (10-digit Unix seconds). A callback reports one on-chain
transaction (``record_id``); only ``pay_status=success`` credits money. The order status
is derived from the credits by the fold.

Amounts are tracked in the order's **price**: the merchant registers what it priced (25
USD), and the callbacks state the same price (``product_price``, ``denominated_currency``)
beside the crypto due for it (``order_amount``, in ``crypto``). Each credited transfer is
valued as its share of the crypto due times the price (:func:`price_value`), so a payment
of exactly the crypto due is exactly the price, as CCPayment itself counts it (a price
reached by ``paid_amount * token_rate`` would leave 25.012 USDT at 0.9995 short of 25).
An order without a stated price (or priced in the token it is paid in) stays in the token.

The status API (``POST /ccpayment/v1/bill/info``) is signed like a callback, and its
``trade_list`` entries are credits keyed like the webhook's (by ``txid``: see
:func:`credit_key`), so a transfer seen both ways is counted once. The adapter
(verification, parsing, the ack) is in providers/ccpayment/adapter.py, the status-API
client in providers/ccpayment/status.py.
"""

from __future__ import annotations

import hashlib
import hmac
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime
from decimal import Decimal
from fractions import Fraction
from typing import Any

from pydantic import Field

from paysync.errors import MalformedMessage, ProviderRefused
from paysync.settings import ProviderAccount
from providers.base import HttpAnswer, HttpCall
from providers.payload import money, optional_text
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


# A price keeps at least a cent's decimals (CCPayment prices have at most two).
_PRICE_PLACES = 2


def price_value(paid: Decimal, *, price: Decimal, due: Decimal) -> Decimal:
    """What a transfer of ``paid`` (crypto) is worth in the order's price currency: its
    share of the crypto ``due``, times ``price``. Computed exactly as a fraction, then
    rounded half-even to the price's decimals (at least two) — the one rounding money
    undergoes, since a share of a price rarely has a finite decimal form. One transfer of
    exactly the due is exactly the price; transfers making up the due round to it too,
    unless several each land within half a cent of a rounding boundary. At a rate of one
    (the price and the due are the same figure) the transfer is its own value, unrounded.
    """
    if due <= 0:
        raise MalformedMessage("order_amount must be greater than zero to value a transfer")
    if price == due:
        return paid
    exponent = price.as_tuple().exponent
    places = max(_PRICE_PLACES, -exponent if isinstance(exponent, int) else 0)
    share = Fraction(paid) * Fraction(price) / Fraction(due)
    # round() of a Fraction is exact and half-even; the string form keeps every digit.
    return Decimal(f"{round(share * 10**places)}E-{places}")


@dataclass(frozen=True, slots=True, kw_only=True)
class Terms:
    """An order's terms in the currency paysync tracks it in, and how a transfer in the
    order's crypto converts to it (``price``/``due`` set: by :func:`price_value`)."""

    amount_due: Decimal | None
    currency: str | None
    price: Decimal | None = None
    due: Decimal | None = None

    def value(self, paid: Decimal) -> Decimal:
        if self.price is None or self.due is None:
            return paid
        return price_value(paid, price=self.price, due=self.due)


def order_terms(doc: Mapping[str, Any], prefix: str = "") -> Terms:
    """The terms a callback body or an order-info ``order_detail`` states: the price when
    it states one in another currency than the token paid, else the crypto due."""
    price = money(doc, "product_price", f"{prefix}product_price")
    priced_in = optional_text(doc, "denominated_currency")
    due = money(doc, "order_amount", f"{prefix}order_amount")
    crypto = optional_text(doc, "crypto")
    if price is None or priced_in is None or due is None or priced_in == crypto:
        return Terms(amount_due=due, currency=crypto)
    return Terms(amount_due=price, currency=priced_in, price=price, due=due)


def credit_observation(
    *,
    source: Source,
    account: str,
    merchant_ref: str,
    txid: str,
    paid: Decimal,
    terms: Terms,
    observed_at: datetime,
    provider_status: str | None,
    record_id: str | None = None,
    provider_ref: str | None = None,
    currency: str | None = None,
) -> Observation:
    """One credited transfer of ``paid`` (the order's crypto), as the webhook or the status
    API reports it, valued by ``terms``; ``currency`` when the terms name none."""
    return Observation(
        kind=Kind.CREDIT,
        source=source,
        provider=NAME,
        account=account,
        merchant_ref=merchant_ref,
        dedup_key=credit_key(account, merchant_ref, txid, paid),
        observed_at=observed_at,
        provider_ref=provider_ref,
        provider_status=provider_status,
        record_id=record_id,
        amount=terms.value(paid),
        amount_due=terms.amount_due,
        currency=terms.currency or currency,
    )


def matching_secret(
    account: CCPaymentAccount, app_id: str, timestamp: str, body: bytes, given: str
) -> str | None:
    """The ref of the secret that signed ``body``; every secret is tried (constant time)."""
    given_bytes = header_bytes(given.strip().lower())
    matched = None
    for secret in account.secrets:
        expected = sign(app_id, secret.reveal(), timestamp, body).encode()
        if hmac.compare_digest(expected, given_bytes) and matched is None:
            matched = secret.ref
    return matched


def signed_headers(account: CCPaymentAccount, body: bytes, now: datetime) -> dict[str, str]:
    """The headers of a request to CCPayment's API, signed with the account's first secret."""
    app_id, timestamp = account.app_id, str(int(now.timestamp()))
    return {
        HEADER_APP_ID: app_id,
        HEADER_TIMESTAMP: timestamp,
        HEADER_SIGN: sign(app_id, account.secrets[0].reveal(), timestamp, body),
        "Content-Type": CONTENT_TYPE,
    }


async def signed_post(
    call: HttpCall, url: str, account: CCPaymentAccount, body: bytes, now: datetime
) -> HttpAnswer:
    """POST ``body`` signed to CCPayment's API; only a ``200`` answer is returned (its
    signature is the caller's to check: error answers may be unsigned)."""
    answer = await call("POST", url, headers=signed_headers(account, body, now), body=body)
    if answer.status in (401, 403):
        raise ProviderRefused("unauthorized")
    if answer.status != 200:
        raise ProviderRefused(f"unexpected_status_{answer.status}")
    return answer


def answer_signature_problem(
    account: CCPaymentAccount, headers: Mapping[str, str], body: bytes
) -> str | None:
    """Why an API answer is not CCPayment's (``unsigned_response``,
    ``bad_response_signature``), or None when it is signed with one of the account's
    secrets for its app id."""
    lowered = {k.lower(): v for k, v in headers.items()}
    app_id, timestamp, given = (
        lowered.get(h.lower()) for h in (HEADER_APP_ID, HEADER_TIMESTAMP, HEADER_SIGN)
    )
    if not (app_id and timestamp and given):
        return "unsigned_response"
    if not hmac.compare_digest(app_id.encode(), account.app_id.encode()) or (
        matching_secret(account, app_id, timestamp, body, given) is None
    ):
        return "bad_response_signature"
    return None


def header_bytes(header_value: str) -> bytes:
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
