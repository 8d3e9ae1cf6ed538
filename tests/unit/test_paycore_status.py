"""PayCore's status-API client (against a recording fake HttpCall) and the simulated
Commerce private API (aiohttp test server, loopback only), with a round trip from the
simulator through the client to the fold."""

from __future__ import annotations

import base64
import json
from collections.abc import AsyncIterator
from datetime import UTC, datetime
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest
from pydantic import ValidationError

from paysync.errors import ProviderRefused
from paysync.state.fold import Policy, fold
from providers.base import HttpAnswer, HttpCall, PaymentRef, StatusApi, StatusClient
from providers.paycore.adapter import ADAPTER
from providers.paycore.scheme import MAPPING, PayCoreAccount
from providers.paycore.status import DEFAULT_STATUS_BASE_URL
from schemas.envelope import Envelope, EnvelopeKind
from schemas.observation import Kind, Observation, Source
from schemas.status import Status
from simulator.paycore import SIMULATOR
from simulator.status import OrderBook, status_base_url
from tests.support.status_api import (
    FakeCall,
    StatusSim,
    json_answer,
    serve_status_sim,
)

FIXTURES = Path(__file__).parents[1] / "fixtures" / "paycore"
DOCUMENTED = json.loads((FIXTURES / "status_request.json").read_text())
INVOICE = (FIXTURES / "status_invoice_processed.json").read_bytes()
ACCOUNT = "shop-eu"
ACCOUNT_ID = "coma_ACCOUNTID"
API_KEY = "APIKEY-s3cret:with:colons"
INVOICE_ID = "cpi_Q7mK2xLp9RtV4nBc"
REFERENCE_ID = "ord-20240517-0042"
NOW = datetime(2024, 5, 17, 13, 0, 0, tzinfo=UTC)
POLICY = Policy(failure_is_final=MAPPING.failure_is_final)


def account(
    *, account_id: str | None = ACCOUNT_ID, api_key: str | None = API_KEY
) -> PayCoreAccount:
    fields: dict[str, Any] = {"secrets": ["env:LIVE"]}
    env = {"LIVE": "sk_live_x"}
    if account_id is not None:
        fields["api_account_id"] = account_id
    if api_key is not None:
        fields["api_key"] = "env:PAYCORE_API_KEY"
        env["PAYCORE_API_KEY"] = api_key
    return PayCoreAccount.model_validate(fields, context={"env": env})


def client(acct: PayCoreAccount | None = None, base_url: str = DEFAULT_STATUS_BASE_URL):
    api = ADAPTER.status_api
    assert api is not None
    return api.client(ACCOUNT, acct or account(), base_url)


def answer(status: int = 200, body: bytes = INVOICE) -> HttpAnswer:
    return json_answer(status, body)


REF = PaymentRef(merchant_ref=REFERENCE_ID, provider_ref=INVOICE_ID)


async def poll_one(call: HttpCall, ref: PaymentRef = REF, **kwargs: Any):
    [result] = await client(**kwargs).poll(call, [ref], NOW)
    return result


def callback_observations(body: bytes) -> list[Observation]:
    return ADAPTER.parse_callback(
        Envelope(
            message_id="msg-1",
            kind=EnvelopeKind.CALLBACK,
            provider="paycore",
            account=ACCOUNT,
            received_at=NOW,
            body=body,
            content_type="application/json",
            verified_by="env:LIVE",
        )
    )


# --- interface and configuration -----------------------------------------------------------


def test_adapter_has_a_status_api() -> None:
    api: StatusApi[PayCoreAccount] | None = ADAPTER.status_api
    assert api is not None
    assert api.default_base_url == "https://com.paycore.io/api"
    typed: StatusClient = client()
    assert typed.batch_size == 1


def test_an_account_id_with_a_colon_is_refused() -> None:
    # It is the Basic username: a colon would move part of it into the password.
    with pytest.raises(ValidationError, match="api_account_id"):
        account(account_id="coma_a:b")


def test_the_api_key_is_a_secret_of_the_account() -> None:
    acct = account()
    assert "env:PAYCORE_API_KEY" in [s.ref for s in acct.all_secrets()]
    assert API_KEY not in repr(acct)
    assert API_KEY not in repr(client(acct))


# --- the request ------------------------------------------------------------------------------


async def test_documented_reconciliation_call() -> None:
    inputs, expected = DOCUMENTED["inputs"], DOCUMENTED["expected"]
    acct = account(account_id=inputs["api_account_id"], api_key=inputs["api_key"])
    call = FakeCall([answer(body=(FIXTURES / expected["answer"]).read_bytes())])
    ref = PaymentRef(merchant_ref=inputs["reference_id"], provider_ref=inputs["invoice_id"])
    [result] = await client(acct, inputs["base_url"]).poll(call, [ref], NOW)
    [request] = call.requests
    assert (request.method, request.url) == (expected["method"], expected["url"])
    assert request.headers == expected["headers"]
    assert request.body is expected["body"]
    assert result.found


async def test_authorization_is_basic_account_id_and_api_key() -> None:
    call = FakeCall([answer()])
    await poll_one(call)
    scheme, token = call.requests[0].headers["Authorization"].split(" ")
    assert scheme == "Basic"
    # Only the first colon separates the username: the key may contain more.
    assert base64.b64decode(token) == f"{ACCOUNT_ID}:{API_KEY}".encode()


@pytest.mark.parametrize(
    ("base_url", "url"),
    [
        ("https://pay.example.com/api/", "https://pay.example.com/api/payment-invoices/"),
        ("http://sim:9000/paycore/shop-eu", "http://sim:9000/paycore/shop-eu/payment-invoices/"),
    ],
)
async def test_configured_base_url_is_used(base_url: str, url: str) -> None:
    call = FakeCall([answer()])
    await poll_one(call, base_url=base_url)
    assert call.requests[0].url == url + INVOICE_ID


async def test_invoice_id_is_one_path_segment() -> None:
    call = FakeCall([answer(404, b"")])
    await poll_one(call, PaymentRef(merchant_ref="m", provider_ref="cpi_a/../b?c"))
    assert call.requests[0].url == f"{DEFAULT_STATUS_BASE_URL}/payment-invoices/cpi_a%2F..%2Fb%3Fc"


async def test_a_payment_without_invoice_id_is_not_found_without_a_request() -> None:
    call = FakeCall([])
    result = await poll_one(call, PaymentRef(merchant_ref=REFERENCE_ID))
    assert (result.found, result.provider_status, result.observations) == (False, None, [])
    assert call.requests == []


async def test_each_ref_gets_one_poll_in_order() -> None:
    refs = [PaymentRef(merchant_ref="no-invoice"), REF]
    call = FakeCall([answer()])
    results = await client().poll(call, refs, NOW)
    assert [r.ref for r in results] == refs
    assert [r.found for r in results] == [False, True]


# --- the answer -------------------------------------------------------------------------------


async def test_200_is_read_as_the_callback_reads_the_same_document() -> None:
    result = await poll_one(FakeCall([answer()]))
    [called] = callback_observations(INVOICE)
    [polled] = result.observations
    assert (result.found, result.provider_status) == (True, "processed")
    assert (
        polled.dedup_key == called.dedup_key == f"paycore:shop-eu:{INVOICE_ID}:processed:1715950812"
    )
    assert polled.source is Source.RECONCILER
    assert (polled.kind, polled.status, polled.merchant_ref) == (
        Kind.STATUS,
        Status.PAID,
        REFERENCE_ID,
    )
    assert (polled.provider_ref, polled.amount_due, polled.currency) == (
        INVOICE_ID,
        Decimal("49.9"),
        "EUR",
    )
    # PayCore states when the invoice changed: that time, not the time of the poll.
    assert polled.observed_at == datetime.fromtimestamp(1715950812, UTC)


async def test_without_updated_the_poll_time_is_used() -> None:
    document = json.loads(INVOICE)
    del document["data"]["attributes"]["updated"]
    result = await poll_one(FakeCall([answer(body=json.dumps(document).encode())]))
    assert result.observations[0].observed_at == NOW


async def test_404_is_not_found() -> None:
    body = b'{"errors":[{"status":"404","title":"Not Found"}]}'
    result = await poll_one(FakeCall([answer(404, body)]))
    assert (result.found, result.provider_status, result.observations) == (False, None, [])


@pytest.mark.parametrize(
    ("status", "reason"),
    [
        (401, "unauthorized"),
        (403, "forbidden"),
        (400, "unexpected HTTP status 400"),
        (422, "unexpected HTTP status 422"),
        (301, "unexpected HTTP status 301"),
        (201, "unexpected HTTP status 201"),
    ],
)
async def test_other_statuses_are_refused(status: int, reason: str) -> None:
    with pytest.raises(ProviderRefused) as info:
        await poll_one(FakeCall([answer(status, b'{"error_type":"x"}')]))
    assert str(info.value) == reason


def _document(**changes: Any) -> bytes:
    document = json.loads(INVOICE)
    for key, value in changes.items():
        if key in {"type", "id"}:
            document["data"][key] = value
        else:
            document["data"]["attributes"][key] = value
    return json.dumps(document).encode()


@pytest.mark.parametrize(
    "body",
    [
        b"",
        b"<html>bad gateway</html>",
        b"[]",
        b'{"data": []}',
        b'{"data": {"type": "payment-invoices", "id": "cpi_Q7mK2xLp9RtV4nBc"}}',
        _document(status=None),
        _document(amount="forty"),
        _document(updated="yesterday"),
    ],
)
async def test_an_unreadable_answer_is_refused(body: bytes) -> None:
    with pytest.raises(ProviderRefused, match=r"^unreadable invoice: ") as info:
        await poll_one(FakeCall([answer(body=body)]))
    assert API_KEY not in str(info.value)


async def test_an_answer_that_is_not_a_payment_invoice_is_refused() -> None:
    with pytest.raises(ProviderRefused, match="not a payment invoice"):
        await poll_one(FakeCall([answer(body=_document(type="payout-invoices"))]))


@pytest.mark.parametrize(
    "body", [_document(id="cpi_SomeoneElse00001"), _document(reference_id="ord-other")]
)
async def test_an_answer_about_another_invoice_is_refused(body: bytes) -> None:
    with pytest.raises(ProviderRefused, match="another invoice"):
        await poll_one(FakeCall([answer(body=body)]))


# --- the simulated status API -----------------------------------------------------------------


Sim = StatusSim


@pytest.fixture
async def sim() -> AsyncIterator[Sim]:
    book = OrderBook()
    book.accounts[("paycore", ACCOUNT)] = account()
    async with serve_status_sim(book, {"paycore": SIMULATOR.add_status_routes}) as served:
        yield served


async def test_round_trip_folds_to_the_lifecycle_final_status(sim: Sim) -> None:
    life = SIMULATOR.lifecycle(account(), "order-7", now=1715950800)
    sim.book.add("paycore", ACCOUNT, life)
    ref = PaymentRef(merchant_ref="order-7", provider_ref=life.provider_ref)
    [result] = await client(base_url=status_base_url(sim.url, "paycore", ACCOUNT)).poll(
        sim.call, [ref], NOW
    )
    assert (result.found, result.provider_status) == (True, "refunded")
    assert fold(result.observations, POLICY).status is Status(life.statuses[-1])
    # The poll's fact is the last callback's fact: counted once however it arrives.
    last_callback = callback_observations(life.callbacks[-1].body)
    assert [o.dedup_key for o in result.observations] == [o.dedup_key for o in last_callback]
    assert sim.book.polls[("paycore", ACCOUNT, "order-7")] == 1


async def test_simulator_answers_404_for_an_unknown_invoice(sim: Sim) -> None:
    ref = PaymentRef(merchant_ref="order-x", provider_ref="cpi_Unknown000000001")
    [result] = await client(base_url=status_base_url(sim.url, "paycore", ACCOUNT)).poll(
        sim.call, [ref], NOW
    )
    assert not result.found
    url = f"{status_base_url(sim.url, 'paycore', ACCOUNT)}/payment-invoices/cpi_Unknown000000001"
    headers = {
        "Authorization": "Basic " + base64.b64encode(f"{ACCOUNT_ID}:{API_KEY}".encode()).decode()
    }
    raw = await sim.call("GET", url, headers=headers)
    assert raw.status == 404
    assert json.loads(raw.body)["errors"][0]["status"] == "404"


@pytest.mark.parametrize(
    "credentials", [f"{ACCOUNT_ID}:wrong", f"coma_other:{API_KEY}", f"{ACCOUNT_ID}:", ACCOUNT_ID]
)
async def test_simulator_refuses_wrong_credentials(sim: Sim, credentials: str) -> None:
    life = SIMULATOR.lifecycle(account(), "order-8", now=1715950800)
    sim.book.add("paycore", ACCOUNT, life)
    url = f"{status_base_url(sim.url, 'paycore', ACCOUNT)}/payment-invoices/{life.provider_ref}"
    for headers in (
        {"Authorization": "Basic " + base64.b64encode(credentials.encode()).decode()},
        {"Authorization": "Bearer " + API_KEY},
        {},
    ):
        assert (await sim.call("GET", url, headers=headers)).status == 401
    # Through the client: a wrong key is a refusal, never "not found".
    wrong = client(account(api_key="wrong"), status_base_url(sim.url, "paycore", ACCOUNT))
    ref = PaymentRef(merchant_ref="order-8", provider_ref=life.provider_ref)
    with pytest.raises(ProviderRefused, match="unauthorized"):
        await wrong.poll(sim.call, [ref], NOW)
    assert sim.book.polls[("paycore", ACCOUNT, "order-8")] == 0


async def test_simulator_refuses_an_account_it_does_not_have(sim: Sim) -> None:
    with pytest.raises(ProviderRefused, match="unauthorized"):
        await client(base_url=status_base_url(sim.url, "paycore", "other")).poll(
            sim.call, [REF], NOW
        )


async def test_simulator_serves_the_final_document_byte_for_byte(sim: Sim) -> None:
    life = SIMULATOR.lifecycle(account(), "order-9", now=1)
    sim.book.add("paycore", ACCOUNT, life)
    url = f"{status_base_url(sim.url, 'paycore', ACCOUNT)}/payment-invoices/{life.provider_ref}"
    headers = {
        "Authorization": "Basic " + base64.b64encode(f"{ACCOUNT_ID}:{API_KEY}".encode()).decode()
    }
    raw = await sim.call("GET", url, headers=headers)
    assert (raw.status, raw.body) == (200, life.callbacks[-1].body)
    assert raw.headers["Content-Type"].startswith("application/json")
