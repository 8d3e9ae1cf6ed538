"""PayCore's side: builds payment-invoice callbacks (JSON:API) and signs them as PayCore does.

The document follows the examples in providers/paycore.md: amounts are JSON numbers in major
units (PayCore serialises PHP floats), an empty ``metadata`` is ``[]`` (PHP's empty array).
The signature is computed here independently of the adapter, so a round trip tests both.
"""

from __future__ import annotations

import base64
import hashlib
import secrets
import string
from collections.abc import Mapping
from decimal import Decimal

import orjson

from paysync.settings import ProviderAccount
from providers.paycore import HEADER_SIGNATURE, PAYMENT_INVOICES, PayCoreAccount
from simulator.base import Lifecycle, Request, ReturnSimulator

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


SIMULATOR = PayCoreSimulator()
