"""PayCore's side: builds payment-invoice callbacks (JSON:API) and signs them as PayCore does.

The document follows the examples in providers/paycore.md: amounts are JSON numbers in major
units (PayCore serialises PHP floats), an empty ``metadata`` is ``[]`` (PHP's empty array).
The signature is computed here independently of the adapter, so a round trip tests both.

Status API: ``GET /{account}/payment-invoices/{invoice_id}`` under the status app's
``/paycore`` mount, so an account polls the simulator with
``status_api.base_url = "http://<sim>/paycore/<account>"`` (``status_base_url``; PayCore's
own ``/api`` prefix has no counterpart here). It checks HTTP Basic ``api_account_id:api_key``
(``401`` otherwise), answers ``404`` with a JSON:API-style error for an unknown invoice, and
otherwise the invoice's final document: the body of the lifecycle's last callback.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import re
import secrets
import string
import time
from collections.abc import Mapping
from datetime import UTC, datetime
from decimal import Decimal
from typing import Any

import orjson
from aiohttp import web

from paysync.settings import ProviderAccount
from providers.paycore.scheme import HEADER_SIGNATURE, NAME, PAYMENT_INVOICES, PayCoreAccount
from simulator.base import Lifecycle, Request, ReturnSimulator
from simulator.checkout import DESK, NewOrder, OrderDesk
from simulator.status import book_of

_ID_ALPHABET = string.ascii_letters + string.digits
# Statuses after which the invoice holds processed money (so `processed*` are set).
_PROCESSED = frozenset(
    {"processed", "refunding", "refund_pending", "refund_failed", "partially_refunded", "refunded"}
)
_FEE_RATE = Decimal("0.025")
_CENT = Decimal("0.01")


def invoice_body(
    merchant_ref: str,
    invoice_id: str,
    status: str,
    amount: Decimal,
    currency: str,
    updated: int,
    test_mode: bool = False,
    refunded_amount: Decimal | None = None,
    *,
    created: int | None = None,
    metadata: Mapping[str, str] | None = None,
) -> bytes:
    """One payment-invoice document, compact as PayCore sends it. ``metadata=None`` is sent
    as ``[]``, the way PayCore serialises an empty object."""
    fee = (amount * _FEE_RATE).quantize(_CENT)
    processed = status in _PROCESSED
    attributes = {
        "serial_number": invoice_id.removeprefix("cpi_"),
        "status": status,
        "resolution": "ok",
        "moderation_required": False,
        "amount": _number(amount),
        "payment_amount": _number(amount),
        "currency": currency,
        "service_currency": currency,
        "reference_id": merchant_ref,
        "test_mode": test_mode,
        "fee": _number(fee),
        "deposit": _number(amount - fee),
        "processed": updated if processed else None,
        "processed_amount": _number(amount) if processed else None,
        "processed_fee": _number(fee) if processed else None,
        "processed_deposit": _number(amount - fee) if processed else None,
        "refunded_amount": None if refunded_amount is None else _number(refunded_amount),
        "metadata": dict(metadata) if metadata else [],
        "flow": "hpp",
        "payment_flow": "charge",
        "created": updated if created is None else created,
        "updated": updated,
        "payload": [],
    }
    return orjson.dumps(
        {
            "data": {
                "type": PAYMENT_INVOICES,
                "id": invoice_id,
                "attributes": attributes,
                "relationships": {
                    "payment-method": {"data": {"type": "payment-methods", "id": "payment_card"}}
                },
                "links": {"self": f"/api/payment-invoices/{invoice_id}"},
            }
        }
    )


def signature(secret: str, body: bytes) -> str:
    """``base64(SHA1_raw(secret + body + secret))``, PayCore's ``X-Signature``."""
    key = secret.encode()
    return base64.b64encode(hashlib.sha1(key + body + key).digest()).decode("ascii")  # noqa: S324


def invoice_id() -> str:
    return "cpi_" + "".join(secrets.choice(_ID_ALPHABET) for _ in range(16))


def _number(value: Decimal) -> orjson.Fragment:
    """A Decimal as a JSON number, digit for digit (orjson has no Decimal, and a float
    could round): the shortest form, as PHP writes ``49.9`` and ``10``."""
    if value == value.to_integral_value():
        return orjson.Fragment(str(int(value)))
    return orjson.Fragment(format(value.normalize(), "f"))


class PayCoreSimulator:
    """PayCore as paysync sees it: invoice-state callbacks, signed without a timestamp."""

    name = "paycore"
    signs_timestamp = False
    required_headers = (HEADER_SIGNATURE,)
    # PayCore does not sign its redirect back to the merchant.
    returns: ReturnSimulator | None = None

    def callback_body(self, merchant_ref: str, *, now: int) -> bytes:
        return invoice_body(
            merchant_ref,
            invoice_id(),
            "processed",
            Decimal("49.90"),
            "EUR",
            now,
            created=now - 120,
            metadata={"order_id": merchant_ref},
        )

    def sign_callback(self, account: ProviderAccount, body: bytes, *, now: int) -> dict[str, str]:
        assert isinstance(account, PayCoreAccount)
        return {
            "Content-Type": "application/json",
            HEADER_SIGNATURE: signature(account.secrets[0].reveal(), body),
        }

    def lifecycle(self, account: ProviderAccount, merchant_ref: str, *, now: int) -> Lifecycle:
        """An invoice paid, then fully refunded five minutes later: ``paid``, ``refunded``."""
        assert isinstance(account, PayCoreAccount)
        amount = Decimal("49.90")
        invoice = invoice_id()
        bodies = [
            invoice_body(merchant_ref, invoice, "processed", amount, "EUR", now, created=now - 120),
            invoice_body(
                merchant_ref,
                invoice,
                "refunded",
                amount,
                "EUR",
                now + 300,
                refunded_amount=amount,
                created=now - 120,
            ),
        ]
        return Lifecycle(
            merchant_ref=merchant_ref,
            provider_ref=invoice,
            amount=amount,
            currency="EUR",
            callbacks=[
                Request(headers=self.sign_callback(account, body, now=now), body=body)
                for body in bodies
            ],
            statuses=["paid", "refunded"],
        )

    def add_status_routes(self, app: web.Application) -> None:
        app.router.add_get("/{account}/payment-invoices/{invoice_id}", _get_invoice)

    def add_create_routes(self, app: web.Application, desk: OrderDesk) -> None:
        """``POST /{account}/payment-invoices`` (the private API's create) and the HPP."""
        app[DESK] = desk
        app.router.add_post("/{account}/payment-invoices", _create_invoice)
        app.router.add_get("/{account}/hpp/", _hosted_page)

    def created_lifecycle(
        self, account: ProviderAccount, order: NewOrder, *, now: int
    ) -> Lifecycle:
        """The invoice as the create left it: ``created`` (pending), nothing to emit."""
        body = invoice_body(
            order.merchant_ref,
            order.provider_ref,
            "created",
            order.amount,
            order.currency,
            now,
            created=now,
            metadata={"order_id": order.merchant_ref},
        )
        return self._life(account, order, [body], [])

    def paid_lifecycle(self, account: ProviderAccount, order: NewOrder, *, now: int) -> Lifecycle:
        """The customer paid on the HPP: one ``processed`` callback (``paid``); PayCore
        collapses quick successive changes into one callback."""
        body = invoice_body(
            order.merchant_ref,
            order.provider_ref,
            "processed",
            order.amount,
            order.currency,
            now,
            created=now - 60,
            metadata={"order_id": order.merchant_ref},
        )
        return self._life(account, order, [body], ["paid"])

    def _life(
        self, account: ProviderAccount, order: NewOrder, bodies: list[bytes], statuses: list[str]
    ) -> Lifecycle:
        return Lifecycle(
            merchant_ref=order.merchant_ref,
            provider_ref=order.provider_ref,
            amount=order.amount,
            currency=order.currency,
            callbacks=[
                Request(headers=self.sign_callback(account, body, now=0), body=body)
                for body in bodies
            ],
            statuses=statuses,
        )


SIMULATOR = PayCoreSimulator()


async def _get_invoice(request: web.Request) -> web.Response:
    book, account_name = book_of(request), request.match_info["account"]
    account = book.account(NAME, account_name)
    if not isinstance(account, PayCoreAccount) or not _authorized(account, request):
        return _error(401, "Unauthorized", "invalid account id or API key")
    invoice = request.match_info["invoice_id"]
    life = book.find(NAME, account_name, provider_ref=invoice)
    if life is None:
        return _error(404, "Not Found", f"payment invoice {invoice} not found")
    # The last callback carries the invoice as it is once the lifecycle is over.
    return web.Response(body=life.callbacks[-1].body, content_type="application/json")


def _authorized(account: PayCoreAccount, request: web.Request) -> bool:
    """HTTP Basic ``api_account_id:api_key``, as the Commerce private API checks it."""
    if account.api_account_id is None or account.api_key is None:
        return False
    scheme, _, token = request.headers.get("Authorization", "").partition(" ")
    try:
        given = base64.b64decode(token.strip(), validate=True)
    except (binascii.Error, ValueError):
        return False
    expected = f"{account.api_account_id}:{account.api_key.reveal()}".encode()
    return scheme.lower() == "basic" and hmac.compare_digest(given, expected)


def _error(status: int, title: str, detail: str) -> web.Response:
    """A JSON:API-style error document. PayCore documents error bodies only for ``422``
    (``error_type``, ``error_codes``); the client reads nothing but the status code."""
    body = {"errors": [{"status": str(status), "title": title, "detail": detail}]}
    return web.Response(status=status, body=orjson.dumps(body), content_type="application/json")


# --- the Commerce private API's create call (secure redirect) ---------------------------

# Attributes of a payment-invoice create, as PayCore's docs and Corefy's API docs list them.
_CREATE_ATTRIBUTES = frozenset(
    {
        "reference_id",
        "amount",
        "currency",
        "description",
        "service",
        "service_fields",
        "return_url",
        "return_urls",
        "callback_url",
        "metadata",
        "customer",
        "test_mode",
        "expires",
    }
)
_CURRENCY = re.compile(r"^[A-Z]{3}$")


async def _create_invoice(request: web.Request) -> web.Response:
    desk, account_name = request.config_dict[DESK], request.match_info["account"]
    account = desk.account(NAME, account_name)
    if not isinstance(account, PayCoreAccount) or not _authorized(account, request):
        return _error(401, "Unauthorized", "invalid account id or API key")
    desk.count_create(NAME, account_name)
    try:
        attributes = _create_attributes(await request.read())
    except _Invalid as exc:
        return _unprocessable(exc.code, str(exc))
    reference = attributes.get("reference_id")
    if reference is not None and desk.find_created(NAME, account_name, reference):
        # The docs' idempotency rule: one invoice per reference_id in a Commerce account.
        return _unprocessable("duplicate_reference_id", "reference_id is already used")
    invoice, now = invoice_id(), int(time.time())
    expires = attributes.get("expires")
    order = NewOrder(
        merchant_ref=reference or invoice,
        provider_ref=invoice,
        amount=Decimal(str(attributes["amount"])),
        currency=attributes["currency"],
        redirect_url=f"{request.url.origin()}/paycore/{account_name}/hpp/?cpi={invoice}",
        expires_at=None if expires is None else datetime.fromtimestamp(expires, UTC),
        return_url=attributes.get("return_url"),
        notify_url=attributes.get("callback_url"),
    )
    desk.created(NAME, account_name, order)
    body = invoice_body(
        order.merchant_ref,
        invoice,
        "created",
        order.amount,
        order.currency,
        now,
        metadata=attributes.get("metadata") or None,
    )
    return web.Response(status=201, body=body, content_type="application/json")


class _Invalid(ValueError):
    def __init__(self, code: str, message: str) -> None:
        super().__init__(message)
        self.code = code


def _create_attributes(raw: bytes) -> dict[str, Any]:
    """The create body's attributes, validated as the private API documents them."""
    try:
        doc = orjson.loads(raw)
        data = doc["data"]
        attributes = data["attributes"]
    except (orjson.JSONDecodeError, KeyError, TypeError):
        raise _Invalid("invalid_document", "a JSON:API document is required") from None
    if not isinstance(attributes, dict) or data.get("type") != PAYMENT_INVOICES:
        raise _Invalid("invalid_type", "data.type must be payment-invoices")
    if unknown := sorted(set(attributes) - _CREATE_ATTRIBUTES):
        raise _Invalid("unknown_attribute", f"unknown attributes: {', '.join(unknown)}")
    amount = attributes.get("amount")
    # A JSON number in major units (orjson reads it as an int or a float).
    if isinstance(amount, bool) or not isinstance(amount, int | float) or amount <= 0:
        raise _Invalid("amount_invalid", "amount must be a positive number")
    if not isinstance(attributes.get("currency"), str) or not _CURRENCY.match(
        attributes["currency"]
    ):
        raise _Invalid("currency_invalid", "currency must be ISO 4217 alpha-3")
    for key in ("reference_id", "description", "return_url", "callback_url", "service"):
        if key in attributes and not isinstance(attributes[key], str):
            raise _Invalid(f"{key}_invalid", f"{key} must be a string")
    for key in ("return_url", "callback_url"):
        if key in attributes and not attributes[key].startswith(("https://", "http://")):
            raise _Invalid(f"{key}_invalid", f"{key} must be an absolute URL")
    expires = attributes.get("expires")
    if expires is not None and (isinstance(expires, bool) or not isinstance(expires, int)):
        raise _Invalid("expires_invalid", "expires must be a UNIX timestamp (int)")
    for key in ("metadata", "customer"):
        value = attributes.get(key, {})
        if value != [] and not (
            isinstance(value, dict) and all(isinstance(v, str) for v in value.values())
        ):
            raise _Invalid(f"{key}_invalid", f"{key} must be an object of strings")
    return attributes


def _unprocessable(code: str, detail: str) -> web.Response:
    """PayCore's 422: ``request_id``, ``error_type``, ``error_codes``."""
    body = {
        "request_id": secrets.token_hex(8),
        "error_type": "validation",
        "error_codes": [code],
        "detail": detail,
    }
    return web.Response(status=422, body=orjson.dumps(body), content_type="application/json")


async def _hosted_page(request: web.Request) -> web.Response:
    """The HPP the customer is redirected to (``?cpi=``): a stand-in page."""
    invoice = request.query.get("cpi", "")
    text = f"PayCore (simulated) payment page for invoice {invoice}\n"
    return web.Response(text=text, content_type="text/plain")
