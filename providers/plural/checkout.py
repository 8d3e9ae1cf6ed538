"""Plural's hosted checkout: ``POST {base}/api/checkout/v1/orders`` with an OAuth token
(``PluralAdapter.checkout_api`` is a :class:`PluralCheckoutApi`).

From providers/plural.md, "Creating the hosted checkout", the official SDK
(pinelabs-python's ``checkout.generate_checkout_link``) and the choices made where they
leave one open:

- **Token.** The status client's (providers/plural/status.py): fetched with the client
  credentials, cached, refreshed early; a ``401`` on the create fetches a new one and
  sends the create once more (the same body and ``Idempotency-Key``).
- **Request.** Headers ``Authorization: Bearer``, ``Request-ID`` (a UUID4),
  ``Request-Timestamp`` (ISO 8601 UTC with milliseconds and ``Z``), ``Idempotency-Key``
  (the merchant's ``Idempotency-Key``, passed on) and ``Content-Type: application/json``:
  the worked example's set. Body, compact JSON in the worked example's (and the SDK's)
  field order: ``merchant_order_reference`` at the top level (conflict 1), ``order_amount``
  ``{value: paise integer, currency: "INR"}``, ``pre_auth: false``, ``notes`` (the order's
  description, when it has one), ``callback_url`` (the return URL, when given) and
  ``purchase_details.customer`` (``email_id``, ``first_name``, ``last_name``,
  ``customer_id``, ``mobile_number``; left out when the order names no customer field).
  No ``merchant_metadata``: a ``CheckoutOrder`` carries none (the worked example's is the
  seed's illustration). ``notify_url`` and ``expires_at`` have no per-request field:
  webhooks are configured at onboarding, the order's lifetime is not stated (open question
  1), so the deadline returned is None.
- **Validation before any request** (``CheckoutRejected`` with a ``paysync.*`` code):
  reference ``[A-Za-z0-9_-]{1,50}``, currency ``INR``, a whole number of paise from 100 to
  100 000 000 (₹1 … ₹10 lakh), the customer fields' documented lengths (names and email
  ≤ 50, customer id ≤ 19, mobile number 9-20 digits).
- **Answer.** ``200`` with ``order_id`` (``v1-…``, the provider_ref the status API asks
  by), ``redirect_url`` (opaque, conflicts) and ``token``; ``response_code`` other than 200
  or anything unreadable is ``ProviderRefused``. The new order is ``CREATED``.
- **Errors.** ``401`` after the new token and ``403`` are ``ProviderRefused``; any other
  4xx is ``CheckoutRejected`` with Plural's ``code`` (``INVALID_REQUEST``,
  ``AMOUNT_LIMIT_EXCEEDED`` …), or the HTTP status when the body has none. 5xx and timeouts
  are the ``HttpCall``'s ``ProviderUnavailable``.
- **retry_safe = True.** The reference is Plural's idempotency key: the SDK documents that
  a duplicate ``merchant_order_reference`` returns the existing order instead of creating
  one (the fact sheet assumed a refusal, open question 2: either way no second order), and
  the same ``Idempotency-Key`` is resent with the same body.
"""

from __future__ import annotations

import re
import uuid
from collections.abc import Callable, Mapping
from datetime import datetime
from typing import Any, NoReturn

import orjson

from paysync.errors import CheckoutRejected, ConfigError, MalformedMessage, ProviderRefused
from providers.base import CheckoutClient, CheckoutOrder, CreatedCheckout, HttpAnswer, HttpCall
from providers.payload import load_json_object, optional_text, required_text
from providers.plural.scheme import NAME, PluralAccount
from providers.plural.status import DEFAULT_BASE_URL, PluralStatusClient, _api_headers

CREATE_PATH = "/api/checkout/v1/orders"
CURRENCY = "INR"
MIN_PAISE = 100
MAX_PAISE = 100_000_000
_REFERENCE = re.compile(r"[A-Za-z0-9_-]{1,50}")
_MOBILE = re.compile(r"[0-9]{9,20}")
_URL = re.compile(r"https?://[^\s]+")
# (our customer field, Plural's, the most characters Plural takes), in the body's order.
_CUSTOMER_FIELDS = (
    ("email", "email_id", 50),
    ("first_name", "first_name", 50),
    ("last_name", "last_name", 50),
    ("customer_id", "customer_id", 19),
)
_MESSAGE_CHARS = 200


class PluralCheckoutApi:
    """Create Hosted Checkout (``CheckoutApi``); one client per account."""

    default_base_url = DEFAULT_BASE_URL

    def client(self, account_name: str, account: PluralAccount, base_url: str) -> CheckoutClient:
        if account.client_id is None or account.client_secret is None:
            raise ConfigError(account.status_api_problems(NAME, account_name))
        tokens = PluralStatusClient(
            account_name,
            client_id=account.client_id,
            client_secret=account.client_secret,
            base_url=base_url,
        )
        return PluralCheckoutClient(tokens, base_url=base_url)


class PluralCheckoutClient:
    """``POST {base_url}/api/checkout/v1/orders``, one order per call."""

    def __init__(
        self,
        tokens: PluralStatusClient,
        *,
        base_url: str,
        request_id: Callable[[], str] = lambda: str(uuid.uuid4()),
    ) -> None:
        # The status client is the token's one home (cache, refresh, one fetch at a time).
        self._tokens = tokens
        self._url = base_url.rstrip("/") + CREATE_PATH
        self._request_id = request_id

    @property
    def retry_safe(self) -> bool:
        return True

    async def create(self, call: HttpCall, order: CheckoutOrder, now: datetime) -> CreatedCheckout:
        body = orjson.dumps(order_body(order))
        token = await self._tokens._current_token(call, now)
        answer = await call("POST", self._url, headers=self.headers(order, now, token), body=body)
        if answer.status == 401:
            # Revoked or expired before its stated time: one new token, one more try.
            token = await self._tokens._current_token(call, now, rejected=token)
            headers = self.headers(order, now, token)
            answer = await call("POST", self._url, headers=headers, body=body)
        return _created(answer)

    def headers(self, order: CheckoutOrder, now: datetime, token: str) -> dict[str, str]:
        sent = _api_headers(now, token)
        return {
            "Authorization": sent["Authorization"],
            "Request-ID": self._request_id(),
            "Request-Timestamp": sent["Request-Timestamp"],
            "Idempotency-Key": order.idempotency_key,
            "Content-Type": sent["Content-Type"],
        }


def order_body(order: CheckoutOrder) -> dict[str, Any]:
    """The create call's JSON body, or ``CheckoutRejected`` naming the field at fault."""
    if not _REFERENCE.fullmatch(order.merchant_ref):
        _invalid("merchant_ref", "must be 1-50 characters of A-Z a-z 0-9 _ - (Plural reference)")
    if order.currency != CURRENCY:
        _invalid("currency", f"{order.currency!r}: Plural's hosted checkout takes INR only")
    paise = order.amount * 100
    if not paise.is_finite() or paise != paise.to_integral_value():
        _invalid("amount", "must be a whole number of paise (at most two decimals)")
    if not MIN_PAISE <= paise <= MAX_PAISE:
        _invalid("amount", "must be from 1.00 to 1000000.00 INR")
    doc: dict[str, Any] = {
        "merchant_order_reference": order.merchant_ref,
        "order_amount": {"value": int(paise), "currency": CURRENCY},
        "pre_auth": False,
    }
    if order.description:
        doc["notes"] = order.description
    if order.return_url is not None:
        if not _URL.fullmatch(order.return_url):
            _invalid("return_url", "must be a fully qualified http(s) URL")
        doc["callback_url"] = order.return_url
    customer = _customer(order.customer)
    if customer:
        doc["purchase_details"] = {"customer": customer}
    return doc


def _customer(fields: Mapping[str, str]) -> dict[str, str]:
    customer = {}
    for ours, theirs, most in _CUSTOMER_FIELDS:
        value = fields.get(ours)
        if value:
            if len(value) > most:
                _invalid(f"customer.{ours}", f"must be at most {most} characters")
            customer[theirs] = value
    phone = fields.get("phone")
    if phone:
        if not _MOBILE.fullmatch(phone):
            _invalid("customer.phone", "must be 9-20 digits (Plural mobile_number)")
        customer["mobile_number"] = phone
    return customer


def _invalid(field: str, problem: str) -> NoReturn:
    raise CheckoutRejected(f"{field} {problem}", provider_code=f"paysync.invalid_{field}")


def _created(answer: HttpAnswer) -> CreatedCheckout:
    if answer.status in (401, 403):
        raise ProviderRefused("unauthorized")
    if 400 <= answer.status < 500:
        error = _error_body(answer.body)
        code = optional_text(error, "code") or str(answer.status)
        message = optional_text(error, "message") or f"HTTP {answer.status}"
        raise CheckoutRejected(" ".join(message.split())[:_MESSAGE_CHARS], provider_code=code)
    if answer.status != 200:
        raise ProviderRefused(f"unexpected_status_{answer.status}")
    try:
        doc = load_json_object(answer.body)
        order_id = required_text(doc, "order_id", "order_id")
        redirect_url = required_text(doc, "redirect_url", "redirect_url")
    except MalformedMessage as exc:
        raise ProviderRefused("unreadable_response") from exc
    if doc.get("response_code", 200) not in (200, "200"):
        raise ProviderRefused("unexpected_response_code")
    if not _URL.fullmatch(redirect_url):
        raise ProviderRefused("unreadable_response")
    return CreatedCheckout(
        redirect_url=redirect_url, provider_ref=order_id, expires_at=None, provider_status="CREATED"
    )


def _error_body(body: bytes) -> Mapping[str, Any]:
    try:
        return load_json_object(body)
    except MalformedMessage:
        return {}
