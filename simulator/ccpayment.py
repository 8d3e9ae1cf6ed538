"""CCPayment's side: builds v1 "API Deposit" webhooks and signs them as CCPayment does.

Field names and order follow providers/ccpayment.md; amounts are strings, as CCPayment
sends them. ``lifecycle`` gives the webhooks of one order paid in one or more parts.
"""

from __future__ import annotations

import secrets
from dataclasses import dataclass
from decimal import Decimal

import orjson

from paysync.settings import ProviderAccount
from providers.ccpayment import (
    HEADER_APP_ID,
    HEADER_SIGN,
    HEADER_TIMESTAMP,
    CCPaymentAccount,
    sign,
)
from simulator.base import Lifecycle, Request, ReturnSimulator

CONTRACT = "TR7NHqjeKQxGTCi8q8ZY4pL8otSzgjLj6t"


@dataclass(frozen=True, slots=True, kw_only=True)
class Callback:
    headers: dict[str, str]
    body: bytes
    record_id: str


def webhook_body(
    *,
    merchant_ref: str,
    record_id: str,
    order_id: str,
    order_amount: Decimal,
    paid_amount: Decimal,
    pay_status: str = "success",
    crypto: str = "USDT",
) -> bytes:
    return orjson.dumps(
        {
            "pay_status": pay_status,
            "order_type": "API Deposit",
            "record_id": record_id,
            "order_id": order_id,
            "product_price": str(order_amount),
            "denominated_currency": "USD",
            "order_amount": str(order_amount),
            "fiat_rate": "1",
            "paid_amount": str(paid_amount),
            "token_rate": "1",
            "chain": "TRX",
            "txid": secrets.token_hex(32),
            "contract": CONTRACT,
            "crypto": crypto,
            "extend": {"merchant_order_id": merchant_ref},
        }
    )


def signed(app_id: str, app_secret: str, body: bytes, timestamp: int) -> dict[str, str]:
    ts = str(timestamp)
    return {
        "Content-Type": "application/json; charset=utf-8",
        HEADER_APP_ID: app_id,
        HEADER_TIMESTAMP: ts,
        HEADER_SIGN: sign(app_id, app_secret, ts, body),
    }


def lifecycle(
    *,
    app_id: str,
    app_secret: str,
    merchant_ref: str,
    amount: Decimal,
    parts: list[Decimal],
    timestamp: int,
) -> list[Callback]:
    """One order's credit webhooks, one per part; ``sum(parts)`` may differ from amount."""
    order_id = _id()
    callbacks = []
    for part in parts:
        record_id = _id()
        body = webhook_body(
            merchant_ref=merchant_ref,
            record_id=record_id,
            order_id=order_id,
            order_amount=amount,
            paid_amount=part,
        )
        callbacks.append(
            Callback(
                headers=signed(app_id, app_secret, body, timestamp), body=body, record_id=record_id
            )
        )
    return callbacks


def _id() -> str:
    # CCPayment ids are 33-digit strings.
    return "".join(secrets.choice("0123456789") for _ in range(33))


class CCPaymentSimulator:
    """CCPayment as paysync sees it: per-transaction webhooks, signed with a timestamp."""

    name = "ccpayment"
    signs_timestamp = True
    required_headers = (HEADER_APP_ID, HEADER_TIMESTAMP, HEADER_SIGN)
    # CCPayment's hosted page does not sign its redirect.
    returns: ReturnSimulator | None = None

    def callback_body(self, merchant_ref: str, *, now: int) -> bytes:
        amount = Decimal("25.00")
        return webhook_body(
            merchant_ref=merchant_ref,
            record_id=_id(),
            order_id=_id(),
            order_amount=amount,
            paid_amount=amount,
        )

    def sign_callback(self, account: ProviderAccount, body: bytes, *, now: int) -> dict[str, str]:
        assert isinstance(account, CCPaymentAccount)
        return signed(account.app_id, account.secrets[0].reveal(), body, now)

    def lifecycle(self, account: ProviderAccount, merchant_ref: str, *, now: int) -> Lifecycle:
        """An order paid in two parts: ``underpaid`` after the first, ``paid`` after both."""
        assert isinstance(account, CCPaymentAccount)
        amount = Decimal("25.00")
        order_id = _id()
        callbacks = []
        for part in (Decimal("10.00"), Decimal("15.00")):
            body = webhook_body(
                merchant_ref=merchant_ref,
                record_id=_id(),
                order_id=order_id,
                order_amount=amount,
                paid_amount=part,
            )
            callbacks.append(Request(headers=self.sign_callback(account, body, now=now), body=body))
        return Lifecycle(
            merchant_ref=merchant_ref,
            provider_ref=order_id,
            amount=amount,
            currency="USDT",
            callbacks=callbacks,
            statuses=["underpaid", "paid"],
        )


SIMULATOR = CCPaymentSimulator()
