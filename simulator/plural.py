"""Plural's side: order webhooks and the customer's signed redirect, as Pine Labs sends them.

Bodies are compact JSON shaped like providers/plural.md's webhook example, with ``data``
an order object as Get Order returns it; amounts are integer paise. Webhooks are signed in
the Standard Webhooks layout with the account's first secret, decoded as the adapter
decodes it. ``lifecycle`` gives a pre-auth order: authorized, then processed (captured).
"""

from __future__ import annotations

import base64
import secrets
import string
from datetime import UTC, datetime
from decimal import Decimal
from typing import Any, Literal
from urllib.parse import urlencode

import orjson

from paysync.settings import ProviderAccount
from providers.plural import (
    HEADER_ID,
    HEADER_SIGNATURE,
    HEADER_TIMESTAMP,
    PluralAccount,
    webhook_key,
)
from providers.plural import return_signature as _return_signature
from providers.plural import webhook_signature as _webhook_mac
from simulator.base import Lifecycle, Request

MERCHANT_ID = "700001"
AMOUNT = Decimal("1250.00")
AMOUNT_PAISE = 125000
CURRENCY = "INR"
# Payment-level statuses (data.payments[].status); other order statuses carry none.
_PAYMENT_STATUSES = frozenset({"PENDING", "AUTHORIZED", "PROCESSED", "CANCELLED", "FAILED"})
_ALNUM = string.ascii_letters + string.digits


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

    name = "plural"
    signs_timestamp = True
    required_headers = (HEADER_ID, HEADER_TIMESTAMP, HEADER_SIGNATURE)
    returns = PluralReturnSimulator()

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


def _iso(when: datetime) -> str:
    return when.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


SIMULATOR = PluralSimulator()
