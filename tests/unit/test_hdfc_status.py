"""HDFC SmartGateway's Order Status API client (against a recording fake HttpCall) and the
simulated API (aiohttp test server, loopback only), with round trips from the simulator
through the client to the fold."""

from __future__ import annotations

import base64
import json
from collections.abc import AsyncIterator
from dataclasses import dataclass
from datetime import UTC, datetime
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest
from pydantic import ValidationError

from paysync.errors import ProviderRefused
from paysync.state.fold import Policy, fold
from providers.base import HttpAnswer, HttpCall, PaymentRef, StatusApi, StatusClient
from providers.hdfc.adapter import ADAPTER
from providers.hdfc.scheme import MAPPING, HdfcAccount
from providers.hdfc.status import DEFAULT_STATUS_BASE_URL, HdfcStatusApi
from schemas.envelope import Envelope, EnvelopeKind
from schemas.observation import Kind, Observation, Source
from schemas.status import Status
from simulator.base import Lifecycle, Request
from simulator.hdfc import SIMULATOR, Refund, order_event
from simulator.status import OrderBook, status_base_url
from tests.support.status_api import (
    FakeCall,
    StatusSim,
    json_answer,
    serve_status_sim,
)

FIXTURES = Path(__file__).parents[1] / "fixtures" / "hdfc"
DOCUMENTED = json.loads((FIXTURES / "status_request.json").read_text())
CHARGED = (FIXTURES / "status_order_charged.json").read_bytes()
REFUNDED = (FIXTURES / "status_order_refunded.json").read_bytes()
VECTORS = json.loads((FIXTURES / "vectors.json").read_text())
ACCOUNT = "shop-in"
API_KEY = "MADEUPAPIKEY123"
MERCHANT_ID = "shop_demo"
ORDER_ID = "ord_TEST_0001"
NOW = datetime(2025, 1, 16, 5, 0, 0, tzinfo=UTC)
POLICY = Policy(failure_is_final=MAPPING.failure_is_final)
REF = PaymentRef(merchant_ref=ORDER_ID)


def account(
    *,
    api_key: str | None = API_KEY,
    merchant_id: str | None = MERCHANT_ID,
    **extra: Any,
) -> HdfcAccount:
    fields: dict[str, Any] = {"webhook_username": "paysync", "secrets": ["env:WH"], **extra}
    env = {"WH": "webhook-password"}
    if api_key is not None:
        fields["api_key"] = "env:HDFC_API_KEY"
        env["HDFC_API_KEY"] = api_key
    if merchant_id is not None:
        fields["merchant_id"] = merchant_id
    return HdfcAccount.model_validate(fields, context={"env": env})


def client(acct: HdfcAccount | None = None, base_url: str = DEFAULT_STATUS_BASE_URL):
    return ADAPTER.status_api.client(ACCOUNT, acct or account(), base_url)


def answer(status: int = 200, body: bytes = CHARGED) -> HttpAnswer:
    return json_answer(status, body)


async def poll_one(call: HttpCall, ref: PaymentRef = REF, **kwargs: Any):
    [result] = await client(**kwargs).poll(call, [ref], NOW)
    return result


def callback_observations(body: bytes) -> list[Observation]:
    return ADAPTER.parse_callback(
        Envelope(
            message_id="msg-1",
            kind=EnvelopeKind.CALLBACK,
            provider="hdfc",
            account=ACCOUNT,
            received_at=NOW,
            body=body,
            content_type="application/json",
            verified_by="env:WH",
        )
    )


def order(body: bytes = CHARGED, **changes: Any) -> bytes:
    """The fixture order with fields replaced (``...`` removes one)."""
    document = json.loads(body)
    document.update(changes)
    return json.dumps({k: v for k, v in document.items() if v is not ...}).encode()


# --- interface and configuration -----------------------------------------------------------


def test_adapter_has_a_status_api() -> None:
    api: StatusApi[HdfcAccount] | None = ADAPTER.status_api
    assert isinstance(api, HdfcStatusApi)
    assert api.default_base_url == "https://smartgateway.hdfc.bank.in"
    typed: StatusClient = client()
    assert typed.batch_size == 1


def test_api_version_defaults_and_is_a_date() -> None:
    assert account().api_version == "2024-06-24"
    assert account(api_version="2025-05-01").api_version == "2025-05-01"
    with pytest.raises(ValidationError, match="api_version"):
        account(api_version="latest")


def test_the_api_key_is_a_secret_of_the_account() -> None:
    acct = account()
    assert "env:HDFC_API_KEY" in [s.ref for s in acct.all_secrets()]
    assert API_KEY not in repr(acct)
    assert API_KEY not in repr(client(acct))


# --- the request ------------------------------------------------------------------------------


async def test_documented_order_status_call() -> None:
    inputs, expected = DOCUMENTED["inputs"], DOCUMENTED["expected"]
    acct = account(
        api_key=inputs["api_key"],
        merchant_id=inputs["merchant_id"],
        api_version=inputs["api_version"],
    )
    call = FakeCall([answer(body=(FIXTURES / expected["answer"]).read_bytes())])
    [result] = await client(acct, inputs["base_url"]).poll(
        call, [PaymentRef(merchant_ref=inputs["order_id"])], NOW
    )
    [request] = call.requests
    assert (request.method, request.url) == (expected["method"], expected["url"])
    assert request.headers == expected["headers"]
    assert request.body is expected["body"]
    assert result.found


async def test_authorization_is_the_documented_vector() -> None:
    [vector] = [v for v in VECTORS if v["name"] == "4_api_authorization_documented"]
    call = FakeCall([answer()])
    await poll_one(call, acct=account(api_key=vector["inputs"]["api_key"]))
    assert call.requests[0].headers["Authorization"] == vector["expected"]


async def test_configured_api_version_is_sent() -> None:
    call = FakeCall([answer()])
    await poll_one(call, acct=account(api_version="2025-05-01"))
    assert call.requests[0].headers["version"] == "2025-05-01"


@pytest.mark.parametrize(
    ("base_url", "url"),
    [
        ("https://smartgateway.hdfcuat.bank.in/", "https://smartgateway.hdfcuat.bank.in/orders/"),
        ("http://sim:9000/hdfc/shop-in", "http://sim:9000/hdfc/shop-in/orders/"),
    ],
)
async def test_configured_base_url_is_used(base_url: str, url: str) -> None:
    call = FakeCall([answer()])
    await poll_one(call, base_url=base_url)
    assert call.requests[0].url == url + ORDER_ID


async def test_order_id_is_one_path_segment() -> None:
    call = FakeCall([answer(404, b"")])
    await poll_one(call, PaymentRef(merchant_ref="a/../b?c d"))
    assert call.requests[0].url == f"{DEFAULT_STATUS_BASE_URL}/orders/a%2F..%2Fb%3Fc%20d"


async def test_each_ref_gets_one_poll_in_order() -> None:
    refs = [REF, PaymentRef(merchant_ref="unknown")]
    call = FakeCall([answer(), answer(404, b"")])
    results = await client().poll(call, refs, NOW)
    assert [r.ref for r in results] == refs
    assert [r.found for r in results] == [True, False]


# --- the answer -------------------------------------------------------------------------------


async def test_200_is_read_as_the_webhook_reads_the_same_order() -> None:
    result = await poll_one(FakeCall([answer()]))
    [polled] = result.observations
    [called] = callback_observations((FIXTURES / "callback_success.json").read_bytes())
    assert (result.found, result.provider_status) == (True, "CHARGED")
    assert polled.dedup_key == called.dedup_key == "hdfc:shop-in:ord_TEST_0001:status:CHARGED"
    assert polled.source is Source.RECONCILER
    assert (polled.kind, polled.status, polled.merchant_ref) == (Kind.STATUS, Status.PAID, ORDER_ID)
    assert (polled.provider_ref, polled.amount_due, polled.currency) == (
        "ordeh_9f8e7d6c5b4a",
        Decimal("1499.0"),
        "INR",
    )
    # The order object states no time for its status (date_created is the order's).
    assert polled.observed_at == NOW


async def test_refunds_in_the_answer_have_the_webhook_keys() -> None:
    result = await poll_one(FakeCall([answer(body=REFUNDED)]))
    called = callback_observations((FIXTURES / "callback_refund.json").read_bytes())
    assert [o.dedup_key for o in result.observations] == [o.dedup_key for o in called]
    status, refund = result.observations
    assert (status.kind, refund.kind) == (Kind.STATUS, Kind.REFUND)
    assert (refund.amount, refund.record_id) == (Decimal("500.0"), "rf_ord_TEST_0001_1")
    assert refund.observed_at == datetime(2025, 1, 16, 4, 10, tzinfo=UTC)
    assert {o.source for o in result.observations} == {Source.RECONCILER}
    assert fold(result.observations, POLICY).status is Status.PARTIALLY_REFUNDED


async def test_pending_and_failed_refunds_move_no_money() -> None:
    refunds = [
        {"unique_request_id": "rf_1", "amount": 100, "status": "PENDING"},
        {"unique_request_id": "rf_2", "amount": 100, "status": "FAILURE"},
    ]
    result = await poll_one(FakeCall([answer(body=order(refunds=refunds))]))
    assert [o.kind for o in result.observations] == [Kind.STATUS]


@pytest.mark.parametrize(
    "body", [b'{"status":"NOT_FOUND","error_code":"x","error_message":"y"}', b"", b"<html/>"]
)
async def test_404_is_not_found(body: bytes) -> None:
    result = await poll_one(FakeCall([answer(404, body)]))
    assert (result.found, result.provider_status, result.observations) == (False, None, [])


async def test_a_not_found_order_is_not_found() -> None:
    body = b'{"status":"NOT_FOUND","status_id":40,"order_id":"ord_TEST_0001"}'
    result = await poll_one(FakeCall([answer(body=body)]))
    assert (result.found, result.provider_status, result.observations) == (
        False,
        "NOT_FOUND",
        [],
    )


@pytest.mark.parametrize(
    ("status", "reason"),
    [
        (401, "unauthorized"),
        (403, "forbidden"),
        (400, "unexpected HTTP status 400"),
        (302, "unexpected HTTP status 302"),
        (204, "unexpected HTTP status 204"),
    ],
)
async def test_other_statuses_are_refused(status: int, reason: str) -> None:
    with pytest.raises(ProviderRefused) as info:
        await poll_one(FakeCall([answer(status, b'{"status":"error"}')]))
    assert str(info.value) == reason


@pytest.mark.parametrize(
    "body",
    [
        b"",
        b"<html>bad gateway</html>",
        b"[]",
        b'{"order_id":"ord_TEST_0001"}',
        order(status=None),
        order(amount="1,499"),
        order(refunds="none"),
        order(refunds=[{"status": "SUCCESS", "amount": 1}]),
    ],
)
async def test_an_unreadable_answer_is_refused(body: bytes) -> None:
    with pytest.raises(ProviderRefused, match=r"^unreadable order: ") as info:
        await poll_one(FakeCall([answer(body=body)]))
    assert API_KEY not in str(info.value)


@pytest.mark.parametrize("body", [order(order_id="ord_OTHER"), order(order_id=...)])
async def test_an_answer_about_another_order_is_refused(body: bytes) -> None:
    with pytest.raises(ProviderRefused, match="another order"):
        await poll_one(FakeCall([answer(body=body)]))


# --- the simulated status API -----------------------------------------------------------------


def _basic(text: str) -> str:
    return "Basic " + base64.b64encode(text.encode()).decode()


def api_headers() -> dict[str, str]:
    """What Juspay's Order Status API expects from the test account."""
    return {
        "Authorization": _basic(f"{API_KEY}:"),
        "x-merchantid": MERCHANT_ID,
        "version": "2024-06-24",
    }


@dataclass
class Sim(StatusSim):
    def client(self, acct: HdfcAccount | None = None, account_name: str = ACCOUNT):
        return ADAPTER.status_api.client(
            account_name, acct or account(), status_base_url(self.url, "hdfc", account_name)
        )


@pytest.fixture
async def sim() -> AsyncIterator[Sim]:
    book = OrderBook()
    book.accounts[("hdfc", ACCOUNT)] = account()
    async with serve_status_sim(book, {"hdfc": SIMULATOR.add_status_routes}) as served:
        yield Sim(served.book, served.url, served.call)


async def test_round_trip_folds_to_the_lifecycle_final_status(sim: Sim) -> None:
    life = SIMULATOR.lifecycle(account(), "order-42", now=1736934067)
    sim.book.add("hdfc", ACCOUNT, life)
    [result] = await sim.client().poll(sim.call, [PaymentRef(merchant_ref="order-42")], NOW)
    assert (result.found, result.provider_status) == (True, "CHARGED")
    assert fold(result.observations, POLICY).status is Status(life.statuses[-1])
    last_callback = callback_observations(life.callbacks[-1].body)
    assert [o.dedup_key for o in result.observations] == [o.dedup_key for o in last_callback]
    assert sim.book.polls[("hdfc", ACCOUNT, "order-42")] == 1


def refunded_lifecycle(merchant_ref: str) -> Lifecycle:
    """Charged, then a partial refund: the last webhook's order carries it."""
    acct, charged_at = account(), datetime(2025, 1, 15, 9, 41, 7, tzinfo=UTC)
    common: dict[str, Any] = {
        "merchant_ref": merchant_ref,
        "juspay_id": "ordeh_refunded000001",
        "status": "CHARGED",
        "amount": Decimal("1499.00"),
    }
    bodies = [
        order_event(event_name="ORDER_SUCCEEDED", created=charged_at, **common),
        order_event(
            event_name="ORDER_REFUNDED",
            created=datetime(2025, 1, 16, 4, 10, 5, tzinfo=UTC),
            refunds=[Refund(unique_request_id="rf_1", amount=Decimal("500.00"))],
            **common,
        ),
    ]
    return Lifecycle(
        merchant_ref=merchant_ref,
        provider_ref="ordeh_refunded000001",
        amount=Decimal("1499.00"),
        currency="INR",
        callbacks=[
            Request(headers=SIMULATOR.sign_callback(acct, b, now=0), body=b) for b in bodies
        ],
        statuses=["paid", "partially_refunded"],
    )


async def test_round_trip_with_a_refund(sim: Sim) -> None:
    life = refunded_lifecycle("order-43")
    sim.book.add("hdfc", ACCOUNT, life)
    [result] = await sim.client().poll(sim.call, [PaymentRef(merchant_ref="order-43")], NOW)
    assert fold(result.observations, POLICY).status is Status(life.statuses[-1])
    everything = [o for c in life.callbacks for o in callback_observations(c.body)]
    assert fold(result.observations + everything, POLICY) == fold(everything, POLICY)
    assert {o.dedup_key for o in result.observations} <= {o.dedup_key for o in everything}


async def test_simulator_serves_numbers_digit_for_digit(sim: Sim) -> None:
    life = refunded_lifecycle("order-44")
    sim.book.add("hdfc", ACCOUNT, life)
    url = f"{status_base_url(sim.url, 'hdfc', ACCOUNT)}/orders/order-44"
    raw = await sim.call("GET", url, headers=api_headers())
    assert raw.status == 200
    assert b'"amount":1499.00' in raw.body
    assert b'"amount":500.00' in raw.body
    assert json.loads(raw.body)["order_id"] == "order-44"


async def test_simulator_answers_404_not_found_for_an_unknown_order(sim: Sim) -> None:
    [result] = await sim.client().poll(sim.call, [PaymentRef(merchant_ref="nope")], NOW)
    assert not result.found
    raw = await sim.call(
        "GET", f"{status_base_url(sim.url, 'hdfc', ACCOUNT)}/orders/nope", headers=api_headers()
    )
    assert raw.status == 404
    assert json.loads(raw.body)["status"] == "NOT_FOUND"


@pytest.mark.parametrize(
    "changes",
    [
        {"Authorization": _basic("WRONGKEY:")},
        {"Authorization": "Bearer " + API_KEY},
        {"Authorization": None},
        {"x-merchantid": "someone_else"},
        {"x-merchantid": None},
    ],
)
async def test_simulator_refuses_wrong_credentials(sim: Sim, changes: dict[str, Any]) -> None:
    sim.book.add("hdfc", ACCOUNT, SIMULATOR.lifecycle(account(), "order-45", now=0))
    headers = {**api_headers(), **changes}
    headers = {k: v for k, v in headers.items() if v is not None}
    url = f"{status_base_url(sim.url, 'hdfc', ACCOUNT)}/orders/order-45"
    assert (await sim.call("GET", url, headers=headers)).status == 401
    assert sim.book.polls[("hdfc", ACCOUNT, "order-45")] == 0


async def test_simulator_accepts_the_node_kit_colon_less_key(sim: Sim) -> None:
    sim.book.add("hdfc", ACCOUNT, SIMULATOR.lifecycle(account(), "order-46", now=0))
    headers = {**api_headers(), "Authorization": _basic(API_KEY)}
    url = f"{status_base_url(sim.url, 'hdfc', ACCOUNT)}/orders/order-46"
    assert (await sim.call("GET", url, headers=headers)).status == 200


async def test_client_with_a_wrong_key_is_refused_not_not_found(sim: Sim) -> None:
    sim.book.add("hdfc", ACCOUNT, SIMULATOR.lifecycle(account(), "order-47", now=0))
    with pytest.raises(ProviderRefused, match="unauthorized"):
        await sim.client(account(api_key="WRONG")).poll(
            sim.call, [PaymentRef(merchant_ref="order-47")], NOW
        )
    with pytest.raises(ProviderRefused, match="unauthorized"):
        await sim.client(account_name="other").poll(sim.call, [REF], NOW)
