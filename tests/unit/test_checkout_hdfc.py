"""HDFC SmartGateway's create-checkout client (Juspay Session API) against a recording fake
HttpCall: the fact sheet's worked example byte for byte, validation before any request,
and how each kind of answer is mapped."""

from __future__ import annotations

import json
from dataclasses import replace
from datetime import UTC, datetime
from decimal import Decimal
from pathlib import Path
from typing import Any

import orjson
import pytest

from paysync.errors import CheckoutRejected, ConfigError, ProviderRefused, ProviderUnavailable
from providers.base import CheckoutClient, CheckoutOrder, HttpAnswer
from providers.hdfc.adapter import ADAPTER
from providers.hdfc.scheme import HdfcAccount
from tests.support.status_api import FakeCall, Unavailable, json_answer

VECTOR = json.loads(
    (Path(__file__).parents[1] / "fixtures" / "hdfc" / "checkout_session.json").read_text()
)
INPUTS, EXPECTED = VECTOR["inputs"], VECTOR["expected"]
NOW = datetime(2026, 3, 12, 20, 14, 23, tzinfo=UTC)


def account(**fields: Any) -> HdfcAccount:
    base: dict[str, Any] = {
        "secrets": ["env:WH"],
        "webhook_username": "juspay",
        "merchant_id": INPUTS["merchant_id"],
        "api_key": "env:KEY",
        "api_version": INPUTS["api_version"],
        "payment_page_client_id": INPUTS["payment_page_client_id"],
    }
    base.update(fields)
    env = {"WH": "webhook-password", "KEY": INPUTS["api_key"]}
    return HdfcAccount.model_validate(base, context={"env": env})


def client(acct: HdfcAccount | None = None) -> CheckoutClient:
    api = ADAPTER.checkout_api
    assert api is not None
    return api.client("shop", acct or account(), INPUTS["base_url"])


def worked_order(**changes: Any) -> CheckoutOrder:
    given = INPUTS["order"]
    order = CheckoutOrder(
        merchant_ref=given["merchant_ref"],
        amount=Decimal(given["amount"]),
        currency=given["currency"],
        description=given["description"],
        customer=given["customer"],
        return_url=given["return_url"],
        notify_url="https://paysync.example/webhooks/hdfc/shop",
        expires_at=None,
        idempotency_key="idem-1",
    )
    return replace(order, **changes)


def session(
    order_id: str = "testing-order-one", web: str = "https://pay.example/x", **extra: Any
) -> dict[str, Any]:
    """A Session API answer (the fields the client reads)."""
    return {
        "status": "NEW",
        "id": "ordeh_1",
        "order_id": order_id,
        "payment_links": {"web": web},
        **extra,
    }


def answer(status: int, doc: dict[str, Any] | None = None, raw: bytes | None = None) -> HttpAnswer:
    return json_answer(status, raw if raw is not None else orjson.dumps(doc or {}))


async def test_the_request_is_the_worked_example_byte_for_byte() -> None:
    call = FakeCall([json_answer(200, EXPECTED["answer"].encode())])
    created = await client().create(call, worked_order(), NOW)
    [sent] = call.requests
    assert (sent.method, sent.url) == (EXPECTED["method"], EXPECTED["url"])
    assert sent.headers == EXPECTED["headers"]
    assert list(sent.headers) == list(EXPECTED["headers"])
    assert sent.body == EXPECTED["body"].encode()
    assert created.redirect_url == (
        "https://smartgatewayuat.hdfcbank.com/merchant/ipay/"
        "ordeh_57dfd768bb7d4896bc042y0b90bc9ad77/payment-page"
    )
    assert created.provider_ref == "ordeh_57dfd768bb7d4896bc042y0b90bc9ad77"
    assert created.provider_status == "NEW"
    # The trimmed answer states no order expiry; the SDK token's expiry is not the order's.
    assert created.expires_at is None


async def test_a_guest_is_routed_by_the_order_id_and_absent_fields_are_left_out() -> None:
    order = worked_order(
        amount=Decimal("1499"), customer={}, description="", return_url=None, merchant_ref="g-1"
    )
    call = FakeCall([answer(200, session("g-1"))])
    await client().create(call, order, NOW)
    [sent] = call.requests
    assert sent.headers["x-routing-id"] == "g-1"
    assert orjson.loads(sent.body or b"") == {
        "order_id": "g-1",
        "amount": "1499.00",
        "currency": "INR",
        "customer_id": "",
        "payment_page_client_id": "hdfcmaster",
        "action": "paymentPage",
    }


async def test_the_stated_order_expiry_is_returned() -> None:
    doc = session(order_expiry="2026-03-12T20:29:23Z")
    doc["payment_links"]["expiry"] = "2026-03-12T20:40:00Z"
    created = await client().create(FakeCall([answer(200, doc)]), worked_order(), NOW)
    assert created.expires_at == datetime(2026, 3, 12, 20, 29, 23, tzinfo=UTC)


@pytest.mark.parametrize(
    ("changes", "code"),
    [
        ({"merchant_ref": "a" * 21}, "paysync.invalid_merchant_ref"),
        ({"merchant_ref": "order/1"}, "paysync.invalid_merchant_ref"),
        ({"amount": Decimal("100.1532")}, "paysync.invalid_amount"),
        ({"amount": Decimal("0")}, "paysync.invalid_amount"),
        ({"amount": Decimal("-5")}, "paysync.invalid_amount"),
        ({"amount": Decimal("NaN")}, "paysync.invalid_amount"),
        ({"currency": "USD"}, "paysync.invalid_currency"),
        ({"customer": {"phone": "+919876543210"}}, "paysync.invalid_customer.phone"),
        ({"customer": {"customer_id": "has space"}}, "paysync.invalid_customer.customer_id"),
        ({"return_url": "shop.merchant.com"}, "paysync.invalid_return_url"),
    ],
)
async def test_an_invalid_order_is_refused_before_any_request(
    changes: dict[str, Any], code: str
) -> None:
    call = FakeCall([])
    with pytest.raises(CheckoutRejected) as caught:
        await client().create(call, worked_order(**changes), NOW)
    assert caught.value.provider_code == code
    assert call.requests == []


async def test_an_enabled_currency_is_sent_and_amounts_keep_two_decimals() -> None:
    acct = account(checkout_currencies=["INR", "USD"])
    call = FakeCall([answer(200, session())])
    await client(acct).create(call, worked_order(currency="USD", amount=Decimal("100.1")), NOW)
    body = orjson.loads(call.requests[0].body or b"")
    assert (body["currency"], body["amount"]) == ("USD", "100.10")


@pytest.mark.parametrize(
    ("reply", "error", "code"),
    [
        (
            answer(
                400,
                {
                    "status": "Bad Request",
                    "error_code": "INVALID_REQUEST",
                    "error_message": "Bad Request.",
                    "error_info": {"code": "INVALID_INPUT", "fields": ["customer_email"]},
                },
            ),
            CheckoutRejected,
            "INVALID_REQUEST",
        ),
        (answer(400, {"error_code": "ALREADY_EXISTS"}), CheckoutRejected, "ALREADY_EXISTS"),
        (answer(422, raw=b"<html>nope</html>"), CheckoutRejected, "422"),
        (answer(401, {"error_code": "E02"}), ProviderRefused, None),
        (answer(403, {}), ProviderRefused, None),
        (answer(400, {"error_code": "BAD_ORIGIN"}), ProviderRefused, None),
        (answer(400, {"error_code": "UNAUTHENTICATED"}), ProviderRefused, None),
        (answer(400, {"error_code": "DUPLICATE_REQUEST"}), ProviderUnavailable, None),
        (answer(502, {}), ProviderUnavailable, None),
        (answer(302, {}), ProviderRefused, None),
        (answer(200, raw=b"not json"), ProviderRefused, None),
        (answer(200, {"status": "NEW", "id": "ordeh_1", "order_id": "x"}), ProviderRefused, None),
        (
            answer(200, session("another-order")),
            ProviderRefused,
            None,
        ),
        (
            answer(200, session(web="javascript:alert(1)")),
            ProviderRefused,
            None,
        ),
    ],
)
async def test_each_answer_is_mapped(
    reply: HttpAnswer, error: type[Exception], code: str | None
) -> None:
    with pytest.raises(error) as caught:
        await client().create(FakeCall([reply]), worked_order(), NOW)
    if code is not None:
        assert isinstance(caught.value, CheckoutRejected)
        assert caught.value.provider_code == code


async def test_the_providers_message_and_fields_reach_the_merchant_bounded() -> None:
    doc = {
        "error_code": "INVALID_REQUEST",
        "error_message": "Bad\nRequest. " + "x" * 500,
        "error_info": {"fields": ["customer_email", "customer_phone"]},
    }
    with pytest.raises(CheckoutRejected) as caught:
        await client().create(FakeCall([answer(400, doc)]), worked_order(), NOW)
    message = str(caught.value)
    assert message.startswith("Bad Request. xxx")
    assert len(message) <= 200
    assert "\n" not in message


async def test_unavailable_comes_from_the_http_call() -> None:
    with pytest.raises(ProviderUnavailable):
        await client().create(Unavailable(), worked_order(), NOW)


def test_a_resent_create_cannot_make_a_second_order() -> None:
    assert client().retry_safe is True


def test_an_account_without_a_payment_page_client_id_is_a_config_error() -> None:
    api = ADAPTER.checkout_api
    assert api is not None
    with pytest.raises(ConfigError) as caught:
        api.client("shop", account(payment_page_client_id=None), INPUTS["base_url"])
    assert caught.value.problems == [
        "accounts.hdfc.shop.payment_page_client_id: required to create hosted checkouts "
        "(HDFC issues it; sandbox: hdfcmaster)"
    ]


def test_checkout_currencies_must_be_iso_codes() -> None:
    with pytest.raises(ValueError, match="ISO 4217"):
        account(checkout_currencies=["inr"])


def test_the_api_key_never_appears_in_the_clients_repr() -> None:
    assert INPUTS["api_key"] not in repr(client())
