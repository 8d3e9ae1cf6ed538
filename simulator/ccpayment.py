"""CCPayment's side: builds v1 "API Deposit" webhooks and signs them as CCPayment does,
and answers the v1 Order Information Interface from the same ground truth.

Field names and order follow providers/ccpayment.md; amounts are strings, as CCPayment
sends them. ``lifecycle`` gives the webhooks of one order paid in one or more parts. The
simulated orders are priced as CCPayment's example is: 25 USD, due as 25.012 USDT at a
token rate of 0.9995, so the price and the crypto amounts differ as they do in life.

Status API: ``POST /{account}/ccpayment/v1/bill/info`` on the status app's ``/ccpayment``
sub-application, so an account's ``status_api.base_url`` is ``http://<sim>/ccpayment/<account>``
(``status_base_url``). The request's ``Sign`` is checked against the account's secrets
(code 11005 with HTTP 200 otherwise, as CCPayment answers); the answer is signed with the
account's first secret. ``trade_list`` is rebuilt from the order's ``success`` webhooks
(their ``txid``, ``paid_amount`` and ``Timestamp`` as ``pay_time``).
"""

from __future__ import annotations

import hashlib
import hmac
import re
import secrets
import time
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from decimal import Decimal, localcontext
from typing import Any

import orjson
from aiohttp import web

from paysync.settings import ProviderAccount
from providers.ccpayment.scheme import (
    CONTENT_TYPE,
    HEADER_APP_ID,
    HEADER_SIGN,
    HEADER_TIMESTAMP,
    NAME,
    CCPaymentAccount,
    sign,
)
from providers.ccpayment.status import BILL_INFO_BATCH, BILL_INFO_PATH, CODE_NOT_FOUND, CODE_OK
from schemas.money import EXACT
from simulator.base import Lifecycle, Request, ReturnSimulator
from simulator.checkout import DESK, NewOrder, OrderDesk
from simulator.status import book_of

CONTRACT = "TR7NHqjeKQxGTCi8q8ZY4pL8otSzgjLj6t"
# An order as CCPayment's docs show one: the merchant's price, and the crypto due for it
# (price / token_rate, to the token's three decimals here).
PRICE = Decimal("25.00")
PRICE_CURRENCY = "USD"
TOKEN_RATE = Decimal("0.9995")
DUE = Decimal("25.012")


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
    txid: str | None = None,
    product_price: Decimal | None = None,
    token_rate: Decimal = Decimal(1),
) -> bytes:
    """One webhook body; ``txid`` defaults to a hash of ``record_id``, so a resent record
    carries its transfer's txid again (credits are keyed by txid) and distinct records
    carry distinct, real-looking 64-hex txids. ``product_price`` (USD) defaults to
    ``order_amount``, as at a token rate of 1."""
    return orjson.dumps(
        {
            "pay_status": pay_status,
            "order_type": "API Deposit",
            "record_id": record_id,
            "order_id": order_id,
            "product_price": str(order_amount if product_price is None else product_price),
            "denominated_currency": PRICE_CURRENCY,
            "order_amount": str(order_amount),
            "fiat_rate": "1",
            "paid_amount": str(paid_amount),
            "token_rate": str(token_rate),
            "chain": "TRX",
            "txid": txid or hashlib.sha256(record_id.encode()).hexdigest(),
            "contract": CONTRACT,
            "crypto": crypto,
            "extend": {"merchant_order_id": merchant_ref},
        }
    )


def signed(app_id: str, app_secret: str, body: bytes, timestamp: int) -> dict[str, str]:
    ts = str(timestamp)
    return {
        "Content-Type": CONTENT_TYPE,
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

    name = NAME
    signs_timestamp = True
    required_headers = (HEADER_APP_ID, HEADER_TIMESTAMP, HEADER_SIGN)
    # CCPayment's hosted page does not sign its redirect.
    returns: ReturnSimulator | None = None

    def callback_body(self, merchant_ref: str, *, now: int) -> bytes:
        return webhook_body(
            merchant_ref=merchant_ref,
            record_id=_id(),
            order_id=_id(),
            order_amount=DUE,
            paid_amount=DUE,
            product_price=PRICE,
            token_rate=TOKEN_RATE,
        )

    def sign_callback(self, account: ProviderAccount, body: bytes, *, now: int) -> dict[str, str]:
        assert isinstance(account, CCPaymentAccount)
        return signed(account.app_id, account.secrets[0].reveal(), body, now)

    def lifecycle(self, account: ProviderAccount, merchant_ref: str, *, now: int) -> Lifecycle:
        """An order paid in two parts: ``underpaid`` after the first, ``paid`` after both.
        Its amount and currency are the price (what the merchant registers); the transfers
        are crypto (10 and 15.012 USDT of the 25.012 due)."""
        assert isinstance(account, CCPaymentAccount)
        order_id = _id()
        callbacks = []
        for part in (Decimal(10), DUE - 10):
            body = webhook_body(
                merchant_ref=merchant_ref,
                record_id=_id(),
                order_id=order_id,
                order_amount=DUE,
                paid_amount=part,
                product_price=PRICE,
                token_rate=TOKEN_RATE,
            )
            callbacks.append(Request(headers=self.sign_callback(account, body, now=now), body=body))
        return Lifecycle(
            merchant_ref=merchant_ref,
            provider_ref=order_id,
            amount=PRICE,
            currency=PRICE_CURRENCY,
            callbacks=callbacks,
            statuses=["underpaid", "paid"],
        )

    def add_status_routes(self, app: web.Application) -> None:
        app.router.add_post("/{account}" + BILL_INFO_PATH, _bill_info)

    def add_create_routes(self, app: web.Application, desk: OrderDesk) -> None:
        """``POST /{account}/ccpayment/v1/concise/url/get`` and the page it points to."""
        app[DESK] = desk
        app.router.add_post("/{account}" + CHECKOUT_PATH, _checkout_url)
        app.router.add_get("/{account}/pay/{page}", _hosted_page)

    def created_lifecycle(
        self, account: ProviderAccount, order: NewOrder, *, now: int
    ) -> Lifecycle:
        """Created and unpaid: the order-info answer's ``Pending`` with no trades."""
        return self._life(order, [], [])

    def paid_lifecycle(self, account: ProviderAccount, order: NewOrder, *, now: int) -> Lifecycle:
        """The customer paid the whole price in one transfer: one webhook, ``paid``."""
        assert isinstance(account, CCPaymentAccount)
        body = webhook_body(
            merchant_ref=order.merchant_ref,
            record_id=_id(),
            order_id=_id(),
            order_amount=order.amount,
            paid_amount=order.amount,
            product_price=order.amount,
        )
        request = Request(headers=self.sign_callback(account, body, now=now), body=body)
        return self._life(order, [request], ["paid"])

    def _life(self, order: NewOrder, callbacks: list[Request], statuses: list[str]) -> Lifecycle:
        return Lifecycle(
            merchant_ref=order.merchant_ref,
            provider_ref=order.provider_ref,
            amount=order.amount,
            currency=order.currency,
            callbacks=callbacks,
            statuses=statuses,
        )


def order_info(life: Lifecycle) -> dict[str, Any]:
    """The order-info ``data[]`` item of an order once its whole lifecycle happened."""
    webhooks = [(orjson.loads(c.body), int(c.headers[HEADER_TIMESTAMP])) for c in life.callbacks]
    credits = [(w, ts) for w, ts in webhooks if w.get("pay_status") == "success"]
    first = webhooks[0][0] if webhooks else {}
    chain, contract = first.get("chain", "TRX"), first.get("contract", CONTRACT)
    crypto = first.get("crypto", "USDT")
    due = Decimal(first.get("order_amount", str(life.amount)))
    with localcontext(EXACT):
        paid = sum((Decimal(w["paid_amount"]) for w, _ in credits), Decimal(0))
    detail = {
        "product_price": first.get("product_price", str(life.amount)),
        "denominated_currency": first.get("denominated_currency", life.currency),
        "product_name": "Plan A",
        "merchant_order_id": life.merchant_ref,
        "chain": chain,
        "contract": contract,
        "crypto": crypto,
        "order_amount": str(due),
        # Only "Successful" is documented for deposits; "Pending" until paid in full.
        "status": "Successful" if paid >= due else "Pending",
        "token_rate": first.get("token_rate", "1"),
        "created": min((ts for _, ts in webhooks), default=int(time.time())) - 60,
    }
    trades = [
        {
            "amount": w["paid_amount"],
            "txid": w["txid"],
            "pay_time": ts,
            "service_fee": "0",
            "network_fee": "0",
            "chain": w.get("chain", chain),
            "contract": w.get("contract", contract),
            "crypto": w.get("crypto", crypto),
            "token_rate": w.get("token_rate", "1"),
        }
        for w, ts in credits
    ]
    return {"order_detail": detail, "trade_list": trades, "refund_list": []}


async def _bill_info(request: web.Request) -> web.Response:
    account_name = request.match_info["account"]
    book = book_of(request)
    account = book.account(NAME, account_name)
    if not isinstance(account, CCPaymentAccount):
        raise web.HTTPNotFound(text="unknown account")
    body = await request.read()
    if not _signed_by(account, request.headers, body):
        return _answer(account, {"code": 11005, "msg": "sign failed", "data": None})
    try:
        ids = orjson.loads(body)["merchant_order_ids"]
    except (orjson.JSONDecodeError, KeyError, TypeError):
        raise web.HTTPBadRequest(text="merchant_order_ids is required") from None
    if not isinstance(ids, list) or not all(isinstance(i, str) for i in ids):
        raise web.HTTPBadRequest(text="merchant_order_ids must be a list of strings")
    if len(ids) > BILL_INFO_BATCH:
        return _answer(account, {"code": 11010, "msg": "more than 100 ids", "data": None})
    found = [book.find(NAME, account_name, merchant_ref=i) for i in ids]
    items = [order_info(life) for life in found if life is not None]
    if not items:
        return _answer(account, {"code": CODE_NOT_FOUND, "msg": "not found", "data": None})
    return _answer(account, {"code": CODE_OK, "msg": "success", "data": items})


def _signed_by(account: CCPaymentAccount, headers: Mapping[str, str], body: bytes) -> bool:
    app_id, ts, given = (headers.get(h, "") for h in (HEADER_APP_ID, HEADER_TIMESTAMP, HEADER_SIGN))
    if not hmac.compare_digest(app_id.encode(), account.app_id.encode()):
        return False
    ok = False
    for secret in account.secrets:
        expected = sign(app_id, secret.reveal(), ts, body).encode()
        ok |= hmac.compare_digest(expected, given.lower().encode())
    return ok


def _answer(account: CCPaymentAccount, doc: dict[str, Any]) -> web.Response:
    body = orjson.dumps(doc)
    headers = signed(account.app_id, account.secrets[0].reveal(), body, int(time.time()))
    return web.Response(body=body, headers=headers)


SIMULATOR = CCPaymentSimulator()


# --- v1 "Get checkout URL" -------------------------------------------------------------

CHECKOUT_PATH = "/ccpayment/v1/concise/url/get"
# The Timestamp header is valid for two minutes (providers/ccpayment.md).
TIMESTAMP_WINDOW = 120
MAX_VALID_SECONDS = 864_000
_PRICE = re.compile(r"^[0-9]+(\.[0-9]{1,2})?$")
_ORDER_ID = re.compile(r"^[A-Za-z0-9_-]{3,64}$")
# v1's parameter-error and expired-request codes are not documented; these stand in.
CODE_PARAMETER = 10001
CODE_SIGN_FAILED = 11005
CODE_EXPIRED = 11006


async def _checkout_url(request: web.Request) -> web.Response:
    desk, account_name = request.config_dict[DESK], request.match_info["account"]
    account = desk.account(NAME, account_name)
    if not isinstance(account, CCPaymentAccount):
        raise web.HTTPNotFound(text="unknown account")
    desk.count_create(NAME, account_name)
    body = await request.read()
    if not _signed_by(account, request.headers, body):
        return _answer(account, {"code": CODE_SIGN_FAILED, "msg": "sign failed", "data": None})
    timestamp = request.headers.get(HEADER_TIMESTAMP, "")
    if not timestamp.isdigit() or abs(time.time() - int(timestamp)) > TIMESTAMP_WINDOW:
        return _answer(account, {"code": CODE_EXPIRED, "msg": "request expired", "data": None})
    try:
        fields = _checkout_fields(body)
    except ValueError as exc:
        return _answer(account, {"code": CODE_PARAMETER, "msg": str(exc), "data": None})
    ref = fields["merchant_order_id"]
    # v1 says nothing about a reused merchant_order_id: the simulator answers the page it
    # made the first time (see providers/ccpayment/checkout.py, "retry-safe").
    order = desk.find_created(NAME, account_name, ref)
    if order is None:
        valid = fields.get("order_valid_period", 86_400)
        order = NewOrder(
            merchant_ref=ref,
            provider_ref=ref,
            amount=Decimal(fields["product_price"]),
            currency=PRICE_CURRENCY,
            redirect_url=f"{request.url.origin()}/ccpayment/{account_name}/pay/{_id()}",
            expires_at=datetime.fromtimestamp(time.time() + valid, UTC),
            return_url=fields.get("return_url"),
            notify_url=fields.get("notify_url"),
        )
        desk.created(NAME, account_name, order)
    data = {"payment_url": order.redirect_url}
    return _answer(account, {"code": CODE_OK, "msg": "success", "data": data})


def _checkout_fields(body: bytes) -> dict[str, Any]:
    """The create body, checked against the v1 field table."""
    try:
        fields = orjson.loads(body)
    except orjson.JSONDecodeError:
        raise ValueError("body is not JSON") from None
    if not isinstance(fields, dict):
        raise ValueError("body must be an object")
    ref, price, name = (
        fields.get(k) for k in ("merchant_order_id", "product_price", "product_name")
    )
    if not isinstance(ref, str) or not _ORDER_ID.match(ref):
        raise ValueError("merchant_order_id is required (3-64 of [A-Za-z0-9_-])")
    # A string, never a JSON number; at most two decimals.
    if not isinstance(price, str) or not _PRICE.match(price) or Decimal(price) <= 0:
        raise ValueError("product_price must be a decimal string with at most 2 decimals")
    if not isinstance(name, str) or not name:
        raise ValueError("product_name is required")
    valid = fields.get("order_valid_period")
    if valid is not None and (
        isinstance(valid, bool) or not isinstance(valid, int) or not 1 <= valid <= MAX_VALID_SECONDS
    ):
        raise ValueError("order_valid_period must be 1 to 864000 seconds")
    for key in ("return_url", "notify_url", "custom_value"):
        if key in fields and not isinstance(fields[key], str):
            raise ValueError(f"{key} must be a string")
    return fields


async def _hosted_page(request: web.Request) -> web.Response:
    """Where ``payment_url`` leads: a stand-in for CCPayment's checkout page."""
    return web.Response(text="CCPayment (simulated) checkout page\n", content_type="text/plain")
