"""PayCore's and CCPayment's create-checkout clients against the fact sheets' worked
examples (../shared/providers/{paycore,ccpayment}.md, "Creating the hosted checkout"), byte
for byte, and how each reads the provider's answers (a recording fake ``HttpCall``)."""

from __future__ import annotations

from dataclasses import replace
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from typing import Any

import orjson
import pytest

from paysync.errors import CheckoutRejected, ProviderRefused, ProviderUnavailable
from providers.base import CheckoutOrder, HttpAnswer
from providers.ccpayment.adapter import ADAPTER as CCPAYMENT
from providers.ccpayment.checkout import CCPaymentCheckoutClient
from providers.ccpayment.scheme import CCPaymentAccount, sign
from providers.paycore.adapter import ADAPTER as PAYCORE
from providers.paycore.checkout import PayCoreCheckoutClient
from providers.paycore.scheme import PayCoreAccount
from tests.support.status_api import FakeCall, json_answer

# PayCore's worked example (credentials invented by the fact sheet).
PAYCORE_BODY = (
    b'{"data":{"type":"payment-invoices","attributes":{"reference_id":"12345","amount":100,'
    b'"currency":"GBP","description":"1 digital camera","return_url":'
    b'"https://shop.example/return/12345","metadata":{"order_id":"12345"}}}}'
)
PAYCORE_AUTH = "Basic Y29tYV9URVNUQUNDT1VOVDAxOkVYQU1QTEVhcGlLZXkwMDAx"
PAYCORE_CREATED = (
    b'{"data":{"type":"payment-invoices","id":"cpi_EXAMPLE000000001","attributes":'
    b'{"status":"created","reference_id":"12345","amount":100,"currency":"GBP"}}}'
)
# CCPayment's worked example.
APP_ID = "202401010000000000000000000000001"
SECRET = "0123456789abcdef0123456789abcdef"
CC_BODY = (
    b'{"order_valid_period":823456,"product_price":"1","merchant_order_id":"2012033040550",'
    b'"product_name":"test","return_url":"https://checkout.ccpayment.com/xxxxx"}'
)
CC_SIGN = "8fc375b73ff341177cc4281acd8139d0f8693047d71b91c62426f862277c450d"
CC_REPLY = b'{"code":10000,"msg":"success","data":{"payment_url":"https://s.cwallet.com/zpj9u9"}}'
NOW = datetime.fromtimestamp(1_700_000_000, tz=UTC)


def order(**changes: Any) -> CheckoutOrder:
    fields: dict[str, Any] = {
        "merchant_ref": "12345",
        "amount": Decimal("100.00"),
        "currency": "GBP",
        "description": "1 digital camera",
        "customer": {},
        "return_url": "https://shop.example/return/12345",
        "notify_url": None,
        "expires_at": None,
        "idempotency_key": "k-1",
    }
    return CheckoutOrder(**(fields | changes))


def paycore_client() -> PayCoreCheckoutClient:
    account = PayCoreAccount.model_validate(
        {"secrets": ["env:S"], "api_account_id": "coma_TESTACCOUNT01", "api_key": "env:K"},
        context={"env": {"S": "sk_live_x", "K": "EXAMPLEapiKey0001"}},
    )
    api = PAYCORE.checkout_api
    assert api is not None
    client = api.client("shop", account, api.default_base_url)
    assert isinstance(client, PayCoreCheckoutClient)
    return client


def cc_client(*secrets: str) -> CCPaymentCheckoutClient:
    values = secrets or (SECRET,)
    account = CCPaymentAccount.model_validate(
        {"app_id": APP_ID, "secrets": [f"env:S{i}" for i in range(len(values))]},
        context={"env": {f"S{i}": v for i, v in enumerate(values)}},
    )
    api = CCPAYMENT.checkout_api
    assert api is not None
    client = api.client("shop", account, api.default_base_url)
    assert isinstance(client, CCPaymentCheckoutClient)
    return client


def cc_order(**changes: Any) -> CheckoutOrder:
    example = order(
        merchant_ref="2012033040550",
        amount=Decimal(1),
        currency="USD",
        description="test",
        return_url="https://checkout.ccpayment.com/xxxxx",
        expires_at=NOW + timedelta(seconds=823456),
    )
    return replace(example, **changes)


def cc_answer(body: bytes = CC_REPLY, *, secret: str = SECRET) -> HttpAnswer:
    headers = {"Content-Type": "application/json", "Appid": APP_ID, "Timestamp": "1700000001"}
    headers["Sign"] = sign(APP_ID, secret, "1700000001", body)
    return HttpAnswer(status=200, headers=headers, body=body)


async def test_paycore_request_is_the_worked_example_byte_for_byte() -> None:
    call = FakeCall([json_answer(201, PAYCORE_CREATED)])
    created = await paycore_client().create(call, order(), NOW)
    [sent] = call.requests
    assert (sent.method, sent.url) == ("POST", "https://com.paycore.io/api/payment-invoices")
    assert sent.headers["Authorization"] == PAYCORE_AUTH
    assert sent.body == PAYCORE_BODY
    assert created.provider_ref == "cpi_EXAMPLE000000001"
    assert created.redirect_url == "https://com.paycore.io/hpp/?cpi=cpi_EXAMPLE000000001"
    assert created.provider_status == "created"


async def test_paycore_sends_expiry_callback_and_customer_and_prefers_the_hosts_hpp_url() -> None:
    body = orjson.loads(PAYCORE_CREATED)
    body["data"]["attributes"]["hpp_url"] = "https://pay.white.example/hpp/?cpi=cpi_X"
    call = FakeCall([json_answer(201, orjson.dumps(body))])
    expires = datetime(2016, 10, 11, 11, 0, tzinfo=UTC)
    created = await paycore_client().create(
        call,
        order(
            expires_at=expires,
            notify_url="https://paysync.example/webhooks/paycore/shop",
            customer={"email": "test102@gmail.com", "first_name": "ignored"},
            amount=Decimal("25.50"),
        ),
        NOW,
    )
    attributes = orjson.loads(call.requests[0].body or b"")["data"]["attributes"]
    assert attributes["expires"] == 1476183600
    assert attributes["callback_url"] == "https://paysync.example/webhooks/paycore/shop"
    assert attributes["customer"] == {"email": "test102@gmail.com"}
    assert b'"amount":25.5,' in (call.requests[0].body or b"")
    assert created.redirect_url == "https://pay.white.example/hpp/?cpi=cpi_X"


async def test_paycore_is_not_retry_safe_and_reads_its_errors() -> None:
    assert paycore_client().retry_safe is False
    refusal = b'{"request_id":"r1","error_type":"validation","error_codes":["currency_invalid"]}'
    with pytest.raises(CheckoutRejected) as rejected:
        await paycore_client().create(FakeCall([json_answer(422, refusal)]), order(), NOW)
    assert rejected.value.provider_code == "currency_invalid"
    with pytest.raises(ProviderRefused):
        await paycore_client().create(FakeCall([json_answer(401, b"{}")]), order(), NOW)
    # Created (201) but no id: it exists and can never be polled, an unknown outcome.
    with pytest.raises(ProviderUnavailable):
        await paycore_client().create(FakeCall([json_answer(201, b'{"data":{}}')]), order(), NOW)
    with pytest.raises(ProviderUnavailable):
        await paycore_client().create(FakeCall([json_answer(200, PAYCORE_CREATED)]), order(), NOW)


async def test_ccpayment_request_is_the_worked_example_body_and_sign() -> None:
    call = FakeCall([cc_answer()])
    created = await cc_client().create(call, cc_order(), NOW)
    [sent] = call.requests
    assert sent.url == "https://admin.ccpayment.com/ccpayment/v1/concise/url/get"
    assert sent.body == CC_BODY
    assert sent.headers["Sign"] == CC_SIGN
    assert (sent.headers["Appid"], sent.headers["Timestamp"]) == (APP_ID, "1700000000")
    assert sent.headers["Content-Type"] == "application/json; charset=utf-8"
    assert created.redirect_url == "https://s.cwallet.com/zpj9u9"
    assert created.provider_ref is None
    assert created.expires_at == NOW + timedelta(seconds=823456)


async def test_ccpayment_believes_only_a_signed_answer() -> None:
    assert cc_client().retry_safe is True
    for answer in (cc_answer(secret="f" * 32), json_answer(200, CC_REPLY)):
        with pytest.raises(ProviderRefused):
            await cc_client().create(FakeCall([answer]), cc_order(), NOW)
    # An answer signed by the older of two configured secrets is still CCPayment's.
    created = await cc_client("e" * 32, SECRET).create(FakeCall([cc_answer()]), cc_order(), NOW)
    assert created.redirect_url == "https://s.cwallet.com/zpj9u9"


async def test_ccpayment_codes_and_orders_it_cannot_take() -> None:
    duplicate = orjson.dumps({"code": 100804, "msg": "order exists", "data": None})
    with pytest.raises(CheckoutRejected) as rejected:
        await cc_client().create(FakeCall([cc_answer(duplicate)]), cc_order(), NOW)
    assert rejected.value.provider_code == "100804"
    limited = orjson.dumps({"code": 11004, "msg": "rate limit", "data": None})
    with pytest.raises(ProviderUnavailable):
        await cc_client().create(FakeCall([json_answer(200, limited)]), cc_order(), NOW)
    for bad in (
        cc_order(currency="EUR"),
        cc_order(amount=Decimal("1.005")),
        cc_order(expires_at=NOW + timedelta(days=11)),
    ):
        call = FakeCall([])
        with pytest.raises(CheckoutRejected):
            await cc_client().create(call, bad, NOW)
        assert call.requests == []
    # No expiry: CCPayment's default 24 h, and no order_valid_period sent.
    call = FakeCall([cc_answer()])
    created = await cc_client().create(call, cc_order(expires_at=None), NOW)
    assert b"order_valid_period" not in (call.requests[0].body or b"")
    assert created.expires_at == NOW + timedelta(days=1)
