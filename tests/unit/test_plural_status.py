"""Plural's status-API client (OAuth token + Get Order) against a recording fake HttpCall,
and the simulated API (aiohttp test server, loopback only) with a round trip from the
simulator through the client to the fold."""

from __future__ import annotations

import asyncio
import json
import re
import uuid
from collections.abc import AsyncIterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta, timezone
from decimal import Decimal
from pathlib import Path
from typing import Any, Literal

import orjson
import pytest
from aiohttp import web

from paysync.errors import ProviderRefused
from paysync.state.fold import Policy, fold
from providers.base import HttpAnswer, PaymentRef, Poll, StatusApi, StatusClient
from providers.plural.adapter import ADAPTER
from providers.plural.scheme import MAPPING, PluralAccount
from schemas.envelope import Envelope, EnvelopeKind
from schemas.observation import Kind, Observation, Source
from schemas.status import Status
from simulator.plural import (
    SIMULATOR,
    TOKENS,
    PluralSimulator,
    get_order_document,
)
from simulator.status import OrderBook, status_base_url
from tests.support import status_api
from tests.support.status_api import StatusSim, json_answer, serve_status_sim

FIXTURES = Path(__file__).parents[1] / "fixtures" / "plural"
GET_ORDER = (FIXTURES / "get_order_processed.json").read_bytes()
WEBHOOK = (FIXTURES / "webhook_order_processed.json").read_bytes()
ACCOUNT = "shop-in"
ORDER_ID = "v1-240611101010-aa-TeSt01"
REFERENCE = "shop-000123"
CLIENT_ID = "client-0001"
CLIENT_SECRET = "s3cret-plural-client"
WEBHOOK_SECRET = "bWFkZS11cC1wbHVyYWwtd2ViaG9vay1zZWNyZXQ="
BASE = "https://api.pluralpay.in"
NOW = datetime(2024, 6, 11, 10, 11, 0, 123456, tzinfo=UTC)
POLICY = Policy(failure_is_final=MAPPING.failure_is_final)
TOKEN_URL = "https://api.pluralpay.in/api/auth/v1/token"
ORDER_URL = f"https://api.pluralpay.in/api/pay/v1/orders/{ORDER_ID}"
UUID4 = re.compile(r"[0-9a-f]{8}-[0-9a-f]{4}-4[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}")


def account(
    *, client_id: str | None = CLIENT_ID, secret: str | None = CLIENT_SECRET
) -> PluralAccount:
    fields: dict[str, Any] = {"secrets": ["env:WH"]}
    env = {"WH": WEBHOOK_SECRET}
    if client_id is not None:
        fields["client_id"] = client_id
    if secret is not None:
        fields["client_secret"] = "env:PLURAL_CLIENT_SECRET"
        env["PLURAL_CLIENT_SECRET"] = secret
    return PluralAccount.model_validate(fields, context={"env": env})


def client(acct: PluralAccount | None = None, base_url: str = BASE) -> StatusClient:
    api = ADAPTER.status_api
    assert api is not None
    return api.client(ACCOUNT, acct or account(), base_url)


@dataclass
class FakeCall(status_api.FakeCall):
    """The recording fake, yielding once per request: concurrent polls interleave."""

    interleave: bool = True


def answer(status: int = 200, body: bytes = GET_ORDER) -> HttpAnswer:
    return json_answer(status, body)


def token(value: str = "eyJ.tok-1", expires_in: object = 3600) -> HttpAnswer:
    # json, not orjson: a test sends integers beyond 64 bits.
    return answer(body=json.dumps({"access_token": value, "expires_in": expires_in}).encode())


def sdk_token(
    value: str = "eyJ.tok-1", expires_at: str = "2024-06-11T11:11:00.123456Z"
) -> HttpAnswer:
    """The token answer as the official SDK (pinelabs-python) models it: ``expires_at``."""
    return answer(body=json.dumps({"access_token": value, "expires_at": expires_at}).encode())


REF = PaymentRef(merchant_ref=REFERENCE, provider_ref=ORDER_ID)


async def poll_one(call: FakeCall, ref: PaymentRef = REF, now: datetime = NOW) -> Poll:
    [result] = await client().poll(call, [ref], now)
    return result


def callback_observations(body: bytes) -> list[Observation]:
    return ADAPTER.parse_callback(
        Envelope(
            message_id="m-1",
            kind=EnvelopeKind.CALLBACK,
            provider="plural",
            account=ACCOUNT,
            received_at=NOW,
            body=body,
            content_type="application/json",
            verified_by="env:WH",
            http_headers={"webhook-id": "msg_made_up_0001", "webhook-timestamp": "1718100000"},
        )
    )


def order_body(**overrides: Any) -> bytes:
    data = json.loads(GET_ORDER)["data"]
    data.update(overrides)
    return orjson.dumps({"data": {k: v for k, v in data.items() if v is not None}})


# --- interface and configuration -----------------------------------------------------------


def test_adapter_has_a_status_api_one_order_per_call() -> None:
    api: StatusApi[PluralAccount] | None = ADAPTER.status_api
    assert api is not None
    assert api.default_base_url == "https://api.pluralpay.in"
    assert client().batch_size == 1


def test_client_secret_is_a_secret_reference() -> None:
    acct = account()
    assert acct.client_secret is not None
    assert acct.client_secret.reveal() == CLIENT_SECRET
    assert CLIENT_SECRET not in repr(acct)
    assert acct.client_secret in acct.all_secrets()
    with pytest.raises(ValueError, match="inline"):
        PluralAccount.model_validate(
            {"secrets": ["env:WH"], "client_secret": CLIENT_SECRET},
            context={"env": {"WH": WEBHOOK_SECRET}},
        )


async def test_more_than_one_order_per_call_is_refused() -> None:
    with pytest.raises(ValueError, match="one order"):
        await client().poll(FakeCall([]), [REF, REF], NOW)


# --- the requests ---------------------------------------------------------------------------


async def test_token_then_get_order_by_plural_order_id() -> None:
    call = FakeCall([token(), answer()])
    await poll_one(call)
    token_request, order_request = call.requests
    assert (token_request.method, token_request.url) == ("POST", TOKEN_URL)
    assert token_request.body == (
        b'{"client_id":"client-0001","client_secret":"s3cret-plural-client",'
        b'"grant_type":"client_credentials"}'
    )
    assert token_request.headers["Content-Type"] == "application/json"
    assert "Authorization" not in token_request.headers
    assert (order_request.method, order_request.url, order_request.body) == ("GET", ORDER_URL, None)
    assert set(order_request.headers) == {
        "Authorization",
        "Request-ID",
        "Request-Timestamp",
        "Content-Type",
    }
    assert order_request.headers["Authorization"] == "Bearer eyJ.tok-1"
    assert order_request.headers["Content-Type"] == "application/json"
    assert order_request.headers["Request-Timestamp"] == "2024-06-11T10:11:00.123Z"
    assert UUID4.fullmatch(order_request.headers["Request-ID"])


async def test_request_ids_are_fresh_uuid4s() -> None:
    c = client()
    call = FakeCall([token(), answer(), answer(), answer()])
    for _ in range(3):
        await c.poll(call, [REF], NOW)
    ids = [r.headers["Request-ID"] for r in call.requests]
    assert len(set(ids)) == len(ids)
    assert all(uuid.UUID(i).version == 4 for i in ids)


@pytest.mark.parametrize(
    ("now", "stamp"),
    [
        (datetime(2024, 6, 11, 10, 11, 0, tzinfo=UTC), "2024-06-11T10:11:00.000Z"),
        (datetime(2024, 6, 11, 10, 11, 0, 999999, tzinfo=UTC), "2024-06-11T10:11:00.999Z"),
        (
            datetime(2024, 6, 11, 15, 41, 0, 5000, tzinfo=timezone(timedelta(hours=5.5))),
            "2024-06-11T10:11:00.005Z",
        ),
    ],
)
async def test_request_timestamp_is_utc_with_milliseconds(now: datetime, stamp: str) -> None:
    call = FakeCall([token(), answer()])
    await poll_one(call, now=now)
    assert call.requests[1].headers["Request-Timestamp"] == stamp


@pytest.mark.parametrize(
    ("merchant_ref", "path"),
    [
        ("shop-000123", "reference/shop-000123"),
        ("shop/0001 x?y#z", "reference/shop%2F0001%20x%3Fy%23z"),
        ("ордер-1", "reference/%D0%BE%D1%80%D0%B4%D0%B5%D1%80-1"),
    ],
)
async def test_without_a_plural_order_id_the_merchant_reference_is_asked(
    merchant_ref: str, path: str
) -> None:
    call = FakeCall([token(), answer(404, b"")])
    await poll_one(call, PaymentRef(merchant_ref=merchant_ref))
    assert call.requests[1].url == f"{BASE}/api/pay/v1/orders/{path}"


async def test_base_url_is_joined_without_a_double_slash() -> None:
    call = FakeCall([token(), answer(404, b"")])
    await client(base_url="http://sim/plural/shop-in/").poll(call, [REF], NOW)
    assert [r.url for r in call.requests] == [
        "http://sim/plural/shop-in/api/auth/v1/token",
        f"http://sim/plural/shop-in/api/pay/v1/orders/{ORDER_ID}",
    ]


# --- the token ------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "first",
    # The docs' sample (expires_in 3600) and the official SDK's model (expires_at, the same
    # instant: NOW + 3600 s).
    [token("t1"), sdk_token("t1")],
    ids=["expires_in", "expires_at"],
)
async def test_token_is_cached_and_refreshed_a_minute_before_it_expires(
    first: HttpAnswer,
) -> None:
    c = client()
    call = FakeCall([first, answer(), answer(), token("t2"), answer()])
    await c.poll(call, [REF], NOW)
    await c.poll(call, [REF], NOW + timedelta(seconds=3539))
    await c.poll(call, [REF], NOW + timedelta(seconds=3540))
    assert [r.headers.get("Authorization") for r in call.requests] == [
        None,
        "Bearer t1",
        "Bearer t1",
        None,
        "Bearer t2",
    ]


async def test_a_short_lived_token_is_refreshed_with_a_tenth_of_its_life_left() -> None:
    c = client()
    call = FakeCall([token("t1", 100), answer(), answer(), token("t2", 100), answer()])
    await c.poll(call, [REF], NOW)
    await c.poll(call, [REF], NOW + timedelta(seconds=89))
    await c.poll(call, [REF], NOW + timedelta(seconds=90))
    assert [r.url for r in call.requests].count(TOKEN_URL) == 2


async def test_concurrent_polls_share_one_token_request() -> None:
    c = client()
    call = FakeCall([token("t1"), answer(), answer(), answer()])
    await asyncio.gather(*(c.poll(call, [REF], NOW) for _ in range(3)))
    assert [r.url for r in call.requests].count(TOKEN_URL) == 1


async def test_a_401_gets_one_new_token_and_one_retry() -> None:
    call = FakeCall([token("t1"), answer(401, b""), token("t2"), answer()])
    result = await poll_one(call)
    assert result.found
    assert [(r.method, r.headers.get("Authorization")) for r in call.requests] == [
        ("POST", None),
        ("GET", "Bearer t1"),
        ("POST", None),
        ("GET", "Bearer t2"),
    ]


async def test_a_second_401_is_refused_without_a_third_try() -> None:
    call = FakeCall([token("t1"), answer(401, b""), token("t2"), answer(401, b"")])
    with pytest.raises(ProviderRefused, match=r"^unauthorized$"):
        await poll_one(call)
    assert len(call.requests) == 4


async def test_the_refreshed_token_is_kept_for_later_polls() -> None:
    c = client()
    call = FakeCall([token("t1"), answer(401, b""), token("t2"), answer(), answer()])
    await c.poll(call, [REF], NOW)
    await c.poll(call, [REF], NOW)
    assert call.requests[-1].headers["Authorization"] == "Bearer t2"


@pytest.mark.parametrize(
    ("status", "reason"),
    [
        (401, "unauthorized"),
        (403, "unauthorized"),
        (400, "token_unexpected_status_400"),
        (404, "token_unexpected_status_404"),
    ],
)
async def test_token_refusal_is_refused(status: int, reason: str) -> None:
    call = FakeCall([answer(status, b'{"code":"UNAUTHORIZED"}')])
    with pytest.raises(ProviderRefused, match=rf"^{reason}$"):
        await poll_one(call)
    assert len(call.requests) == 1


@pytest.mark.parametrize(
    "body",
    [
        b"",
        b"not json",
        b"[]",
        b'{"expires_in": 3600}',
        b'{"access_token": "", "expires_in": 3600}',
        b'{"access_token": "a b", "expires_in": 3600}',
        b'{"access_token": "tok\\r\\nX-Evil: 1", "expires_in": 3600}',
        b'{"access_token": 5, "expires_in": 3600}',
        b'{"access_token": "tok"}',
        b'{"access_token": "tok", "expires_in": 0}',
        b'{"access_token": "tok", "expires_in": -5}',
        b'{"access_token": "tok", "expires_in": true}',
        b'{"access_token": "tok", "expires_in": 3600.5}',
        b'{"access_token": "tok", "expires_in": "soon"}',
        # The doc's sample token is a placeholder ("eyJ" and an ellipsis): not header-safe.
        (FIXTURES / "token_response.json").read_bytes(),
    ],
)
async def test_unreadable_token_answer_is_refused(body: bytes) -> None:
    with pytest.raises(ProviderRefused, match=r"^unreadable_token_response$"):
        await poll_one(FakeCall([answer(body=body)]))


@pytest.mark.parametrize("expires_in", [10**30, "9" * 5000])
async def test_an_absurd_lifetime_is_held_to_a_day(expires_in: object) -> None:
    c = client()
    call = FakeCall([token("t1", expires_in), answer(), answer(), token("t2"), answer()])
    await c.poll(call, [REF], NOW)
    await c.poll(call, [REF], NOW + timedelta(seconds=86_339))
    await c.poll(call, [REF], NOW + timedelta(seconds=86_340))
    assert [r.url for r in call.requests].count(TOKEN_URL) == 2


async def test_expires_in_as_digits_is_read() -> None:
    c = client()
    call = FakeCall([token("t1", "120"), answer(), token("t2"), answer()])
    await c.poll(call, [REF], NOW)
    await c.poll(call, [REF], NOW + timedelta(seconds=108))
    assert [r.url for r in call.requests].count(TOKEN_URL) == 2


@pytest.mark.parametrize(
    ("expires_at", "refresh_after"),
    [
        ("2024-06-11T16:41:00.123456+05:30", 3540),  # another zone, the same instant
        ("2024-06-11T11:11:00.123456", 3540),  # no zone: UTC, as Plural's times are
        ("2024-06-11T10:12:40.123456Z", 90),  # 100 s: refreshed with a tenth left
        ("2030-01-01T00:00:00Z", 86_340),  # held to a day
    ],
)
async def test_expires_at_sets_the_refresh(expires_at: str, refresh_after: int) -> None:
    c = client()
    call = FakeCall([sdk_token("t1", expires_at), answer(), answer(), token("t2"), answer()])
    await c.poll(call, [REF], NOW)
    await c.poll(call, [REF], NOW + timedelta(seconds=refresh_after - 1))
    await c.poll(call, [REF], NOW + timedelta(seconds=refresh_after))
    assert [r.url for r in call.requests].count(TOKEN_URL) == 2


async def test_with_both_expires_in_and_expires_at_the_earlier_expiry_counts() -> None:
    body = {"access_token": "t1", "expires_in": 3600, "expires_at": "2024-06-11T10:12:40.123456Z"}
    c = client()
    call = FakeCall([answer(body=json.dumps(body).encode()), answer(), sdk_token("t2"), answer()])
    await c.poll(call, [REF], NOW)
    await c.poll(call, [REF], NOW + timedelta(seconds=90))
    assert [r.url for r in call.requests].count(TOKEN_URL) == 2


@pytest.mark.parametrize(
    ("expires_at", "reason"),
    [
        ("2024-06-11T10:11:00.123456Z", "expired_token_response"),  # now: no life left
        ("2024-06-11T09:00:00Z", "expired_token_response"),
        ("soon", "unreadable_token_response"),
        ("", "unreadable_token_response"),
        (1718104260, "unreadable_token_response"),
        (None, "unreadable_token_response"),
    ],
)
async def test_an_unusable_expires_at_is_refused(expires_at: object, reason: str) -> None:
    body = json.dumps({"access_token": "t1", "expires_at": expires_at}).encode()
    with pytest.raises(ProviderRefused, match=rf"^{reason}$"):
        await poll_one(FakeCall([answer(body=body)]))


async def test_the_client_secret_never_appears_in_a_refusal() -> None:
    for answers in ([answer(401, CLIENT_SECRET.encode())], [answer(body=b"{")]):
        with pytest.raises(ProviderRefused) as info:
            await poll_one(FakeCall(answers))
        assert CLIENT_SECRET not in str(info.value)


# --- the order ------------------------------------------------------------------------------


async def test_doc_get_order_example_is_the_webhook_fact() -> None:
    result = await poll_one(FakeCall([token(), answer()]))
    assert (result.found, result.provider_status) == (True, "PROCESSED")
    [obs] = result.observations
    assert (obs.kind, obs.source, obs.provider, obs.account) == (
        Kind.STATUS,
        Source.RECONCILER,
        "plural",
        ACCOUNT,
    )
    assert (obs.merchant_ref, obs.provider_ref) == (REFERENCE, ORDER_ID)
    assert obs.status is Status.PAID
    assert obs.amount_due == Decimal("1250.00")
    assert obs.currency == "INR"
    assert obs.record_id is None
    assert obs.observed_at == datetime(2024, 6, 11, 10, 10, 40, tzinfo=UTC)
    # The same fact as the doc's example webhook about this order: one dedup key.
    [from_webhook] = callback_observations(WEBHOOK)
    assert (
        obs.dedup_key == from_webhook.dedup_key == f"plural:{ACCOUNT}:{ORDER_ID}:status:PROCESSED"
    )
    state = fold([from_webhook, obs], POLICY)
    assert (state.status, state.amount_paid, state.anomaly) == (
        Status.PAID,
        Decimal("1250.00"),
        None,
    )


async def test_order_found_by_reference_is_applied() -> None:
    result = await poll_one(FakeCall([token(), answer()]), PaymentRef(merchant_ref=REFERENCE))
    assert result.found
    assert result.observations[0].provider_ref == ORDER_ID


async def test_order_without_updated_at_is_observed_now() -> None:
    result = await poll_one(FakeCall([token(), answer(body=order_body(updated_at=None))]))
    assert result.observations[0].observed_at == NOW


async def test_pre_auth_processed_order_is_captured() -> None:
    result = await poll_one(FakeCall([token(), answer(body=order_body(pre_auth=True))]))
    assert result.observations[0].status is Status.CAPTURED


async def test_unknown_order_status_is_kept_unmapped() -> None:
    result = await poll_one(FakeCall([token(), answer(body=order_body(status="ON_HOLD"))]))
    assert (result.provider_status, result.observations[0].status) == ("ON_HOLD", None)


@pytest.mark.parametrize(
    ("ref", "body"),
    [
        (REF, order_body(merchant_order_reference="shop-000124")),
        (PaymentRef(merchant_ref=REFERENCE), order_body(merchant_order_reference="shop-0001")),
        (REF, order_body(order_id="v1-240611101010-aa-Other1")),
    ],
    ids=["other-reference", "other-reference-by-reference", "other-order-id"],
)
async def test_another_orders_answer_is_refused(ref: PaymentRef, body: bytes) -> None:
    with pytest.raises(ProviderRefused, match=r"^order_mismatch$"):
        await poll_one(FakeCall([token(), answer(body=body)]), ref)


async def test_404_is_not_found() -> None:
    result = await poll_one(FakeCall([token(), answer(404, b'{"code":"ORDER_NOT_FOUND"}')]))
    assert (result.found, result.provider_status, result.observations) == (False, None, [])


@pytest.mark.parametrize(
    ("status", "reason"),
    [(403, "unauthorized"), (400, "unexpected_status_400"), (302, "unexpected_status_302")],
)
async def test_other_statuses_are_refused(status: int, reason: str) -> None:
    call = FakeCall([token(), answer(status, b"{}")])
    with pytest.raises(ProviderRefused, match=rf"^{reason}$"):
        await poll_one(call)
    assert len(call.requests) == 2


@pytest.mark.parametrize(
    "body",
    [
        b"",
        b"<html>",
        b"[]",
        b'{"data": null}',
        b'{"data": []}',
        order_body(status=None),
        order_body(order_id=None),
        order_body(merchant_order_reference=None),
        order_body(order_amount={"value": -1, "currency": "INR"}),
        order_body(updated_at="2024-06-11T10:10:40"),
        order_body(pre_auth="yes"),
    ],
)
async def test_unreadable_order_is_refused(body: bytes) -> None:
    with pytest.raises(ProviderRefused, match=r"^unreadable_response$"):
        await poll_one(FakeCall([token(), answer(body=body)]))


# --- the simulated API ----------------------------------------------------------------------


@dataclass
class Sim(StatusSim):
    # The /plural sub-application the simulator added its routes to.
    plural_app: web.Application

    @property
    def base_url(self) -> str:
        return status_base_url(self.url, "plural", ACCOUNT)

    def tokens(self) -> dict[str, tuple[str, float]]:
        return self.plural_app[TOKENS].issued


async def serve(simulator: PluralSimulator) -> AsyncIterator[Sim]:
    book = OrderBook()
    book.accounts[("plural", ACCOUNT)] = account()
    book.accounts[("plural", "other")] = account(client_id="client-0002")
    added: list[web.Application] = []

    def add_routes(app: web.Application) -> None:
        simulator.add_status_routes(app)
        added.append(app)

    async with serve_status_sim(book, {"plural": add_routes}) as served:
        yield Sim(served.book, served.url, served.call, added[0])


@pytest.fixture
async def sim() -> AsyncIterator[Sim]:
    async for s in serve(PluralSimulator()):
        yield s


def sim_client(sim: Sim, acct: PluralAccount | None = None, name: str = ACCOUNT) -> StatusClient:
    api = ADAPTER.status_api
    assert api is not None
    return api.client(ACCOUNT, acct or account(), status_base_url(sim.url, "plural", name))


def test_get_order_document_is_the_last_webhook_order_with_full_payments() -> None:
    life = SIMULATOR.lifecycle(account(), "order-1", now=1718100000)
    doc = get_order_document(life)
    last = json.loads(life.callbacks[-1].body)["data"]
    assert {k: v for k, v in doc["data"].items() if k != "payments"} == {
        k: v for k, v in last.items() if k != "payments"
    }
    [payment] = doc["data"]["payments"]
    assert payment["status"] == "PROCESSED"
    assert payment["payment_amount"] == {"value": 125000, "currency": "INR"}
    assert set(payment["acquirer_data"]) == {"approval_code", "acquirer_reference", "rrn"}
    assert payment["capture_data"][0]["capture_amount"] == payment["payment_amount"]


@pytest.mark.parametrize("by", ["order_id", "reference"])
async def test_round_trip_folds_to_the_lifecycle_final_status(sim: Sim, by: str) -> None:
    life = SIMULATOR.lifecycle(account(), "order-7", now=1718100000)
    sim.book.add("plural", ACCOUNT, life)
    provider_ref = life.provider_ref if by == "order_id" else None
    ref = PaymentRef(merchant_ref="order-7", provider_ref=provider_ref)
    [result] = await sim_client(sim).poll(sim.call, [ref], datetime.now(UTC))
    assert (result.found, result.provider_status) == (True, "PROCESSED")
    assert fold(result.observations, POLICY).status is Status(life.statuses[-1])
    # The poll's fact is the last webhook's fact: counted once however it arrives.
    last = callback_observations(life.callbacks[-1].body)
    assert [o.dedup_key for o in result.observations] == [o.dedup_key for o in last]
    assert [o.observed_at for o in result.observations] == [o.observed_at for o in last]
    assert sim.book.polls[("plural", ACCOUNT, "order-7")] == 1


async def test_simulator_unknown_order_is_not_found(sim: Sim) -> None:
    c = sim_client(sim)
    for ref in (PaymentRef(merchant_ref="nope"), PaymentRef(merchant_ref="n", provider_ref="v1-x")):
        [result] = await c.poll(sim.call, [ref], datetime.now(UTC))
        assert not result.found


@pytest.mark.parametrize(
    "acct",
    # (An empty client_id never gets this far: the configuration refuses it.)
    [account(secret="wrong"), account(client_id="client-0002")],
    ids=["wrong-secret", "other-client-id"],
)
async def test_simulator_refuses_wrong_client_credentials(sim: Sim, acct: PluralAccount) -> None:
    with pytest.raises(ProviderRefused, match=r"^unauthorized$"):
        await sim_client(sim, acct).poll(sim.call, [REF], datetime.now(UTC))
    assert sim.tokens() == {}


async def test_simulator_refuses_an_account_without_client_credentials(sim: Sim) -> None:
    sim.book.accounts[("plural", "bare")] = account(client_id=None, secret=None)
    for name in ("bare", "unknown"):
        with pytest.raises(ProviderRefused, match=r"^unauthorized$"):
            await sim_client(sim, name=name).poll(sim.call, [REF], datetime.now(UTC))


async def test_simulator_token_answer_and_grant_type(sim: Sim) -> None:
    url = sim.base_url + "/api/auth/v1/token"
    good = {"client_id": CLIENT_ID, "client_secret": CLIENT_SECRET}
    raw = await sim.call(
        "POST", url, headers={}, body=orjson.dumps({**good, "grant_type": "client_credentials"})
    )
    doc = json.loads(raw.body)
    assert raw.status == 200
    # The official SDK's GenerateTokenResponse: access_token and an ISO 8601 expires_at.
    assert set(doc) == {"access_token", "expires_at"}
    expires_at = datetime.fromisoformat(doc["expires_at"])
    assert expires_at.tzinfo is not None
    left = (expires_at - datetime.now(UTC)).total_seconds()
    assert 3590 < left <= 3600
    for bad in ({**good, "grant_type": "password"}, good, [good]):
        assert (await sim.call("POST", url, headers={}, body=orjson.dumps(bad))).status == 400
    assert (await sim.call("POST", url, headers={}, body=b"{")).status == 400


async def test_simulator_orders_need_a_token_of_this_account(sim: Sim) -> None:
    life = SIMULATOR.lifecycle(account(), "order-8", now=1718100000)
    sim.book.add("plural", ACCOUNT, life)
    other = PluralAccount.model_validate(
        {"secrets": ["env:WH"], "client_id": "client-0002", "client_secret": "env:S"},
        context={"env": {"WH": WEBHOOK_SECRET, "S": CLIENT_SECRET}},
    )
    # A token issued to another account opens nothing here.
    await sim_client(sim, other, name="other").poll(
        sim.call, [PaymentRef(merchant_ref="x")], datetime.now(UTC)
    )
    [(other_token, _)] = sim.tokens().items()
    url = f"{sim.base_url}/api/pay/v1/orders/{life.provider_ref}"
    stamp = {"Request-ID": str(uuid.uuid4()), "Request-Timestamp": "2024-06-11T10:11:00.000Z"}
    for headers in (
        {**stamp, "Authorization": f"Bearer {other_token}"},
        {**stamp, "Authorization": "Bearer made-up"},
        {**stamp, "Authorization": other_token},
        stamp,
    ):
        assert (await sim.call("GET", url, headers=headers)).status == 401
    assert sim.book.polls[("plural", ACCOUNT, "order-8")] == 0


async def test_simulator_answers_without_request_id_and_timestamp(sim: Sim) -> None:
    # The official SDK sends neither unless its client is built with them (then one fixed
    # pair for every call, the timestamp as str(datetime)): the API takes them as optional.
    life = SIMULATOR.lifecycle(account(), "order-11", now=1718100000)
    sim.book.add("plural", ACCOUNT, life)
    await sim_client(sim).poll(sim.call, [PaymentRef(merchant_ref="x")], datetime.now(UTC))
    [tok] = sim.tokens()
    url = f"{sim.base_url}/api/pay/v1/orders/{life.provider_ref}"
    bearer = {"Authorization": f"Bearer {tok}"}
    for extra in (
        {},
        {"Request-ID": "x"},
        {"Request-Timestamp": "2024-06-11 10:11:00.123000+00:00"},
    ):
        assert (await sim.call("GET", url, headers={**bearer, **extra})).status == 200


async def test_a_revoked_token_is_replaced_once(sim: Sim) -> None:
    life = SIMULATOR.lifecycle(account(), "order-9", now=1718100000)
    sim.book.add("plural", ACCOUNT, life)
    c = sim_client(sim)
    ref = PaymentRef(merchant_ref="order-9", provider_ref=life.provider_ref)
    await c.poll(sim.call, [ref], datetime.now(UTC))
    [first] = sim.tokens()
    sim.tokens().clear()  # the provider forgets it before its stated expiry
    [result] = await c.poll(sim.call, [ref], datetime.now(UTC))
    assert result.found
    assert list(sim.tokens()) != [first]
    assert len(sim.tokens()) == 1


async def test_simulator_token_lifetime_is_configurable_and_enforced() -> None:
    async for sim in serve(PluralSimulator(token_expires_in=0, expiry_field="expires_in")):
        life = SIMULATOR.lifecycle(account(), "order-10", now=1718100000)
        sim.book.add("plural", ACCOUNT, life)
        ref = PaymentRef(merchant_ref="order-10", provider_ref=life.provider_ref)
        # expires_in 0 is refused by the client (no usable token) ...
        with pytest.raises(ProviderRefused, match="unreadable_token_response"):
            await sim_client(sim).poll(sim.call, [ref], datetime.now(UTC))
        # ... and such a token is already expired at the simulator.
        [tok] = sim.tokens()
        stamp = {"Request-ID": "r", "Request-Timestamp": "t", "Authorization": f"Bearer {tok}"}
        url = f"{sim.base_url}/api/pay/v1/orders/{life.provider_ref}"
        assert (await sim.call("GET", url, headers=stamp)).status == 401


@pytest.mark.parametrize("shape", ["expires_at", "expires_in"])
async def test_either_expiry_field_round_trips(shape: Literal["expires_at", "expires_in"]) -> None:
    # The SDK's model (expires_at) and the docs' sample (expires_in) both occur.
    async for sim in serve(PluralSimulator(expiry_field=shape)):
        life = SIMULATOR.lifecycle(account(), "order-12", now=1718100000)
        sim.book.add("plural", ACCOUNT, life)
        ref = PaymentRef(merchant_ref="order-12", provider_ref=life.provider_ref)
        [result] = await sim_client(sim).poll(sim.call, [ref], datetime.now(UTC))
        assert (result.found, result.provider_status) == (True, "PROCESSED")
