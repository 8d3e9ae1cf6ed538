"""CCPayment's v1 Order Information Interface: the reconciler's client
(``CCPaymentAdapter.status_api`` is a :class:`CCPaymentStatusApi`).

``POST {base_url}/ccpayment/v1/bill/info`` with ``{"merchant_order_ids": [...]}`` (at most
100), signed like a callback with the account's first secret. The answer is signed the same
way over its whole body and is verified against every configured secret before anything in
it is believed. Its ``trade_list`` entries are credits keyed like the webhook's (by
``txid``: see :func:`providers.ccpayment.scheme.credit_key`), so a transfer seen both ways is
counted once. ``refund_list`` is left out: its semantics (which refunds are final, in which
token) are undocumented, and a refund counted wrongly is money misstated.
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import UTC, datetime
from typing import Any

import orjson

from paysync.errors import MalformedMessage, ProviderRefused, ProviderUnavailable
from providers.base import HttpAnswer, HttpCall, PaymentRef, Poll, StatusClient
from providers.ccpayment.scheme import (
    CCPaymentAccount,
    Terms,
    answer_signature_problem,
    credit_observation,
    order_terms,
    required_money,
    signed_post,
)
from providers.payload import load_json_object, optional_text, required_text
from schemas.observation import Observation, Source

DEFAULT_BASE_URL = "https://admin.ccpayment.com"
BILL_INFO_PATH = "/ccpayment/v1/bill/info"
BILL_INFO_BATCH = 100
CODE_OK = 10000
CODE_NOT_FOUND = 11003
# Rate limit and daily limit: waiting helps, so they are "unavailable", not "refused".
CODES_LIMITED = frozenset({11004, 11009})


class CCPaymentStatusApi:
    """The v1 Order Information Interface (``/ccpayment/v1/bill/info``)."""

    default_base_url = DEFAULT_BASE_URL

    def client(self, account_name: str, account: CCPaymentAccount, base_url: str) -> StatusClient:
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
        answer = await signed_post(call, self._url, self._account, body, now)
        items = self._verified_items(answer)
        if items is None:
            return [Poll(ref=ref, found=False) for ref in refs]
        try:
            return [self._poll_one(ref, items.get(ref.merchant_ref), now) for ref in refs]
        except MalformedMessage as exc:
            raise ProviderRefused("unreadable_response") from exc

    def _verified_items(self, answer: HttpAnswer) -> dict[str, dict[str, Any]] | None:
        """The answer's orders by merchant order id (None: CCPayment knows none of them)."""
        try:
            doc = load_json_object(answer.body)
        except MalformedMessage:
            doc = {}
        problem = answer_signature_problem(self._account, answer.headers, answer.body)
        if problem == "unsigned_response" and (code := _code(doc)) in CODES_LIMITED:
            # Error answers may be unsigned (providers/ccpayment.md, open question 12): a
            # limit may still make us wait, since waiting changes no payment.
            raise ProviderUnavailable(f"status API limit (code {code})")
        if problem is not None:
            raise ProviderRefused(problem)
        return _items(doc)

    def _poll_one(self, ref: PaymentRef, item: dict[str, Any] | None, now: datetime) -> Poll:
        if item is None:
            return Poll(ref=ref, found=False)
        detail = item["order_detail"]
        trades = item.get("trade_list") or []
        if not isinstance(trades, list):
            raise MalformedMessage("trade_list is not a list")
        # The order's terms, read (and checked) even when no money has arrived yet.
        terms = order_terms(detail, "order_detail.")
        order: dict[str, Any] = {
            "source": Source.RECONCILER,
            "account": self._name,
            "merchant_ref": ref.merchant_ref,
            "provider_status": optional_text(detail, "status"),
            "provider_ref": optional_text(detail, "order_id"),
        }
        crypto = optional_text(detail, "crypto")
        observations = [_trade(trade, order, terms, crypto, now) for trade in trades]
        return Poll(
            ref=ref, found=True, provider_status=order["provider_status"], observations=observations
        )


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


def _trade(
    trade: object, order: dict[str, Any], terms: Terms, crypto: str | None, now: datetime
) -> Observation:
    """One ``trade_list`` entry: a credited transfer, keyed and valued as its webhook is."""
    if not isinstance(trade, dict):
        raise MalformedMessage("trade_list[] entry is not an object")
    return credit_observation(
        txid=required_text(trade, "txid", "trade_list[].txid"),
        paid=required_money(trade, "amount", "trade_list[].amount"),
        terms=terms,
        observed_at=_pay_time(trade) or now,
        currency=optional_text(trade, "crypto") or crypto,
        **order,
    )


def _pay_time(trade: Mapping[str, Any]) -> datetime | None:
    raw = trade.get("pay_time")
    if raw is None:
        return None
    if isinstance(raw, bool) or not isinstance(raw, int) or not 0 < raw < 10**11:
        raise MalformedMessage("trade_list[].pay_time is not Unix seconds")
    return datetime.fromtimestamp(raw, tz=UTC)
