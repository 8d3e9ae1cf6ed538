"""CCPayment (v1 API): callback signature, callback parsing and acknowledgement.

Scheme (providers/ccpayment.md): ``Sign`` = lowercase hex SHA-256 of
``appId + appSecret + Timestamp + raw_body`` (a plain hash, not an HMAC), with headers
``Appid`` and ``Timestamp`` (10-digit Unix seconds). A callback reports one on-chain
transaction (``record_id``); only ``pay_status=success`` credits money. The order status
is derived from the credits by the fold.

Status API (reconciler): ``POST {base_url}/ccpayment/v1/bill/info`` with
``{"merchant_order_ids": [...]}`` (at most 100), signed like a callback with the account's
first secret. The answer is signed the same way over its whole body and is verified against
every configured secret before anything in it is believed. Its ``trade_list`` entries are
credits keyed like the webhook's (by ``txid``: see :func:`credit_key`), so a transfer seen
both ways is counted once. ``refund_list`` is left out: its semantics (which refunds are
final, in which token) are undocumented, and a refund counted wrongly is money misstated.
"""

from __future__ import annotations

import hashlib
import hmac
from collections.abc import Mapping
from datetime import UTC, datetime
from decimal import Decimal
from typing import Any

import orjson
from pydantic import Field

from paysync.errors import (
    AuthenticationError,
    MalformedMessage,
    ProviderRefused,
    ProviderUnavailable,
)
from paysync.settings import ProviderAccount
from providers.base import (
    JSON_MEDIA_TYPES,
    Ack,
    HttpAnswer,
    HttpCall,
    PaymentRef,
    Poll,
    ReturnUrlScheme,
    StatusApi,
    StatusClient,
    Verified,
)
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
DEFAULT_BASE_URL = "https://admin.ccpayment.com"
BILL_INFO_PATH = "/ccpayment/v1/bill/info"
BILL_INFO_BATCH = 100
CODE_OK = 10000
CODE_NOT_FOUND = 11003
# Rate limit and daily limit: waiting helps, so they are "unavailable", not "refused".
CODES_LIMITED = frozenset({11004, 11009})

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


class CCPaymentStatusApi:
    """The v1 Order Information Interface (``/ccpayment/v1/bill/info``)."""

    default_base_url = DEFAULT_BASE_URL

    def client(self, account_name: str, account: ProviderAccount, base_url: str) -> StatusClient:
        assert isinstance(account, CCPaymentAccount)
        return CCPaymentStatusClient(account_name, account, base_url)


class CCPaymentStatusClient:
    """Asks about up to 100 orders per call and believes only a correctly signed answer."""

    batch_size = BILL_INFO_BATCH

    def __init__(self, account_name: str, account: CCPaymentAccount, base_url: str) -> None:
        self._name = account_name
        self._account = account
        self._url = base_url.rstrip("/") + BILL_INFO_PATH

    async def poll(self, call: HttpCall, refs: list[PaymentRef], now: datetime) -> list[Poll]:
        if len(refs) > self.batch_size:
            raise ValueError(f"at most {self.batch_size} orders per call, got {len(refs)}")
        if not refs:
            return []
        ids = list(dict.fromkeys(ref.merchant_ref for ref in refs))
        body = orjson.dumps({"merchant_order_ids": ids})
        answer = await call("POST", self._url, headers=self._signed_headers(body, now), body=body)
        if answer.status in (401, 403):
            raise ProviderRefused("unauthorized")
        if answer.status != 200:
            raise ProviderRefused(f"unexpected_status_{answer.status}")
        items = self._verified_items(answer)
        if items is None:
            return [Poll(ref=ref, found=False) for ref in refs]
        try:
            return [self._poll_one(ref, items.get(ref.merchant_ref), now) for ref in refs]
        except MalformedMessage as exc:
            raise ProviderRefused("unreadable_response") from exc

    def _signed_headers(self, body: bytes, now: datetime) -> dict[str, str]:
        app_id, timestamp = self._account.app_id, str(int(now.timestamp()))
        return {
            HEADER_APP_ID: app_id,
            HEADER_TIMESTAMP: timestamp,
            HEADER_SIGN: sign(app_id, self._account.secrets[0].reveal(), timestamp, body),
            "Content-Type": CONTENT_TYPE,
        }

    def _verified_items(self, answer: HttpAnswer) -> dict[str, dict[str, Any]] | None:
        """The answer's orders by merchant order id (None: CCPayment knows none of them)."""
        try:
            doc = load_json_object(answer.body)
        except MalformedMessage:
            doc = {}
        headers = {k.lower(): v for k, v in answer.headers.items()}
        app_id, timestamp, given = (
            headers.get(h.lower()) for h in (HEADER_APP_ID, HEADER_TIMESTAMP, HEADER_SIGN)
        )
        if not (app_id and timestamp and given):
            # Error answers may be unsigned (providers/ccpayment.md, open question 12): a
            # limit may still make us wait, since waiting changes no payment.
            if (code := _code(doc)) in CODES_LIMITED:
                raise ProviderUnavailable(f"status API limit (code {code})")
            raise ProviderRefused("unsigned_response")
        if not hmac.compare_digest(app_id.encode(), self._account.app_id.encode()) or (
            _matching_secret(self._account, app_id, timestamp, answer.body, given) is None
        ):
            raise ProviderRefused("bad_response_signature")
        return _items(doc)

    def _poll_one(self, ref: PaymentRef, item: dict[str, Any] | None, now: datetime) -> Poll:
        if item is None:
            return Poll(ref=ref, found=False)
        detail = item["order_detail"]
        trades = item.get("trade_list") or []
        if not isinstance(trades, list):
            raise MalformedMessage("trade_list is not a list")
        # The order's terms, read (and checked) even when no money has arrived yet.
        order: dict[str, Any] = {
            "source": Source.RECONCILER,
            "account": self._name,
            "merchant_ref": ref.merchant_ref,
            "provider_status": optional_text(detail, "status"),
            "provider_ref": optional_text(detail, "order_id"),
            "amount_due": money(detail, "order_amount", "order_detail.order_amount"),
        }
        crypto = optional_text(detail, "crypto")
        observations = [_trade(trade, order, crypto, now) for trade in trades]
        return Poll(
            ref=ref, found=True, provider_status=order["provider_status"], observations=observations
        )


class CCPaymentAdapter:
    name = NAME
    account_model = CCPaymentAccount
    callback_ack = Ack(status=200, body=b"success", content_type="text/plain")
    callback_media_types = JSON_MEDIA_TYPES
    # CCPayment's hosted page does not sign its redirect back to the merchant.
    returns: ReturnUrlScheme | None = None
    status_api: StatusApi | None = CCPaymentStatusApi()

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
        secret = _matching_secret(account, app_id, timestamp, body, given)
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
                    amount=_required_money(doc, "paid_amount", "paid_amount"),
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


def _matching_secret(
    account: CCPaymentAccount, app_id: str, timestamp: str, body: bytes, given: str
) -> str | None:
    """The ref of the secret that signed ``body``; every secret is tried (constant time)."""
    given_bytes = given.strip().lower().encode()
    matched = None
    for secret in account.secrets:
        expected = sign(app_id, secret.reveal(), timestamp, body).encode()
        if hmac.compare_digest(expected, given_bytes) and matched is None:
            matched = secret.ref
    return matched


def _code(doc: dict[str, Any]) -> int | None:
    code = doc.get("code")
    return code if isinstance(code, int) and not isinstance(code, bool) else None


def _items(doc: dict[str, Any]) -> dict[str, dict[str, Any]] | None:
    code = _code(doc)
    if code == CODE_NOT_FOUND:
        return None
    if code in CODES_LIMITED:
        raise ProviderUnavailable(f"status API limit (code {code})")
    if code is None:
        raise ProviderRefused("unreadable_response")
    if code != CODE_OK:
        raise ProviderRefused(f"error_code_{code}")
    data = doc.get("data")
    if not isinstance(data, list):
        raise ProviderRefused("unreadable_response")
    items: dict[str, dict[str, Any]] = {}
    for item in data:
        detail = item.get("order_detail") if isinstance(item, dict) else None
        merchant_ref = detail.get("merchant_order_id") if isinstance(detail, dict) else None
        if not isinstance(merchant_ref, str) or not merchant_ref:
            raise ProviderRefused("unreadable_response")
        if merchant_ref in items:
            raise ProviderRefused("duplicate_order_in_response")
        items[merchant_ref] = item
    return items


def _trade(trade: object, order: dict[str, Any], crypto: str | None, now: datetime) -> Observation:
    """One ``trade_list`` entry: a credited transfer, keyed as its webhook is."""
    if not isinstance(trade, dict):
        raise MalformedMessage("trade_list[] entry is not an object")
    return credit_observation(
        txid=required_text(trade, "txid", "trade_list[].txid"),
        amount=_required_money(trade, "amount", "trade_list[].amount"),
        observed_at=_pay_time(trade) or now,
        currency=optional_text(trade, "crypto") or crypto,
        **order,
    )


def _required_money(doc: Mapping[str, Any], key: str, label: str) -> Decimal:
    value = money(doc, key, label, required=True)
    assert value is not None  # required=True raises instead
    return value


def _pay_time(trade: Mapping[str, Any]) -> datetime | None:
    raw = trade.get("pay_time")
    if raw is None:
        return None
    if isinstance(raw, bool) or not isinstance(raw, int) or not 0 < raw < 10**11:
        raise MalformedMessage("trade_list[].pay_time is not Unix seconds")
    return datetime.fromtimestamp(raw, tz=UTC)


def _plain(amount: Decimal) -> str:
    """``amount`` without an exponent or trailing zeros, exactly (no context rounding)."""
    text = format(amount, "f")
    return text.rstrip("0").rstrip(".") if "." in text else text
