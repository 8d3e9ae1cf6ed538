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
import secrets
import string
from collections.abc import Mapping
from decimal import Decimal

import orjson
from aiohttp import web

from paysync.settings import ProviderAccount
from providers.paycore.scheme import HEADER_SIGNATURE, NAME, PAYMENT_INVOICES, PayCoreAccount
from simulator.base import Lifecycle, Request, ReturnSimulator
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
