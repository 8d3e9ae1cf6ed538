"""HDFC SmartGateway's side: Juspay order webhooks with Basic credentials, and the
customer's signed return redirect.

Shapes follow the examples in providers/hdfc_smartgateway.md: compact JSON with amounts as
JSON numbers in rupees, and the redirect's ``signature`` percent-encoded once more inside
the already URL-encoded query or form body (``%252B``), as Juspay sends it.

Order Status API: ``GET /{account}/orders/{order_id}`` under the status app's ``/hdfc``
mount, so an account polls the simulator with
``status_api.base_url = "http://<sim>/hdfc/<account>"`` (``status_base_url``). It checks
``Authorization: Basic base64(api_key + ":")`` and ``x-merchantid`` against the account
(``401`` otherwise), answers ``404`` with ``{"status": "NOT_FOUND", ...}`` for an unknown
order (Juspay's exact error bodies are not documented), and otherwise the order object of the
lifecycle's last webhook (``content.order``), its numbers digit for digit.

Session API (creating the hosted checkout): ``POST /{account}/session`` on the same mount,
added by ``add_create_routes``. It takes the request as the HDFC kits send it: the same
Basic key (the Node kit's colon-less form too) and ``x-merchantid`` (``401
UNAUTHENTICATED`` otherwise), ``version``/``x-routing-id``/``x-customerid`` optional, a
JSON body whose ``amount`` is a string or a number (the Node and Java samples send numbers)
with at most two decimals, ``order_id`` of ``[A-Za-z0-9_-]`` up to 21 characters, the
account's ``payment_page_client_id``, a currency the account enabled, a 10-digit phone.
A refused body is the documented ``400`` ``INVALID_REQUEST`` with ``error_info.fields``.
The answer is the seed's sample shape (``status NEW``, ``id``, ``order_id``,
``payment_links.web``/``expiry``, ``order_expiry`` 15 minutes ahead as seen in UAT,
``sdk_payload``). A second create of an order id is undocumented (open question 2): the
same amount and currency answer the order made first, other terms ``400 ALREADY_EXISTS``.
"""

from __future__ import annotations

import base64
import binascii
import hmac
import json
import re
import secrets
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from typing import Any, Literal
from urllib.parse import quote, urlencode

import orjson
from aiohttp import web

from paysync.settings import ProviderAccount
from providers.hdfc.scheme import HEADER_AUTHORIZATION, NAME, STATUS_IDS, HdfcAccount, sign_return
from providers.payload import decimal_amount
from simulator.base import Lifecycle, Request
from simulator.checkout import NewOrder, OrderDesk
from simulator.status import book_of

AMOUNT = Decimal("1499.00")
CURRENCY = "INR"
MERCHANT_ID = "shop_demo"


@dataclass(frozen=True, slots=True, kw_only=True)
class Refund:
    """One entry of the order's ``refunds[]``."""

    unique_request_id: str
    amount: Decimal
    status: str = "SUCCESS"
    created: datetime | None = None


def order_event(
    *,
    merchant_ref: str,
    juspay_id: str,
    event_name: str,
    status: str,
    amount: Decimal,
    currency: str = CURRENCY,
    created: datetime | None = None,
    event_id: str | None = None,
    refunds: list[Refund] | None = None,
) -> bytes:
    """A webhook body: the envelope around the full order object."""
    created = created or datetime.now(UTC)
    order: dict[str, Any] = {
        "id": juspay_id,
        "order_id": merchant_ref,
        "merchant_id": MERCHANT_ID,
        "status": status,
        "status_id": STATUS_IDS.get(status),
        "amount": _number(amount),
        "currency": currency,
        "customer_id": "cust_42",
        "date_created": _iso(created),
        "txn_id": f"{MERCHANT_ID}-{merchant_ref}-1",
        "payment_method_type": "UPI",
        "payment_method": "UPI",
        "txn_detail": {
            "txn_id": f"{MERCHANT_ID}-{merchant_ref}-1",
            "status": status,
            "txn_amount": _number(amount),
            "gateway": "HDFC",
            "error_code": None,
        },
        "payment_gateway_response": {
            "resp_code": "00",
            "resp_message": "SUCCESS",
            "rrn": "".join(secrets.choice("0123456789") for _ in range(12)),
        },
    }
    order.update(_refund_fields(refunds or [], created))
    return orjson.dumps(
        {
            "id": event_id or "evt_V2_" + secrets.token_hex(16),
            "date_created": _iso(created),
            "event_name": event_name,
            "content": {"order": order},
        }
    )


def basic_auth(username: str, password: str) -> str:
    return "Basic " + base64.b64encode(f"{username}:{password}".encode()).decode("ascii")


def return_signature(params: dict[str, str], key: str, style: str = "per_pair_form") -> str:
    """The redirect's signature under one encoding style (``RETURN_VARIANTS`` of
    providers/hdfc/scheme.py)."""
    return sign_return(params, key, style)


def return_params(order_id: str, status: str, key: str, style: str = "per_pair_form") -> str:
    """The redirect's parameters, URL-encoded exactly as Juspay puts them in the URL."""
    params = {"order_id": order_id, "status": status}
    if status in STATUS_IDS:
        params["status_id"] = str(STATUS_IDS[status])
    # Juspay percent-encodes the signature before it goes into the (encoded) URL.
    params["signature"] = quote(return_signature(params, key, style), safe="")
    params["signature_algorithm"] = "HMAC-SHA256"
    return urlencode(params)


class HdfcReturnSimulator:
    def signed_return(
        self,
        account: ProviderAccount,
        *,
        order_id: str,
        status: str,
        method: Literal["GET", "POST"] = "POST",
    ) -> Request:
        assert isinstance(account, HdfcAccount)
        encoded = return_params(order_id, status, account.response_keys[0].reveal())
        return Request.redirect(encoded, method)


class HdfcSimulator:
    """Juspay as paysync sees it: order webhooks with Basic credentials, no timestamp."""

    name = "hdfc"
    signs_timestamp = False
    required_headers = (HEADER_AUTHORIZATION,)
    returns = HdfcReturnSimulator()

    def callback_body(self, merchant_ref: str, *, now: int) -> bytes:
        return order_event(
            merchant_ref=merchant_ref,
            juspay_id=_juspay_id(),
            event_name="ORDER_SUCCEEDED",
            status="CHARGED",
            amount=AMOUNT,
            created=datetime.fromtimestamp(now, UTC),
        )

    def sign_callback(self, account: ProviderAccount, body: bytes, *, now: int) -> dict[str, str]:
        assert isinstance(account, HdfcAccount)
        return {
            "Content-Type": "application/json",
            HEADER_AUTHORIZATION: basic_auth(account.webhook_username, account.secrets[0].reveal()),
        }

    def lifecycle(self, account: ProviderAccount, merchant_ref: str, *, now: int) -> Lifecycle:
        """A UPI payment charged at once: one ORDER_SUCCEEDED webhook, ``paid``."""
        juspay_id = _juspay_id()
        body = order_event(
            merchant_ref=merchant_ref,
            juspay_id=juspay_id,
            event_name="ORDER_SUCCEEDED",
            status="CHARGED",
            amount=AMOUNT,
            created=datetime.fromtimestamp(now, UTC),
        )
        return Lifecycle(
            merchant_ref=merchant_ref,
            provider_ref=juspay_id,
            amount=AMOUNT,
            currency=CURRENCY,
            callbacks=[Request(headers=self.sign_callback(account, body, now=now), body=body)],
            statuses=["paid"],
        )

    def created_lifecycle(
        self, account: ProviderAccount, order: NewOrder, *, now: int
    ) -> Lifecycle:
        """The session's order before payment: Juspay answers ``NEW``; nothing to emit."""
        return self._order_life(account, order, "ORDER_CREATED", "NEW", [], now=now)

    def paid_lifecycle(self, account: ProviderAccount, order: NewOrder, *, now: int) -> Lifecycle:
        """The customer paid on the payment page: one ORDER_SUCCEEDED webhook, ``paid``."""
        return self._order_life(account, order, "ORDER_SUCCEEDED", "CHARGED", ["paid"], now=now)

    def _order_life(
        self,
        account: ProviderAccount,
        order: NewOrder,
        event_name: str,
        status: str,
        statuses: list[str],
        *,
        now: int,
    ) -> Lifecycle:
        body = order_event(
            merchant_ref=order.merchant_ref,
            juspay_id=order.provider_ref,
            event_name=event_name,
            status=status,
            amount=order.amount,
            currency=order.currency,
            created=datetime.fromtimestamp(now, UTC),
        )
        return Lifecycle(
            merchant_ref=order.merchant_ref,
            provider_ref=order.provider_ref,
            amount=order.amount,
            currency=order.currency,
            callbacks=[Request(headers=self.sign_callback(account, body, now=now), body=body)],
            statuses=statuses,
        )

    def add_status_routes(self, app: web.Application) -> None:
        app.router.add_get("/{account}/orders/{order_id}", _get_order)

    def add_create_routes(self, app: web.Application, desk: OrderDesk) -> None:
        """Juspay's Session API, ``POST /{account}/session`` (module docstring)."""

        async def session(request: web.Request) -> web.Response:
            return await _create_session(request, desk)

        app.router.add_post("/{account}/session", session)
        app.router.add_get("/{account}/merchant/ipay/{juspay_id}/payment-page", _payment_page)


SIMULATOR = HdfcSimulator()

# The Session API's order ids: "alphanumeric, < 21" in the order object's docs, though the
# kits' samples use "_" and "-" and one makes 21 characters (open question 3).
_ORDER_ID = re.compile(r"[A-Za-z0-9_-]{1,21}")
_PHONE = re.compile(r"[0-9]{10}")
# Order expiry as observed in UAT (the dashboard sets it; open question 1).
ORDER_LIFETIME = timedelta(minutes=15)


async def _create_session(request: web.Request, desk: OrderDesk) -> web.Response:
    account_name = request.match_info["account"]
    desk.count_create(NAME, account_name)
    account = desk.account(NAME, account_name)
    if not isinstance(account, HdfcAccount) or not _authorized(account, request):
        return _error(401, "error", "UNAUTHENTICATED", "invalid API key or merchant id")
    if request.content_type != "application/json":
        return _bad_request("Content-Type must be application/json", ["Content-Type"])
    try:
        doc = json.loads(await request.read(), parse_float=Decimal)
    except ValueError:
        doc = None
    if not isinstance(doc, dict):
        return _bad_request("the body is not a JSON object", [])
    (order_id, amount, currency), problems = _session_fields(doc, account)
    if problems:
        return _bad_request("Bad Request.", problems)
    earlier = desk.find_created(NAME, account_name, order_id)
    if earlier is not None:
        # Undocumented (open question 2): the same order again is answered with the order
        # it made; another amount or currency under its id is refused.
        if (earlier.amount, earlier.currency) != (amount, currency):
            body = {
                "status": "Bad Request",
                "error_code": "ALREADY_EXISTS",
                "error_message": f"order {order_id} already exists with other terms",
            }
            return _json_response(400, body)
        return _json_response(200, _session_answer(earlier, doc, account))
    # Whole seconds: the deadline the answer states is the one the desk keeps.
    created = datetime.now(UTC).replace(microsecond=0)
    juspay_id = _juspay_id()
    return_url = doc.get("return_url")
    order = NewOrder(
        merchant_ref=order_id,
        provider_ref=juspay_id,
        amount=amount,
        currency=currency,
        redirect_url=(
            f"{request.url.origin()}/{NAME}/{request.match_info['account']}"
            f"/merchant/ipay/{juspay_id}/payment-page"
        ),
        expires_at=created + ORDER_LIFETIME,
        return_url=return_url if isinstance(return_url, str) else None,
    )
    desk.created(NAME, account_name, order)
    return _json_response(200, _session_answer(order, doc, account))


def _session_fields(
    doc: dict[str, Any], account: HdfcAccount
) -> tuple[tuple[str, Decimal, str], list[str]]:
    """The order's id, amount and currency, and the names of fields Juspay would refuse."""
    problems = []
    order_id = doc.get("order_id")
    if not isinstance(order_id, str) or not _ORDER_ID.fullmatch(order_id):
        problems.append("order_id")
    # Strings per the docs; the Node and Java samples send numbers and UAT took them.
    raw = doc.get("amount")
    amount = decimal_amount(raw)
    if amount is None or amount <= 0 or amount != amount.quantize(Decimal("0.01")):
        problems.append("amount")
    client_id = doc.get("payment_page_client_id")
    expected = account.payment_page_client_id
    if not isinstance(client_id, str) or not client_id or expected not in (None, client_id):
        problems.append("payment_page_client_id")
    currency = doc.get("currency", CURRENCY)
    if currency not in account.checkout_currencies:
        problems.append("currency")
    phone = doc.get("customer_phone")
    if phone is not None and not (isinstance(phone, str) and _PHONE.fullmatch(phone)):
        problems.append("customer_phone")
    for name in ("customer_id", "customer_email", "first_name", "last_name", "return_url"):
        if doc.get(name) is not None and not isinstance(doc[name], str):
            problems.append(name)
    return (str(order_id), amount or Decimal(0), str(currency)), problems


def _session_answer(order: NewOrder, doc: dict[str, Any], account: HdfcAccount) -> dict[str, Any]:
    """The Session API's answer (the seed's sample response, with the UAT-observed expiry)."""
    expiry = _iso(order.expires_at) if order.expires_at else None
    return {
        "status": "NEW",
        "id": order.provider_ref,
        "order_id": order.merchant_ref,
        "payment_links": {"web": order.redirect_url, "expiry": expiry},
        "order_expiry": expiry,
        "sdk_payload": {
            "requestId": secrets.token_hex(16),
            "service": "in.juspay.hyperpay",
            "payload": {
                "clientId": doc.get("payment_page_client_id"),
                "amount": format(order.amount, "f"),
                "merchantId": account.merchant_id,
                "clientAuthToken": "tkn_" + secrets.token_hex(16),
                "clientAuthTokenExpiry": expiry,
                "environment": "sandbox",
                "action": "paymentPage",
                "customerId": doc.get("customer_id", ""),
                "returnUrl": order.return_url,
                "currency": order.currency,
                "orderId": order.merchant_ref,
            },
        },
    }


def _bad_request(message: str, fields: list[str]) -> web.Response:
    """Juspay's documented 400: ``INVALID_REQUEST`` with the fields at fault."""
    body = {
        "status": "Bad Request",
        "error_code": "INVALID_REQUEST",
        "error_message": message,
        "error_info": {"code": "INVALID_INPUT", "fields": fields},
    }
    return _json_response(400, body)


def _json_response(status: int, body: dict[str, Any]) -> web.Response:
    return web.Response(status=status, body=orjson.dumps(body), content_type="application/json")


async def _payment_page(request: web.Request) -> web.Response:
    """Where ``payment_links.web`` leads: a stand-in for the SmartGateway payment page."""
    order = request.match_info["juspay_id"]
    text = f"HDFC SmartGateway (simulated) payment page for order {order}\n"
    return web.Response(text=text, content_type="text/plain")


async def _get_order(request: web.Request) -> web.Response:
    book, account_name = book_of(request), request.match_info["account"]
    account = book.account(NAME, account_name)
    if not isinstance(account, HdfcAccount) or not _authorized(account, request):
        return _error(401, "error", "UNAUTHENTICATED", "invalid API key or merchant id")
    order_id = request.match_info["order_id"]
    life = book.find(NAME, account_name, merchant_ref=order_id)
    if life is None:
        return _error(404, "NOT_FOUND", "RESOURCE_NOT_FOUND", f"order {order_id} not found")
    body = orjson.dumps(final_order(life), default=_decimal)
    return web.Response(body=body, content_type="application/json")


def final_order(life: Lifecycle) -> dict[str, Any]:
    """The order as Juspay knows it once the lifecycle is over: the last webhook's
    ``content.order``, amounts kept as Decimal so they are served digit for digit."""
    event = json.loads(life.callbacks[-1].body, parse_float=Decimal)
    order: dict[str, Any] = event["content"]["order"]
    return order


def _authorized(account: HdfcAccount, request: web.Request) -> bool:
    """The API key as the Basic username and the account's ``x-merchantid``. The password
    (documented as empty) is not checked: the HDFC Node kit's colon-less form works too."""
    if account.api_key is None or account.merchant_id is None:
        return False
    scheme, _, token = request.headers.get(HEADER_AUTHORIZATION, "").partition(" ")
    try:
        username = base64.b64decode(token.strip(), validate=True).partition(b":")[0]
    except (binascii.Error, ValueError):
        return False
    merchant = request.headers.get("x-merchantid", "").encode()
    key_ok = hmac.compare_digest(username, account.api_key.reveal().encode())
    return scheme.lower() == "basic" and key_ok and merchant == account.merchant_id.encode()


def _error(status: int, juspay_status: str, code: str, message: str) -> web.Response:
    """Juspay's error shape (``status``, ``error_code``, ``error_message``); the exact
    bodies are not documented, and the client reads only the status code and ``status``."""
    body = {"status": juspay_status, "error_code": code, "error_message": message}
    return _json_response(status, body)


def _decimal(value: object) -> orjson.Fragment:
    if isinstance(value, Decimal):
        return _number(value)
    raise TypeError(f"{type(value).__name__} is not JSON serialisable")


def _refund_fields(refunds: list[Refund], created: datetime) -> dict[str, Any]:
    if not refunds:
        return {"refunded": False, "amount_refunded": 0}
    succeeded = sum((r.amount for r in refunds if r.status == "SUCCESS"), Decimal(0))
    return {
        "refunded": succeeded > 0,
        "amount_refunded": _number(succeeded),
        "refunds": [
            {
                "unique_request_id": r.unique_request_id,
                "amount": _number(r.amount),
                "status": r.status,
                "created": _iso(r.created or created),
            }
            for r in refunds
        ],
    }


def _number(amount: Decimal) -> orjson.Fragment:
    # A JSON number with exactly the decimal's digits (orjson has no Decimal support and a
    # float would lose them).
    return orjson.Fragment(format(amount, "f"))


def _iso(moment: datetime) -> str:
    return moment.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def _juspay_id() -> str:
    return "ordeh_" + secrets.token_hex(16)
