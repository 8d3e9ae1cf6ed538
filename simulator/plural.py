"""Plural's side: order webhooks and the customer's signed redirect, as Pine Labs sends them.

Bodies are compact JSON shaped like providers/plural.md's webhook example, with ``data``
an order object as Get Order returns it; amounts are integer paise. Webhooks are signed in
the Standard Webhooks layout with the account's first secret, decoded as the adapter
decodes it. ``lifecycle`` gives a pre-auth order: authorized, then processed (captured).

Status API, on the status app's ``/plural`` sub-application (so an account's
``status_api.base_url`` is ``http://<sim>/plural/<account>``, ``simulator.status.status_base_url``):
``POST /{account}/api/auth/v1/token`` checks the account's ``client_id`` and
``client_secret`` and issues a bearer token living ``token_expires_in`` seconds;
``GET /{account}/api/pay/v1/orders/{order_id}`` and ``.../orders/reference/{ref}`` answer
Get Order for a token issued to that account (``401`` otherwise): the last webhook's order
with its payments in Get Order's fuller shape.

The answers are shaped as the official SDK (pinelabs-python) models them, which
tests/unit/test_plural_sdk.py checks with the SDK itself: the token answer is
``{"access_token", "expires_at"}`` (ISO 8601; ``expiry_field="expires_in"`` serves the
docs' sample ``expires_in`` instead), and ``Request-ID``/``Request-Timestamp`` are
optional, as the SDK sends neither unless its client is built with them.

Create Hosted Checkout, added by ``add_create_routes`` on the same mount (with the token
route if the status routes are not there): ``POST /{account}/api/checkout/v1/orders``
with a bearer token issued to that account (``401`` otherwise), JSON, and the documented
validation: ``merchant_order_reference`` of ``[A-Za-z0-9_-]`` up to 50 characters,
``order_amount.value`` an integer of paise from 100 to 100000000, currency ``INR``, the
optional fields' types and the customer fields' lengths (``400 INVALID_REQUEST``
``{"code", "message"}`` otherwise). ``Request-ID``, ``Request-Timestamp`` and
``Idempotency-Key`` are optional, as the SDK's ``generate_checkout_link`` sends none of
them. The answer is ``{token, order_id, redirect_url, response_code, response_message}``.
A duplicate reference answers the existing order, as the SDK documents; other terms under
it are refused (undocumented).
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import re
import secrets
import string
import time
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from typing import Any, Literal
from urllib.parse import parse_qs, urlencode, urlsplit

import orjson
from aiohttp import web

from paysync.settings import ProviderAccount
from providers.plural.checkout import CREATE_PATH
from providers.plural.scheme import (
    HEADER_ID,
    HEADER_SIGNATURE,
    HEADER_TIMESTAMP,
    NAME,
    PluralAccount,
    webhook_key,
)
from providers.plural.scheme import return_signature as _return_signature
from providers.plural.scheme import webhook_signature as _webhook_mac
from providers.plural.status import AUTH_PATH, ORDER_BY_REFERENCE_PATH, ORDER_PATH
from simulator.base import Lifecycle, Request
from simulator.checkout import NewOrder, OrderDesk
from simulator.status import book_of

MERCHANT_ID = "700001"
AMOUNT = Decimal("1250.00")
AMOUNT_PAISE = 125000
CURRENCY = "INR"
# Payment-level statuses (data.payments[].status); other order statuses carry none.
_PAYMENT_STATUSES = frozenset({"PENDING", "AUTHORIZED", "PROCESSED", "CANCELLED", "FAILED"})
_ALNUM = string.ascii_letters + string.digits
# Where a created order's redirect_url points (opaque to clients; the docs' path).
REDIRECT_PATH = "/api/v3/checkout-bff/redirect/checkout"


def order_doc(
    *,
    order_id: str,
    merchant_ref: str,
    status: str,
    amount_paise: int,
    pre_auth: bool,
    updated_at: datetime,
    currency: str = CURRENCY,
) -> dict[str, Any]:
    """An order as Get Order's ``data`` shows it (trimmed as in the provider doc)."""
    when = _iso(updated_at)
    amount = {"value": amount_paise, "currency": currency}
    payments = []
    if status in _PAYMENT_STATUSES:
        payments.append(
            {
                "id": f"{order_id}-cc-a",
                "status": status,
                "payment_amount": amount,
                "payment_method": "CARD",
                "created_at": when,
                "updated_at": when,
            }
        )
    return {
        "order_id": order_id,
        "merchant_order_reference": merchant_ref,
        "type": "CHARGE",
        "status": status,
        "merchant_id": MERCHANT_ID,
        "pre_auth": pre_auth,
        "order_amount": amount,
        "payments": payments,
        "created_at": when,
        "updated_at": when,
    }


def webhook_body(
    event_type: str,
    order_id: str,
    merchant_ref: str,
    status: str,
    amount_paise: int,
    pre_auth: bool,
    updated_at: datetime,
) -> bytes:
    order = order_doc(
        order_id=order_id,
        merchant_ref=merchant_ref,
        status=status,
        amount_paise=amount_paise,
        pre_auth=pre_auth,
        updated_at=updated_at,
    )
    return orjson.dumps({"event_type": event_type, "data": order})


def webhook_signature(msg_id: str, ts: str, body: bytes, key_bytes: bytes) -> str:
    """The ``webhook-signature`` header value for one key."""
    mac = _webhook_mac(msg_id, ts, body, key_bytes)
    return "v1," + base64.b64encode(mac).decode("ascii")


def return_signature(params: dict[str, str], hex_key: str) -> str:
    return _return_signature(params, hex_key)


def new_order_id(now: int) -> str:
    """A Plural-shaped order id: ``v1-<yymmddHHMMSS>-aa-<6 characters>``."""
    stamp = datetime.fromtimestamp(now, tz=UTC).strftime("%y%m%d%H%M%S")
    return f"v1-{stamp}-aa-{''.join(secrets.choice(_ALNUM) for _ in range(6))}"


class PluralReturnSimulator:
    """The browser's redirect back from the hosted checkout, signed with the return key."""

    def signed_return(
        self,
        account: ProviderAccount,
        *,
        order_id: str,
        status: str,
        method: Literal["GET", "POST"] = "POST",
    ) -> Request:
        assert isinstance(account, PluralAccount)
        if not account.return_keys:
            raise ValueError("the account has no return_keys to sign a redirect with")
        params = {"order_id": order_id, "status": status}
        if status == "FAILED":
            # A value with spaces: the signature covers it unencoded, the URL encodes it.
            params["error_code"] = "USER_AUTHENTICATION_FAILED"
            params["error_message"] = "Consumer Authentication required"
        params["signature"] = return_signature(params, account.return_keys[0].reveal())
        encoded = urlencode(params)
        return Request.redirect(encoded, method)


class PluralSimulator:
    """Plural as paysync sees it: order webhooks signed with a timestamp, signed redirects."""

    name = NAME
    signs_timestamp = True
    required_headers = (HEADER_ID, HEADER_TIMESTAMP, HEADER_SIGNATURE)
    returns = PluralReturnSimulator()

    def __init__(
        self,
        *,
        token_expires_in: int = 3600,
        expiry_field: Literal["expires_at", "expires_in"] = "expires_at",
    ) -> None:
        # The token lifetime the token route states and enforces (tests shorten it), and
        # how it states it: the SDK's ``expires_at`` or the docs' sample ``expires_in``.
        self.token_expires_in = token_expires_in
        self.expiry_field = expiry_field

    def callback_body(self, merchant_ref: str, *, now: int) -> bytes:
        return webhook_body(
            "ORDER_PROCESSED",
            new_order_id(now),
            merchant_ref,
            "PROCESSED",
            AMOUNT_PAISE,
            False,
            datetime.fromtimestamp(now, tz=UTC),
        )

    def sign_callback(self, account: ProviderAccount, body: bytes, *, now: int) -> dict[str, str]:
        assert isinstance(account, PluralAccount)
        _, key = webhook_key(account.secrets[0].reveal(), account.webhook_key_encoding)
        msg_id = "msg_" + secrets.token_urlsafe(18)
        ts = str(now)
        return {
            "Content-Type": "application/json",
            HEADER_ID: msg_id,
            HEADER_TIMESTAMP: ts,
            HEADER_SIGNATURE: webhook_signature(msg_id, ts, body, key),
        }

    def lifecycle(self, account: ProviderAccount, merchant_ref: str, *, now: int) -> Lifecycle:
        """A pre-auth order: ``authorized`` when money is blocked, ``captured`` when taken."""
        provider_ref = new_order_id(now)
        callbacks = []
        for offset, (event, status) in enumerate(
            (("ORDER_AUTHORIZED", "AUTHORIZED"), ("ORDER_PROCESSED", "PROCESSED"))
        ):
            # The order changed shortly before each webhook, authorization first.
            updated_at = datetime.fromtimestamp(now - 2 + offset, tz=UTC)
            body = webhook_body(
                event, provider_ref, merchant_ref, status, AMOUNT_PAISE, True, updated_at
            )
            callbacks.append(Request(headers=self.sign_callback(account, body, now=now), body=body))
        return Lifecycle(
            merchant_ref=merchant_ref,
            provider_ref=provider_ref,
            amount=AMOUNT,
            currency=CURRENCY,
            callbacks=callbacks,
            statuses=["authorized", "captured"],
        )

    def created_lifecycle(
        self, account: ProviderAccount, order: NewOrder, *, now: int
    ) -> Lifecycle:
        """The hosted checkout's order before payment: ``CREATED``; nothing to emit."""
        return self._order_life(account, order, "ORDER_CREATED", "CREATED", [], now=now)

    def paid_lifecycle(self, account: ProviderAccount, order: NewOrder, *, now: int) -> Lifecycle:
        """The customer paid (no pre-auth): one ORDER_PROCESSED webhook, ``paid``."""
        return self._order_life(account, order, "ORDER_PROCESSED", "PROCESSED", ["paid"], now=now)

    def _order_life(
        self,
        account: ProviderAccount,
        order: NewOrder,
        event: str,
        status: str,
        statuses: list[str],
        *,
        now: int,
    ) -> Lifecycle:
        paise = int(order.amount * 100)
        updated_at = datetime.fromtimestamp(now, tz=UTC)
        body = webhook_body(
            event, order.provider_ref, order.merchant_ref, status, paise, False, updated_at
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
        self._add_token_route(app)
        app.router.add_get("/{account}" + ORDER_PATH + "{order_id}", _order_by_id)
        app.router.add_get("/{account}" + ORDER_BY_REFERENCE_PATH + "{ref}", _order_by_reference)

    def add_create_routes(self, app: web.Application, desk: OrderDesk) -> None:
        """Create Hosted Checkout, ``POST /{account}/api/checkout/v1/orders`` (module
        docstring), with the token route it needs (once per app)."""
        self._add_token_route(app)

        async def create(request: web.Request) -> web.Response:
            return await _create_order(request, desk)

        app.router.add_post("/{account}" + CREATE_PATH, create)
        app.router.add_get("/{account}" + REDIRECT_PATH, _checkout_page)

    def _add_token_route(self, app: web.Application) -> None:
        if TOKENS not in app:
            app[TOKENS] = Tokens()
            app.router.add_post("/{account}" + AUTH_PATH, self._issue_token)

    async def _issue_token(self, request: web.Request) -> web.Response:
        account_name = request.match_info["account"]
        try:
            doc = orjson.loads(await request.read())
        except orjson.JSONDecodeError:
            doc = None
        if not isinstance(doc, dict) or doc.get("grant_type") != "client_credentials":
            return _error(400, "INVALID_REQUEST", "grant_type must be client_credentials")
        account = book_of(request).account(NAME, account_name)
        if not _credentials_match(account, doc):
            return _error(401, "UNAUTHORIZED", "invalid client credentials")
        token = "eyJ" + secrets.token_urlsafe(32)
        expires_at = time.monotonic() + self.token_expires_in
        request.config_dict[TOKENS].issued[token] = (account_name, expires_at)
        if self.expiry_field == "expires_in":
            return _json(200, {"access_token": token, "expires_in": self.token_expires_in})
        stated = datetime.now(UTC) + timedelta(seconds=self.token_expires_in)
        return _json(200, {"access_token": token, "expires_at": stated.isoformat()})


@dataclass(slots=True)
class Tokens:
    """Bearer tokens the simulated API issued: token → (account, monotonic expiry)."""

    issued: dict[str, tuple[str, float]] = field(default_factory=dict)


TOKENS = web.AppKey("plural_tokens", Tokens)


def get_order_document(life: Lifecycle) -> dict[str, Any]:
    """Get Order's answer about an order once its whole lifecycle happened."""
    order: dict[str, Any] = orjson.loads(life.callbacks[-1].body)["data"]
    order["payments"] = [_full_payment(p, order) for p in order.get("payments", [])]
    return {"data": order}


def _full_payment(payment: dict[str, Any], order: dict[str, Any]) -> dict[str, Any]:
    """A payment as Get Order shows it: with acquirer data and, once captured, the capture."""
    digits = int(hashlib.sha256(payment["id"].encode()).hexdigest(), 16)
    captured = order.get("pre_auth") is True and payment["status"] == "PROCESSED"
    return {
        **payment,
        "acquirer_data": {
            "approval_code": f"{digits % 10**6:06d}",
            "acquirer_reference": f"{digits % 10**15:015d}",
            "rrn": f"{digits % 10**12:012d}",
        },
        "capture_data": [
            {
                "merchant_capture_reference": f"cap-{order['merchant_order_reference']}",
                "capture_amount": payment["payment_amount"],
                "created_at": payment["updated_at"],
            }
        ]
        if captured
        else [],
    }


async def _order_by_id(request: web.Request) -> web.Response:
    return _get_order(request, provider_ref=request.match_info["order_id"])


async def _order_by_reference(request: web.Request) -> web.Response:
    return _get_order(request, merchant_ref=request.match_info["ref"])


def _get_order(
    request: web.Request, *, merchant_ref: str | None = None, provider_ref: str | None = None
) -> web.Response:
    account_name = request.match_info["account"]
    if not _bearer_valid(request, account_name):
        return _error(401, "UNAUTHORIZED", "invalid or expired access token")
    life = book_of(request).find(
        NAME, account_name, merchant_ref=merchant_ref, provider_ref=provider_ref
    )
    if life is None or not life.callbacks:
        return _error(404, "ORDER_NOT_FOUND", "order not found")
    return _json(200, get_order_document(life))


_REFERENCE = re.compile(r"[A-Za-z0-9_-]{1,50}")
_MOBILE = re.compile(r"[0-9]{9,20}")
_URL = re.compile(r"https?://[^\s]+")
_INTEGRATION_MODES = frozenset({"REDIRECT", "IFRAME", "SDK"})
_PAYMENT_METHODS = frozenset(
    {"CARD", "UPI", "POINTS", "NETBANKING", "WALLET", "CREDIT_EMI", "DEBIT_EMI", "BNPL"}
)
# purchase_details.customer: field → most characters (mobile_number is checked apart).
_CUSTOMER_LENGTHS = {
    "email_id": 50,
    "first_name": 50,
    "last_name": 50,
    "customer_id": 19,
    "country_code": 5,
}


async def _checkout_page(request: web.Request) -> web.Response:
    """Where ``redirect_url`` leads: a stand-in for Plural's hosted checkout page."""
    return web.Response(text="Plural (simulated) hosted checkout\n", content_type="text/plain")


async def _create_order(request: web.Request, desk: OrderDesk) -> web.Response:
    account_name = request.match_info["account"]
    desk.count_create(NAME, account_name)
    if not _bearer_valid(request, account_name):
        return _error(401, "UNAUTHORIZED", "invalid or expired access token")
    problem = _header_problem(request)
    if problem is None:
        try:
            doc = orjson.loads(await request.read())
        except orjson.JSONDecodeError:
            doc = None
        problem = _order_problem(doc) if isinstance(doc, dict) else "the body is not a JSON object"
    if problem is not None:
        return _error(400, "INVALID_REQUEST", problem)
    reference = doc["merchant_order_reference"]
    amount = Decimal(doc["order_amount"]["value"]) / 100
    currency = doc["order_amount"]["currency"]
    earlier = desk.find_created(NAME, account_name, reference)
    if earlier is not None:
        # The SDK: a duplicate reference returns the existing order. Other terms under it
        # are refused (undocumented; the fact sheet assumed INVALID_REQUEST).
        if (earlier.amount, earlier.currency) != (amount, currency):
            return _error(400, "INVALID_REQUEST", "merchant_order_reference already used")
        return _json(200, _created_answer(earlier))
    token = secrets.token_urlsafe(24)
    callback_url = doc.get("callback_url")
    order = NewOrder(
        merchant_ref=reference,
        provider_ref=new_order_id(int(time.time())),
        amount=amount,
        currency=currency,
        redirect_url=(
            f"{request.url.origin()}/{NAME}/{request.match_info['account']}"
            f"{REDIRECT_PATH}?{urlencode({'token': token})}"
        ),
        expires_at=None,
        return_url=callback_url if isinstance(callback_url, str) else None,
    )
    desk.created(NAME, account_name, order)
    return _json(200, _created_answer(order))


def _created_answer(order: NewOrder) -> dict[str, Any]:
    token = parse_qs(urlsplit(order.redirect_url).query)["token"][0]
    return {
        "token": token,
        "order_id": order.provider_ref,
        "redirect_url": order.redirect_url,
        "response_code": 200,
        "response_message": "Order Creation Successful.",
    }


def _header_problem(request: web.Request) -> str | None:
    """What Plural would refuse in the headers. ``Request-ID``, ``Request-Timestamp`` and
    ``Idempotency-Key`` are optional, as the SDK sends none of them by default; when given
    they must be well formed (the SDK writes a timestamp as ``str(datetime)``)."""
    if request.content_type != "application/json":
        return "Content-Type must be application/json"
    if "Request-ID" in request.headers and not request.headers["Request-ID"].strip():
        return "Request-ID is empty"
    stamp = request.headers.get("Request-Timestamp")
    if stamp is not None:
        try:
            datetime.fromisoformat(stamp)
        except ValueError:
            return "Request-Timestamp is not an ISO 8601 time"
    if "Idempotency-Key" in request.headers and not request.headers["Idempotency-Key"].strip():
        return "Idempotency-Key is empty"
    return None


def _order_problem(doc: dict[str, Any]) -> str | None:
    """The first field of a create body Plural's documented validation refuses."""
    reference = doc.get("merchant_order_reference")
    if not isinstance(reference, str) or not _REFERENCE.fullmatch(reference):
        return "merchant_order_reference must be 1-50 characters of A-Z a-z 0-9 - _"
    amount = doc.get("order_amount")
    if not isinstance(amount, dict):
        return "order_amount is required"
    value = amount.get("value")
    if not isinstance(value, int) or isinstance(value, bool) or not 100 <= value <= 100_000_000:
        return "order_amount.value must be an integer number of paise from 100 to 100000000"
    if amount.get("currency") != CURRENCY:
        return "order_amount.currency must be INR"
    checks = (
        ("pre_auth", lambda v: isinstance(v, bool)),
        ("integration_mode", lambda v: v in _INTEGRATION_MODES),
        ("allowed_payment_methods", _payment_methods_ok),
        ("notes", lambda v: isinstance(v, str)),
        ("callback_url", lambda v: isinstance(v, str) and _URL.fullmatch(v) is not None),
        ("failure_callback_url", lambda v: isinstance(v, str) and _URL.fullmatch(v) is not None),
        ("purchase_details", _purchase_details_ok),
    )
    for name, valid in checks:
        if doc.get(name) is not None and not valid(doc[name]):
            return f"{name} is invalid"
    return None


def _payment_methods_ok(value: object) -> bool:
    return isinstance(value, list) and all(m in _PAYMENT_METHODS for m in value)


def _purchase_details_ok(details: object) -> bool:
    if not isinstance(details, dict):
        return False
    customer = details.get("customer")
    if customer is not None and not _customer_ok(customer):
        return False
    metadata = details.get("merchant_metadata")
    if metadata is None:
        return True
    return (
        isinstance(metadata, dict)
        and len(metadata) <= 10
        and all(isinstance(v, str) and len(v) <= 256 for v in metadata.values())
    )


def _customer_ok(customer: object) -> bool:
    if not isinstance(customer, dict):
        return False
    for name, most in _CUSTOMER_LENGTHS.items():
        value = customer.get(name)
        if value is not None and not (isinstance(value, str) and len(value) <= most):
            return False
    mobile = customer.get("mobile_number")
    return mobile is None or (isinstance(mobile, str) and _MOBILE.fullmatch(mobile) is not None)


def _credentials_match(account: ProviderAccount | None, doc: dict[str, Any]) -> bool:
    if not isinstance(account, PluralAccount) or not account.client_id:
        return False
    if account.client_secret is None:
        return False
    given_id, given_secret = str(doc.get("client_id", "")), str(doc.get("client_secret", ""))
    id_ok = hmac.compare_digest(given_id.encode(), account.client_id.encode())
    secret_ok = hmac.compare_digest(given_secret.encode(), account.client_secret.reveal().encode())
    return id_ok and secret_ok


def _bearer_valid(request: web.Request, account_name: str) -> bool:
    scheme, _, token = request.headers.get("Authorization", "").partition(" ")
    issued = request.config_dict[TOKENS].issued.get(token) if scheme == "Bearer" else None
    return issued is not None and issued[0] == account_name and time.monotonic() < issued[1]


def _error(status: int, code: str, message: str) -> web.Response:
    return _json(status, {"code": code, "message": message})


def _json(status: int, doc: dict[str, Any]) -> web.Response:
    return web.Response(status=status, body=orjson.dumps(doc), content_type="application/json")


def _iso(when: datetime) -> str:
    return when.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


SIMULATOR = PluralSimulator()
