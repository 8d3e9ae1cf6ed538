"""CCPayment's v1 "Get checkout URL": the create client (``CCPaymentAdapter.checkout_api``).

``POST {base_url}/ccpayment/v1/concise/url/get``, signed like the status API: headers
``Appid``, ``Timestamp`` (Unix seconds), ``Sign`` = SHA-256 hex of
``appId + appSecret + Timestamp + body`` over the exact bytes sent. Body fields in the
documented order: ``order_valid_period`` (seconds from now to the order's expiry, 1…864000;
left out for CCPayment's default of 24 h), ``product_price`` (a decimal *string*, USD, at
most two decimals), ``merchant_order_id`` (our merchant_ref), ``product_name``,
``return_url``, ``notify_url``.

The answer ``{"code":10000,"msg":"success","data":{"payment_url":…}}`` is signed the same
way and is believed only when its signature verifies with one of the account's secrets.
No CCPayment order id comes back: the status API asks by ``merchant_order_id``, so the
payment has no ``provider_ref`` until a callback or poll reports one.

Retry-safe: everything CCPayment reports about an order is keyed by our
``merchant_order_id``, so a resend after a timeout (a fresh Timestamp and Sign over the
same body) can at worst mint a second page for the same order, which the status API and
the fold see as one payment; the customer is only ever sent to the page we returned.
"""

from __future__ import annotations

from datetime import datetime, timedelta
from decimal import Decimal

import orjson

from paysync.errors import CheckoutRejected, MalformedMessage, ProviderRefused, ProviderUnavailable
from providers.base import CheckoutOrder, CreatedCheckout, HttpCall
from providers.ccpayment.scheme import (
    CCPaymentAccount,
    answer_signature_problem,
    signed_post,
)
from providers.ccpayment.status import CODE_OK, CODES_LIMITED, DEFAULT_BASE_URL
from providers.payload import load_json_object

CHECKOUT_PATH = "/ccpayment/v1/concise/url/get"
DEFAULT_VALID_SECONDS = 86_400
MAX_VALID_SECONDS = 864_000
CODE_SIGN_FAILED = 11005
# Our own refusal, before asking: the order cannot be expressed in CCPayment's v1 fields.
CODE_INVALID = "invalid_order"


def checkout_request(order: CheckoutOrder, now: datetime) -> bytes:
    """The create body (compact JSON, the documented field order)."""
    body: dict[str, object] = {}
    if order.expires_at is not None:
        body["order_valid_period"] = valid_seconds(order.expires_at, now)
    body["product_price"] = price_text(order.amount, order.currency)
    body["merchant_order_id"] = order.merchant_ref
    body["product_name"] = order.description
    if order.return_url is not None:
        body["return_url"] = order.return_url
    if order.notify_url is not None:
        body["notify_url"] = order.notify_url
    return orjson.dumps(body)


def valid_seconds(expires_at: datetime, now: datetime) -> int:
    seconds = int((expires_at - now).total_seconds())
    if not 1 <= seconds <= MAX_VALID_SECONDS:
        raise CheckoutRejected(
            f"expires_at must be 1 s to {MAX_VALID_SECONDS} s ahead", provider_code=CODE_INVALID
        )
    return seconds


def price_text(amount: Decimal, currency: str) -> str:
    """``"25"``, ``"25.50"``: the price as CCPayment's v1 takes it (USD, ≤ 2 decimals)."""
    if currency.upper() != "USD":
        raise CheckoutRejected("CCPayment v1 prices in USD only", provider_code=CODE_INVALID)
    exponent = amount.as_tuple().exponent
    if not isinstance(exponent, int) or exponent < -2 or amount <= 0:
        raise CheckoutRejected(
            "product_price takes at most two decimals", provider_code=CODE_INVALID
        )
    return str(amount)


class CCPaymentCheckoutApi:
    """``/ccpayment/v1/concise/url/get`` (``CheckoutApi``), on the status API's host."""

    default_base_url = DEFAULT_BASE_URL

    def client(
        self, account_name: str, account: CCPaymentAccount, base_url: str
    ) -> CCPaymentCheckoutClient:
        return CCPaymentCheckoutClient(account, base_url)


class CCPaymentCheckoutClient:
    retry_safe = True

    def __init__(self, account: CCPaymentAccount, base_url: str) -> None:
        self._account = account
        self._url = base_url.rstrip("/") + CHECKOUT_PATH

    async def create(self, call: HttpCall, order: CheckoutOrder, now: datetime) -> CreatedCheckout:
        body = checkout_request(order, now)
        answer = await signed_post(call, self._url, self._account, body, now)
        try:
            doc = load_json_object(answer.body)
        except MalformedMessage:
            raise ProviderRefused("unreadable_response") from None
        code = doc.get("code")
        if code in CODES_LIMITED:
            raise ProviderUnavailable(f"create limit (code {code})")
        if code == CODE_SIGN_FAILED:
            raise ProviderRefused("CCPayment refused our signature (code 11005)")
        if code != CODE_OK:
            raise CheckoutRejected(
                f"CCPayment refused the order: {doc.get('msg')!s:.200}", provider_code=str(code)
            )
        if problem := answer_signature_problem(self._account, answer.headers, answer.body):
            raise ProviderRefused(problem)
        data = doc.get("data")
        url = data.get("payment_url") if isinstance(data, dict) else None
        if not isinstance(url, str) or not url.startswith(("https://", "http://")):
            raise ProviderRefused("no payment_url in the answer")
        valid = (
            DEFAULT_VALID_SECONDS
            if order.expires_at is None
            else valid_seconds(order.expires_at, now)
        )
        return CreatedCheckout(
            redirect_url=url,
            provider_ref=None,
            expires_at=now + timedelta(seconds=valid),
            provider_status=None,
        )
