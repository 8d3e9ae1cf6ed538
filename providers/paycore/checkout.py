"""PayCore's secure redirect: the Commerce private API creates the payment invoice, and the
customer is sent to the hosted page by its id (``PayCoreAdapter.checkout_api``).

``POST {base_url}/payment-invoices`` (the status API's base, ``…/api``) with HTTP Basic
``account_id:api_key`` and a JSON:API body
``{"data":{"type":"payment-invoices","attributes":{…}}}``: ``reference_id`` (our
merchant_ref: PayCore refuses a second invoice under it), ``amount`` as a JSON number in
major units, ``currency``, ``description``, ``return_url``, ``callback_url``, ``expires``
(an int UNIX timestamp), ``customer`` and ``metadata`` (``order_id``), as
providers/paycore.md's worked example orders them. Nothing is signed: Basic auth only.

Only ``201`` means created; its ``data.id`` (``cpi_…``) is the only id the status API
takes, so it is the payment's ``provider_ref``. The redirect is ``attributes.hpp_url``
when the host returns one (white-label hosts do), else ``<host>/hpp/?cpi=<id>``.

Not retry-safe: a resend after a timeout is refused as a duplicate ``reference_id`` (422,
or 429 "duplicate request detected") and PayCore documents no lookup by ``reference_id``,
so the ``cpi_`` id of a create whose answer was lost can never be learnt. One attempt; a
lost answer is an unknown outcome (ingest never registers a payment it has no id for).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime
from decimal import Decimal
from typing import Any
from urllib.parse import quote

import orjson

from paysync.errors import (
    CheckoutRejected,
    ConfigError,
    MalformedMessage,
    ProviderRefused,
    ProviderUnavailable,
)
from paysync.settings import Secret
from providers.base import CheckoutOrder, CreatedCheckout, HttpAnswer, HttpCall
from providers.paycore.scheme import NAME, PAYMENT_INVOICES, PayCoreAccount
from providers.paycore.status import DEFAULT_STATUS_BASE_URL, basic_authorization
from providers.payload import load_json_object

CUSTOMER_FIELDS = ("email", "name", "phone")


def invoice_request(order: CheckoutOrder) -> bytes:
    """The create body, compact, fields in the documented order (absent ones left out)."""
    attributes: dict[str, Any] = {
        "reference_id": order.merchant_ref,
        "amount": json_number(order.amount),
        "currency": order.currency,
        "description": order.description,
    }
    if order.return_url is not None:
        attributes["return_url"] = order.return_url
    if order.notify_url is not None:
        attributes["callback_url"] = order.notify_url
    if order.expires_at is not None:
        attributes["expires"] = int(order.expires_at.timestamp())
    customer = {k: order.customer[k] for k in CUSTOMER_FIELDS if order.customer.get(k)}
    if customer:
        attributes["customer"] = customer
    attributes["metadata"] = {"order_id": order.merchant_ref}
    return orjson.dumps({"data": {"type": PAYMENT_INVOICES, "attributes": attributes}})


def json_number(value: Decimal) -> orjson.Fragment:
    """A Decimal as a JSON number digit for digit (``100``, ``25.5``): never via a float."""
    if value == value.to_integral_value():
        return orjson.Fragment(str(int(value)))
    return orjson.Fragment(format(value.normalize(), "f"))


def hpp_url(base_url: str, invoice_id: str) -> str:
    """``https://com.paycore.io/hpp/?cpi=…`` for the private API at ``…/api``."""
    host = base_url.rstrip("/").removesuffix("/api")
    return f"{host}/hpp/?cpi={quote(invoice_id, safe='')}"


class PayCoreCheckoutApi:
    """The Commerce private API's create call (``CheckoutApi``)."""

    default_base_url = DEFAULT_STATUS_BASE_URL

    def client(
        self, account_name: str, account: PayCoreAccount, base_url: str
    ) -> PayCoreCheckoutClient:
        account_id, api_key = account.api_account_id, account.api_key
        if account_id is None or api_key is None:
            raise ConfigError(account.status_api_problems(NAME, account_name))
        return PayCoreCheckoutClient(
            base_url=base_url.rstrip("/"), account_id=account_id, api_key=api_key
        )


@dataclass(frozen=True, slots=True, kw_only=True)
class PayCoreCheckoutClient:
    base_url: str
    account_id: str
    api_key: Secret
    # See the module docstring: a resend cannot be told from a new invoice.
    retry_safe: bool = False

    async def create(self, call: HttpCall, order: CheckoutOrder, now: datetime) -> CreatedCheckout:
        headers = {
            "Authorization": basic_authorization(self.account_id, self.api_key.reveal()),
            "Content-Type": "application/json",
            "Accept": "application/json",
        }
        url = f"{self.base_url}/{PAYMENT_INVOICES}"
        answer = await call("POST", url, headers=headers, body=invoice_request(order))
        _check_status(answer)
        try:
            doc = load_json_object(answer.body)
            data = doc["data"]
            invoice_id = data["id"]
            attributes = data.get("attributes") or {}
        except (MalformedMessage, KeyError, TypeError):
            # 201 said it exists; without its id it can never be polled.
            raise ProviderUnavailable("created, but the answer is unreadable") from None
        if not isinstance(invoice_id, str) or not invoice_id.startswith("cpi_"):
            raise ProviderUnavailable("created, but the answer has no cpi_ id")
        redirect = attributes.get("hpp_url") if isinstance(attributes, Mapping) else None
        status = attributes.get("status") if isinstance(attributes, Mapping) else None
        return CreatedCheckout(
            redirect_url=redirect
            if isinstance(redirect, str)
            else hpp_url(self.base_url, invoice_id),
            provider_ref=invoice_id,
            expires_at=order.expires_at,
            provider_status=status if isinstance(status, str) else None,
        )


def _check_status(answer: HttpAnswer) -> None:
    """Only 201 is a new invoice; 401/403/404 are our configuration; 4xx is a refusal."""
    if answer.status == 201:
        return
    if answer.status in (401, 403, 404):
        raise ProviderRefused(f"private API answered HTTP {answer.status}")
    if 400 <= answer.status < 500:
        raise CheckoutRejected(
            "PayCore refused the invoice", provider_code=_error_code(answer.body, answer.status)
        )
    # 200/202 or another non-error: PayCore says only 201 means created.
    raise ProviderUnavailable(f"create answered HTTP {answer.status}: outcome unknown")


def _error_code(body: bytes, status: int) -> str:
    """PayCore's 422 carries ``error_type`` and ``error_codes``; else the HTTP status."""
    try:
        doc = load_json_object(body)
    except MalformedMessage:
        return str(status)
    codes = doc.get("error_codes")
    if isinstance(codes, list) and codes and all(isinstance(c, str) for c in codes):
        return ",".join(codes)
    kind = doc.get("error_type")
    return kind if isinstance(kind, str) and kind else str(status)
