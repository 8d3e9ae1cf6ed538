"""Plural's create-checkout client (OAuth token + Create Hosted Checkout) against a recording
fake HttpCall: the fact sheet's worked example byte for byte, the status client's token
cache reused, one new token on 401, validation before any request and answer mapping."""

from __future__ import annotations

import json
from dataclasses import replace
from datetime import datetime, timedelta
from decimal import Decimal
from pathlib import Path
from typing import Any

import orjson
import pytest

from paysync.errors import CheckoutRejected, ConfigError, ProviderRefused, ProviderUnavailable
from providers.base import CheckoutOrder, HttpAnswer
from providers.plural.adapter import ADAPTER
from providers.plural.checkout import PluralCheckoutClient
from providers.plural.scheme import PluralAccount
from providers.plural.status import PluralStatusClient
from tests.support.status_api import FakeCall, Unavailable, json_answer

VECTOR = json.loads(
    (Path(__file__).parents[1] / "fixtures" / "plural" / "checkout_order.json").read_text()
)
INPUTS, EXPECTED = VECTOR["inputs"], VECTOR["expected"]
NOW = datetime.fromisoformat(INPUTS["now"])
BASE = INPUTS["base_url"]
TOKEN_URL = BASE + "/api/auth/v1/token"
CREATE_URL = EXPECTED["url"]
CLIENT_SECRET = "s3cret-plural-client"


def account(**fields: Any) -> PluralAccount:
    base: dict[str, Any] = {
        "secrets": ["env:WH"],
        "client_id": "client-0001",
        "client_secret": "env:CS",
    }
    base.update(fields)
    env = {"WH": "bWFkZS11cC1wbHVyYWwtd2ViaG9vay1zZWNyZXQ=", "CS": CLIENT_SECRET}
    return PluralAccount.model_validate(base, context={"env": env})


def client() -> PluralCheckoutClient:
    """A client as the adapter's API builds it, with the worked example's Request-ID."""
    acct = account()
    assert acct.client_id is not None
    assert acct.client_secret is not None
    tokens = PluralStatusClient(
        "shop", client_id=acct.client_id, client_secret=acct.client_secret, base_url=BASE
    )
    return PluralCheckoutClient(tokens, base_url=BASE, request_id=lambda: INPUTS["request_id"])


def worked_order(**changes: Any) -> CheckoutOrder:
    given = INPUTS["order"]
    order = CheckoutOrder(
        merchant_ref=given["merchant_ref"],
        amount=Decimal(given["amount"]),
        currency=given["currency"],
        description=given["description"],
        customer=given["customer"],
        return_url=given["return_url"],
        notify_url="https://paysync.example/webhooks/plural/shop",
        expires_at=None,
        idempotency_key=given["idempotency_key"],
    )
    return replace(order, **changes)


def token(value: str = INPUTS["access_token"], expires_in: int = 3600) -> HttpAnswer:
    return json_answer(200, orjson.dumps({"access_token": value, "expires_in": expires_in}))


def answer(status: int, doc: dict[str, Any] | None = None, raw: bytes | None = None) -> HttpAnswer:
    return json_answer(status, raw if raw is not None else orjson.dumps(doc or {}))


def created(redirect_url: str, **extra: Any) -> dict[str, Any]:
    return {"order_id": "v1-1", "redirect_url": redirect_url, **extra}


WORKED_ANSWER = json_answer(200, EXPECTED["answer"].encode())


async def test_the_request_is_the_worked_example_byte_for_byte() -> None:
    call = FakeCall([token(), WORKED_ANSWER])
    created = await client().create(call, worked_order(), NOW)
    token_request, sent = call.requests
    assert (token_request.method, token_request.url) == ("POST", TOKEN_URL)
    assert (sent.method, sent.url) == (EXPECTED["method"], CREATE_URL)
    assert sent.headers == EXPECTED["headers"]
    assert list(sent.headers) == list(EXPECTED["headers"])
    assert sent.body == EXPECTED["body"].encode()
    assert created.provider_ref == "v1-5757575757-aa-hU1rUd"
    assert created.redirect_url == (
        "https://api.pluralonline.com/api/v3/checkout-bff/redirect/checkout?token=<redirect-token>"
    )
    assert (created.provider_status, created.expires_at) == ("CREATED", None)


async def test_a_description_becomes_notes_and_a_customerless_order_has_no_purchase_details() -> (
    None
):
    order = worked_order(customer={}, description="Order 42", return_url=None)
    call = FakeCall([token(), WORKED_ANSWER])
    await client().create(call, order, NOW)
    assert orjson.loads(call.requests[1].body or b"") == {
        "merchant_order_reference": order.merchant_ref,
        "order_amount": {"value": 1100, "currency": "INR"},
        "pre_auth": False,
        "notes": "Order 42",
    }


async def test_the_token_is_cached_across_creates_and_the_request_id_is_fresh() -> None:
    checkout = ADAPTER.checkout_api
    assert checkout is not None
    built = checkout.client("shop", account(), BASE)
    call = FakeCall([token(), WORKED_ANSWER, WORKED_ANSWER])
    await built.create(call, worked_order(), NOW)
    await built.create(call, worked_order(), NOW + timedelta(minutes=5))
    urls = [r.url for r in call.requests]
    assert urls == [TOKEN_URL, CREATE_URL, CREATE_URL]
    first, second = call.requests[1].headers, call.requests[2].headers
    assert first["Request-ID"] != second["Request-ID"]
    assert second["Request-Timestamp"] == "2024-10-07T11:31:50.000Z"


async def test_a_401_fetches_one_new_token_and_resends_the_same_create() -> None:
    call = FakeCall(
        [token("tok-old"), answer(401, {"code": "UNAUTHORIZED"}), token("tok-new"), WORKED_ANSWER]
    )
    created = await client().create(call, worked_order(), NOW)
    assert created.provider_ref == "v1-5757575757-aa-hU1rUd"
    first, second = call.requests[1], call.requests[3]
    assert first.headers["Authorization"] == "Bearer tok-old"
    assert second.headers["Authorization"] == "Bearer tok-new"
    assert first.body == second.body
    assert first.headers["Idempotency-Key"] == second.headers["Idempotency-Key"]


async def test_a_second_401_is_refused() -> None:
    call = FakeCall([token("a"), answer(401, {}), token("b"), answer(401, {})])
    with pytest.raises(ProviderRefused):
        await client().create(call, worked_order(), NOW)
    assert len(call.requests) == 4


async def test_refused_credentials_are_refused() -> None:
    with pytest.raises(ProviderRefused):
        await client().create(FakeCall([answer(401, {})]), worked_order(), NOW)


@pytest.mark.parametrize(
    ("changes", "code"),
    [
        ({"merchant_ref": "a" * 51}, "paysync.invalid_merchant_ref"),
        ({"merchant_ref": "order 1"}, "paysync.invalid_merchant_ref"),
        ({"currency": "USD"}, "paysync.invalid_currency"),
        ({"amount": Decimal("11.005")}, "paysync.invalid_amount"),
        ({"amount": Decimal("0.99")}, "paysync.invalid_amount"),
        ({"amount": Decimal("1000000.01")}, "paysync.invalid_amount"),
        ({"amount": Decimal("Infinity")}, "paysync.invalid_amount"),
        ({"customer": {"customer_id": "1" * 20}}, "paysync.invalid_customer.customer_id"),
        ({"customer": {"email": "a" * 51}}, "paysync.invalid_customer.email"),
        ({"customer": {"phone": "+91 98765"}}, "paysync.invalid_customer.phone"),
        ({"return_url": "/plural/return"}, "paysync.invalid_return_url"),
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


@pytest.mark.parametrize("amount", ["1.00", "1000000.00", "11.5"])
async def test_the_documented_bounds_are_accepted(amount: str) -> None:
    call = FakeCall([token(), WORKED_ANSWER])
    await client().create(call, worked_order(amount=Decimal(amount)), NOW)
    body = orjson.loads(call.requests[1].body or b"")
    assert body["order_amount"]["value"] == int(Decimal(amount) * 100)


@pytest.mark.parametrize(
    ("reply", "error", "code"),
    [
        (
            answer(400, {"code": "INVALID_REQUEST", "message": "merchant_order_reference"}),
            CheckoutRejected,
            "INVALID_REQUEST",
        ),
        (answer(422, {"code": "AMOUNT_LIMIT_EXCEEDED"}), CheckoutRejected, "AMOUNT_LIMIT_EXCEEDED"),
        (answer(400, raw=b"bad gateway page"), CheckoutRejected, "400"),
        (answer(403, {"code": "FORBIDDEN"}), ProviderRefused, None),
        (answer(204, raw=b""), ProviderRefused, None),
        (answer(200, raw=b"[]"), ProviderRefused, None),
        (answer(200, {"order_id": "v1-1", "response_code": 200}), ProviderRefused, None),
        (
            answer(200, created("https://x.example/", response_code=500)),
            ProviderRefused,
            None,
        ),
        (answer(200, created("checkout?token=t")), ProviderRefused, None),
    ],
)
async def test_each_answer_is_mapped(
    reply: HttpAnswer, error: type[Exception], code: str | None
) -> None:
    with pytest.raises(error) as caught:
        await client().create(FakeCall([token(), reply]), worked_order(), NOW)
    if code is not None:
        assert isinstance(caught.value, CheckoutRejected)
        assert caught.value.provider_code == code


async def test_unavailable_comes_from_the_http_call() -> None:
    with pytest.raises(ProviderUnavailable):
        await client().create(Unavailable(), worked_order(), NOW)


def test_a_resent_create_cannot_make_a_second_order() -> None:
    assert client().retry_safe is True


def test_an_account_without_client_credentials_is_a_config_error() -> None:
    api = ADAPTER.checkout_api
    assert api is not None
    with pytest.raises(ConfigError) as caught:
        api.client("shop", account(client_id=None), BASE)
    assert caught.value.problems == ["accounts.plural.shop.client_id: required by the status API"]


def test_the_client_secret_never_appears_in_the_clients_repr() -> None:
    api = ADAPTER.checkout_api
    assert api is not None
    built = api.client("shop", account(), BASE)
    assert CLIENT_SECRET not in repr(built)
    assert CLIENT_SECRET not in repr(vars(built))
