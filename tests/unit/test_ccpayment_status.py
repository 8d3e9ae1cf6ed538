"""CCPayment's status-API client (v1 Order Information Interface) against a recording fake
HttpCall, the credit dedup key shared with the webhook parser, and the simulated API
(aiohttp test server, loopback only) with a round trip from the simulator through the
client to the fold."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from datetime import UTC, datetime
from decimal import Decimal
from pathlib import Path
from typing import Any

import orjson
import pytest

from paysync.errors import MalformedMessage, ProviderRefused, ProviderUnavailable
from paysync.state.fold import fold
from providers.base import HttpAnswer, PaymentRef, Poll, StatusApi, StatusClient
from providers.ccpayment.adapter import ADAPTER
from providers.ccpayment.scheme import CCPaymentAccount, credit_key, sign
from schemas.envelope import Envelope, EnvelopeKind
from schemas.observation import Kind, Observation, Source
from schemas.status import Status
from simulator.base import Lifecycle
from simulator.ccpayment import SIMULATOR, order_info, webhook_body
from simulator.status import OrderBook, status_base_url
from tests.support.status_api import FakeCall, StatusSim, serve_status_sim

# The doc's invented credentials, request vector and example answer (exact bytes).
FIXTURES = Path(__file__).parents[1] / "fixtures" / "ccpayment"
APP_ID = "202401010000000000000000000000001"
SECRET = "0123456789abcdef0123456789abcdef"
OLD_SECRET = "fedcba9876543210fedcba9876543210"
REQUEST_SIGN = "6c9ec01ab0da616933921477548438066620146f9537f8796523462e1d5e1931"
EXAMPLE_ANSWER = (FIXTURES / "example_order_info_response.json").read_bytes()
EXAMPLE_WEBHOOK = (FIXTURES / "example_webhook_partial_payment.json").read_bytes()
EXAMPLE_REF = "ord-20240517-0042"
ACCOUNT = "shop-eu"
BASE = "https://admin.ccpayment.com"
NOW = datetime.fromtimestamp(1700000000, tz=UTC)


def account(*secrets: str) -> CCPaymentAccount:
    values = secrets or (SECRET,)
    env = {f"S{i}": value for i, value in enumerate(values)}
    return CCPaymentAccount.model_validate(
        {"app_id": APP_ID, "secrets": [f"env:S{i}" for i in range(len(values))]},
        context={"env": env},
    )


def client(acct: CCPaymentAccount | None = None, base_url: str = BASE) -> StatusClient:
    api = ADAPTER.status_api
    assert api is not None
    return api.client(ACCOUNT, acct or account(), base_url)


def signed_answer(
    body: bytes = EXAMPLE_ANSWER,
    *,
    secret: str = SECRET,
    app_id: str = APP_ID,
    status: int = 200,
    timestamp: str = "1700000005",
) -> HttpAnswer:
    headers = {
        "Content-Type": "application/json; charset=utf-8",
        "Appid": app_id,
        "Timestamp": timestamp,
        "Sign": sign(app_id, secret, timestamp, body),
    }
    return HttpAnswer(status=status, headers=headers, body=body)


def envelope_doc(code: int = 10000, data: object = None, msg: str = "success") -> bytes:
    return orjson.dumps({"code": code, "msg": msg, "data": data})


def item(ref: str, trades: list[Any] | None = None, **detail: Any) -> dict[str, Any]:
    order_detail = {
        "merchant_order_id": ref,
        "order_amount": "25",
        "crypto": "USDT",
        "status": "Successful",
        "created": 1699990000,
        **detail,
    }
    return {"order_detail": order_detail, "trade_list": trades or [], "refund_list": []}


def trade(txid: str, amount: str, pay_time: object = 1699999000, **more: Any) -> dict[str, Any]:
    entry: dict[str, Any] = {"amount": amount, "txid": txid, "crypto": "USDT", **more}
    if pay_time is not None:
        entry["pay_time"] = pay_time
    return entry


async def poll(
    answers: list[HttpAnswer], refs: list[str], acct: CCPaymentAccount | None = None
) -> tuple[list[Poll], FakeCall]:
    call = FakeCall(answers)
    results = await client(acct).poll(call, [PaymentRef(merchant_ref=r) for r in refs], NOW)
    return results, call


def callback(body: bytes, account_name: str = ACCOUNT) -> list[Observation]:
    return ADAPTER.parse_callback(
        Envelope(
            message_id="m-1",
            kind=EnvelopeKind.CALLBACK,
            provider="ccpayment",
            account=account_name,
            received_at=NOW,
            body=body,
            content_type="application/json; charset=utf-8",
            verified_by="env:S0",
        )
    )


def webhook(
    ref: str, record_id: str, txid: str, paid: str, due: str = "25", price: str | None = None
) -> bytes:
    return webhook_body(
        merchant_ref=ref,
        record_id=record_id,
        order_id="202405171000000000000000000000007",
        order_amount=Decimal(due),
        paid_amount=Decimal(paid),
        txid=txid,
        product_price=None if price is None else Decimal(price),
    )


# --- interface ------------------------------------------------------------------------------


def test_adapter_has_a_status_api_with_batches_of_100() -> None:
    api: StatusApi[CCPaymentAccount] | None = ADAPTER.status_api
    assert api is not None
    assert api.default_base_url == "https://admin.ccpayment.com"
    assert client().batch_size == 100


async def test_more_than_a_batch_is_refused_before_any_call() -> None:
    call = FakeCall([])
    refs = [PaymentRef(merchant_ref=f"o-{i}") for i in range(101)]
    with pytest.raises(ValueError, match="100"):
        await client().poll(call, refs, NOW)
    assert await client().poll(call, [], NOW) == []
    assert call.requests == []


# --- the request ----------------------------------------------------------------------------


async def test_request_is_the_documented_vector_byte_for_byte() -> None:
    _, call = await poll([signed_answer(envelope_doc(11003, None, "not found"))], ["order-1001"])
    [request] = call.requests
    assert request.method == "POST"
    assert request.url == "https://admin.ccpayment.com/ccpayment/v1/bill/info"
    assert request.body == (FIXTURES / "vector_order_info_request.json").read_bytes()
    assert request.headers == {
        "Appid": APP_ID,
        "Timestamp": "1700000000",
        "Sign": REQUEST_SIGN,
        "Content-Type": "application/json; charset=utf-8",
    }


async def test_request_is_signed_with_the_first_secret_and_names_each_order_once() -> None:
    answers = [signed_answer(envelope_doc(11003), secret=OLD_SECRET)]
    results, call = await poll(answers, ["a", "b", "a"], account(OLD_SECRET, SECRET))
    [request] = call.requests
    assert request.body == b'{"merchant_order_ids":["a","b"]}'
    assert request.headers["Sign"] == sign(APP_ID, OLD_SECRET, "1700000000", request.body)
    assert [r.ref.merchant_ref for r in results] == ["a", "b", "a"]


async def test_base_url_is_joined_without_a_double_slash() -> None:
    call = FakeCall([signed_answer(envelope_doc(11003))])
    await client(base_url="http://sim/ccpayment/shop/").poll(
        call, [PaymentRef(merchant_ref="x")], NOW
    )
    assert call.requests[0].url == "http://sim/ccpayment/shop/ccpayment/v1/bill/info"


# --- the answer -----------------------------------------------------------------------------


async def test_doc_example_answer_gives_one_credit_per_trade() -> None:
    [result], _ = await poll([signed_answer()], [EXAMPLE_REF])
    assert (result.found, result.provider_status) == (True, "Successful")
    first, second = result.observations
    for obs in result.observations:
        assert (obs.kind, obs.source, obs.provider, obs.account) == (
            Kind.CREDIT,
            Source.RECONCILER,
            "ccpayment",
            ACCOUNT,
        )
        assert obs.merchant_ref == EXAMPLE_REF
        # The order's price (25 USD), as the merchant registers it; the trades' crypto
        # (10 and 15.012 of the 25.012 USDT due) valued as their shares of it.
        assert obs.amount_due == Decimal("25")
        assert obs.currency == "USD"
        assert obs.record_id is None
        assert obs.status is None
    assert (first.amount, second.amount) == (Decimal("10.00"), Decimal("15.00"))
    assert first.observed_at == datetime.fromtimestamp(1715941800, tz=UTC)
    assert second.observed_at == datetime.fromtimestamp(1715942400, tz=UTC)
    assert first.dedup_key == f"ccpayment:{ACCOUNT}:{EXAMPLE_REF}:credit:9f1c…e2"
    state = fold(result.observations)
    assert (state.status, state.amount_paid) == (Status.PAID, Decimal("25.00"))


async def test_poll_and_webhooks_of_the_same_transfers_are_counted_once() -> None:
    [result], _ = await poll([signed_answer()], [EXAMPLE_REF])
    # The doc's example webhook is the first transfer of the example answer.
    [first_webhook] = callback(EXAMPLE_WEBHOOK)
    second_webhook_body = webhook(
        EXAMPLE_REF, "202405171030000000000000000000012", "44ab…90", "15.012", "25.012", "25"
    )
    [second_webhook] = callback(second_webhook_body)
    assert [o.dedup_key for o in result.observations] == [
        first_webhook.dedup_key,
        second_webhook.dedup_key,
    ]
    assert first_webhook.record_id == "202405171030000000000000000000011"
    state = fold([first_webhook, second_webhook, *result.observations])
    assert (state.status, state.amount_paid) == (Status.PAID, Decimal("25.00"))
    assert state.anomaly is None


async def test_refs_absent_from_the_answer_are_not_found_and_strangers_are_ignored() -> None:
    body = envelope_doc(data=[item("b", [trade("tx-b", "25")]), item("stranger")])
    results, _ = await poll([signed_answer(body)], ["a", "b"])
    assert [(r.ref.merchant_ref, r.found) for r in results] == [("a", False), ("b", True)]
    assert results[0].observations == []
    assert [o.merchant_ref for o in results[1].observations] == ["b"]


async def test_order_without_trades_is_found_with_no_observations() -> None:
    body = envelope_doc(
        data=[item("a", status="Pending"), {"order_detail": item("b")["order_detail"]}]
    )
    results, _ = await poll([signed_answer(body)], ["a", "b"])
    assert [(r.found, r.provider_status, r.observations) for r in results] == [
        (True, "Pending", []),
        (True, "Successful", []),
    ]


async def test_trade_without_pay_time_is_observed_now_and_takes_the_order_token() -> None:
    body = envelope_doc(data=[item("a", [{"amount": "5", "txid": "tx-1"}], crypto="USDC")])
    [result], _ = await poll([signed_answer(body)], ["a"])
    [obs] = result.observations
    assert (obs.observed_at, obs.currency, obs.amount) == (NOW, "USDC", Decimal("5"))


async def test_refunds_are_left_out() -> None:
    entry = item("a", [trade("tx-1", "30")])
    entry["refund_list"] = [
        {"refund_amount": "5", "txid": "tx-r", "pay_time": 1699999999, "status": "Successful"}
    ]
    [result], _ = await poll([signed_answer(envelope_doc(data=[entry]))], ["a"])
    assert [o.kind for o in result.observations] == [Kind.CREDIT]
    assert fold(result.observations).status is Status.OVERPAID


async def test_not_found_code_means_every_ref_is_not_found() -> None:
    results, _ = await poll([signed_answer(envelope_doc(11003, None, "not found"))], ["a", "b"])
    assert [(r.found, r.observations) for r in results] == [(False, []), (False, [])]


@pytest.mark.parametrize("code", [11004, 11009])
async def test_rate_and_daily_limits_are_unavailable(code: int) -> None:
    with pytest.raises(ProviderUnavailable):
        await poll([signed_answer(envelope_doc(code, None, "limit"))], ["a"])
    # Error answers may come unsigned; waiting is all such an answer can cause.
    unsigned = HttpAnswer(status=200, headers={}, body=envelope_doc(code, None, "limit"))
    with pytest.raises(ProviderUnavailable):
        await poll([unsigned], ["a"])


@pytest.mark.parametrize("code", [11005, 11006, 11010, 10001, 0])
async def test_other_codes_are_refused(code: int) -> None:
    with pytest.raises(ProviderRefused, match=rf"^error_code_{code}$"):
        await poll([signed_answer(envelope_doc(code, None, "no"))], ["a"])


# --- the answer's signature -----------------------------------------------------------------


async def test_answer_signed_with_any_configured_secret_is_accepted() -> None:
    acct = account(SECRET, OLD_SECRET)
    for secret in (SECRET, OLD_SECRET):
        [result], _ = await poll([signed_answer(secret=secret)], [EXAMPLE_REF], acct)
        assert result.found


async def test_answer_header_names_are_case_insensitive() -> None:
    good = signed_answer()
    lowered = HttpAnswer(
        status=200, headers={k.lower(): v for k, v in good.headers.items()}, body=good.body
    )
    [result], _ = await poll([lowered], [EXAMPLE_REF])
    assert result.found


@pytest.mark.parametrize(
    "answer",
    [
        signed_answer(secret="not-our-secret"),
        signed_answer(app_id="202401010000000000000000000000999"),
        HttpAnswer(
            status=200,
            headers=signed_answer().headers,
            body=EXAMPLE_ANSWER.replace(b'"amount":"10"', b'"amount":"100"'),
        ),
        HttpAnswer(
            status=200,
            headers={**signed_answer().headers, "Timestamp": "1700000006"},
            body=EXAMPLE_ANSWER,
        ),
        HttpAnswer(
            status=200,
            headers={**signed_answer().headers, "Sign": "0" * 64},
            body=EXAMPLE_ANSWER,
        ),
    ],
    ids=["foreign-secret", "foreign-app-id", "tampered-body", "other-timestamp", "zero-sign"],
)
async def test_answer_failing_its_signature_is_refused(answer: HttpAnswer) -> None:
    with pytest.raises(ProviderRefused, match=r"^bad_response_signature$"):
        await poll([answer], [EXAMPLE_REF])


@pytest.mark.parametrize("missing", ["Appid", "Timestamp", "Sign"])
async def test_answer_without_signature_headers_is_refused(missing: str) -> None:
    good = signed_answer()
    headers = {k: v for k, v in good.headers.items() if k != missing}
    with pytest.raises(ProviderRefused, match=r"^unsigned_response$"):
        await poll([HttpAnswer(status=200, headers=headers, body=good.body)], [EXAMPLE_REF])
    # Even "not found" needs a signature: an unsigned one could make payments expire.
    for body in (envelope_doc(11003), orjson.dumps({"code": {"x": 1}}), b"not json"):
        unsigned = HttpAnswer(status=200, headers={}, body=body)
        with pytest.raises(ProviderRefused, match=r"^unsigned_response$"):
            await poll([unsigned], ["a"])


@pytest.mark.parametrize(
    ("status", "reason"),
    [
        (401, "unauthorized"),
        (403, "unauthorized"),
        (404, "unexpected_status_404"),
        (400, "unexpected_status_400"),
        (302, "unexpected_status_302"),
    ],
)
async def test_http_errors_are_refused(status: int, reason: str) -> None:
    # No "not found" by HTTP status: CCPayment says so with code 11003; a 404 is a wrong URL.
    with pytest.raises(ProviderRefused, match=rf"^{reason}$"):
        await poll([signed_answer(status=status)], [EXAMPLE_REF])


@pytest.mark.parametrize(
    "body",
    [
        b"",
        b"<html>busy</html>",
        b"[]",
        envelope_doc(data=None),
        envelope_doc(data={"order_detail": {}}),
        envelope_doc(data=[None]),
        envelope_doc(data=[{"order_detail": {"merchant_order_id": ""}}]),
        envelope_doc(data=[item("a", [trade("", "1")])]),
        envelope_doc(data=[item("a", [trade("tx", "-1")])]),
        envelope_doc(data=[item("a", [trade("tx", "1e3")])]),
        envelope_doc(data=[item("a", [{"txid": "tx"}])]),
        envelope_doc(data=[item("a", [trade("tx", "1", pay_time=-5)])]),
        envelope_doc(data=[item("a", [trade("tx", "1", pay_time="1699999000")])]),
        envelope_doc(data=[item("a", ["tx"])]),
        envelope_doc(data=[{**item("a"), "trade_list": {"tx": "1"}}]),
        envelope_doc(data=[item("a", order_amount="NaN")]),
        orjson.dumps({"code": "10000", "data": []}),
        orjson.dumps({"code": [11004], "data": []}),
        orjson.dumps({"code": True, "data": []}),
        orjson.dumps({"msg": "success", "data": []}),
    ],
)
async def test_unreadable_signed_answer_is_refused(body: bytes) -> None:
    with pytest.raises(ProviderRefused, match=r"^unreadable_response$"):
        await poll([signed_answer(body)], ["a"])


async def test_an_order_twice_in_one_answer_is_refused() -> None:
    body = envelope_doc(data=[item("a", [trade("t1", "1")]), item("a", [trade("t2", "2")])])
    with pytest.raises(ProviderRefused, match=r"^duplicate_order_in_response$"):
        await poll([signed_answer(body)], ["a"])


# --- the credit dedup key (shared by the webhook parser and the poll) -----------------------


def test_credit_key_is_the_txid_within_account_and_order() -> None:
    key = credit_key("shop", "order-1", "ab12", Decimal("10"))
    assert key == "ccpayment:shop:order-1:credit:ab12"
    assert credit_key("shop", "order-1", "ab12", Decimal("99")) == key
    assert credit_key("other", "order-1", "ab12", Decimal("10")) != key
    assert credit_key("shop", "order-2", "ab12", Decimal("10")) != key


@pytest.mark.parametrize("label", ["internal transfer", "internal\ttransfer", " x"])
def test_a_labelled_transfer_is_keyed_with_its_amount(label: str) -> None:
    key = credit_key("shop", "o", label, Decimal("10.50"))
    assert key == f"ccpayment:shop:o:credit:{label}|10.5"
    # The same amount however it is written; a different amount is a different transfer.
    assert credit_key("shop", "o", label, Decimal("10.500000")) == key
    assert credit_key("shop", "o", label, Decimal("1.05E+1")) == key
    assert credit_key("shop", "o", label, Decimal("10.51")) != key


@pytest.mark.parametrize(
    ("amount", "text"),
    [
        ("100", "100"),
        ("1E+2", "100"),
        ("0.000000000000000001", "0.000000000000000001"),
        ("123456789012345678901234567890.10", "123456789012345678901234567890.1"),
        ("0.00", "0"),
    ],
)
def test_labelled_key_amounts_are_exact(amount: str, text: str) -> None:
    assert credit_key("s", "o", "internal transfer", Decimal(amount)).endswith(f"|{text}")


def test_webhook_credit_is_keyed_by_txid_not_record_id() -> None:
    [a] = callback(webhook("o-1", "rec-1", "txid-1", "10"))
    [resent] = callback(webhook("o-1", "rec-1", "txid-1", "10"))
    [other_record] = callback(webhook("o-1", "rec-2", "txid-1", "10"))
    [other_tx] = callback(webhook("o-1", "rec-1", "txid-2", "10"))
    assert a.dedup_key == resent.dedup_key == other_record.dedup_key
    assert a.dedup_key == "ccpayment:shop-eu:o-1:credit:txid-1"
    assert other_tx.dedup_key != a.dedup_key
    assert (a.record_id, other_record.record_id) == ("rec-1", "rec-2")


async def test_labelled_transfers_from_webhook_and_poll_share_keys() -> None:
    [w10] = callback(webhook("o-1", "rec-1", "internal transfer", "10.0"))
    [w15] = callback(webhook("o-1", "rec-2", "internal transfer", "15"))
    assert w10.dedup_key != w15.dedup_key
    trades = [trade("internal transfer", "10"), trade("internal transfer", "15.00")]
    body = envelope_doc(data=[item("o-1", trades)])
    [result], _ = await poll([signed_answer(body)], ["o-1"])
    assert [o.dedup_key for o in result.observations] == [w10.dedup_key, w15.dedup_key]
    state = fold([w10, w15, *result.observations])
    assert (state.status, state.amount_paid) == (Status.PAID, Decimal("25"))


@pytest.mark.parametrize("txid", [None, "", 7])
def test_webhook_success_without_txid_is_malformed(txid: object) -> None:
    doc = json.loads(webhook("o-1", "rec-1", "tx", "10"))
    if txid is None:
        del doc["txid"]
    else:
        doc["txid"] = txid
    with pytest.raises(MalformedMessage, match="txid"):
        callback(json.dumps(doc).encode())


def test_webhook_pending_needs_no_txid() -> None:
    doc = json.loads(webhook("o-1", "rec-1", "tx", "10"))
    doc["pay_status"], doc["txid"] = "pending", ""
    [obs] = callback(json.dumps(doc).encode())
    assert obs.kind is Kind.STATUS
    assert obs.dedup_key == "ccpayment:shop-eu:tx:rec-1:pending"


def test_simulated_webhooks_carry_one_txid_per_record() -> None:
    def txid(record_id: str) -> str:
        body = webhook_body(
            merchant_ref="o",
            record_id=record_id,
            order_id="1",
            order_amount=Decimal(1),
            paid_amount=Decimal(1),
        )
        value: str = json.loads(body)["txid"]
        return value

    assert txid("rec-1") == txid("rec-1")
    assert txid("rec-1") != txid("rec-2")
    assert len(txid("rec-1")) == 64
    assert int(txid("rec-1"), 16) >= 0


# --- the simulated API ----------------------------------------------------------------------


Sim = StatusSim


@pytest.fixture
async def sim() -> AsyncIterator[Sim]:
    book = OrderBook()
    book.accounts[("ccpayment", ACCOUNT)] = account(SECRET, OLD_SECRET)
    async with serve_status_sim(book, {"ccpayment": SIMULATOR.add_status_routes}) as served:
        yield served


def sim_client(sim: Sim, acct: CCPaymentAccount | None = None) -> StatusClient:
    return client(
        acct or account(SECRET, OLD_SECRET), status_base_url(sim.url, "ccpayment", ACCOUNT)
    )


def test_simulated_lifecycle_uses_distinct_txids() -> None:
    life = SIMULATOR.lifecycle(account(), "order-1", now=1700000000)
    txids = [json.loads(c.body)["txid"] for c in life.callbacks]
    assert len(set(txids)) == len(txids) == 2
    trades = order_info(life)["trade_list"]
    assert [t["txid"] for t in trades] == txids
    # Crypto, as CCPayment lists trades: 10 and 15.012 of the 25.012 USDT due.
    assert [t["amount"] for t in trades] == ["10", "15.012"]
    assert [t["pay_time"] for t in trades] == [1700000000, 1700000000]


async def test_round_trip_folds_to_the_lifecycle_final_status(sim: Sim) -> None:
    life = SIMULATOR.lifecycle(account(), "order-7", now=1700000000)
    sim.book.add("ccpayment", ACCOUNT, life)
    refs = [PaymentRef(merchant_ref="order-7"), PaymentRef(merchant_ref="order-unknown")]
    known, unknown = await sim_client(sim).poll(sim.call, refs, datetime.now(UTC))
    assert not unknown.found
    assert (known.found, known.provider_status) == (True, "Successful")
    assert fold(known.observations).status is Status(life.statuses[-1])
    assert fold(known.observations).amount_paid == life.amount
    # Each transfer has the key its webhook has: counted once however it arrives.
    webhooks = [o for c in life.callbacks for o in callback(c.body)]
    assert sorted(o.dedup_key for o in known.observations) == sorted(o.dedup_key for o in webhooks)
    assert fold([*webhooks, *known.observations]).amount_paid == life.amount
    assert sim.book.polls[("ccpayment", ACCOUNT, "order-7")] == 1


async def test_partly_paid_order_is_pending_and_underpaid(sim: Sim) -> None:
    life = SIMULATOR.lifecycle(account(), "order-8", now=1700000000)
    first_only = Lifecycle(
        merchant_ref=life.merchant_ref,
        provider_ref=life.provider_ref,
        amount=life.amount,
        currency=life.currency,
        callbacks=life.callbacks[:1],
        statuses=life.statuses[:1],
    )
    sim.book.add("ccpayment", ACCOUNT, first_only)
    [result] = await sim_client(sim).poll(
        sim.call, [PaymentRef(merchant_ref="order-8")], datetime.now(UTC)
    )
    assert result.provider_status == "Pending"
    assert fold(result.observations).status is Status.UNDERPAID


async def test_simulator_not_found_is_code_11003(sim: Sim) -> None:
    [result] = await sim_client(sim).poll(
        sim.call, [PaymentRef(merchant_ref="nope")], datetime.now(UTC)
    )
    assert not result.found


async def test_simulator_checks_the_request_signature(sim: Sim) -> None:
    url = status_base_url(sim.url, "ccpayment", ACCOUNT) + "/ccpayment/v1/bill/info"
    body = b'{"merchant_order_ids":["a"]}'
    for secret, expected in ((OLD_SECRET, 11003), ("wrong", 11005)):
        headers = {
            "Appid": APP_ID,
            "Timestamp": "1700000000",
            "Sign": sign(APP_ID, secret, "1700000000", body),
            "Content-Type": "application/json; charset=utf-8",
        }
        raw = await sim.call("POST", url, headers=headers, body=body)
        assert raw.status == 200
        assert json.loads(raw.body)["code"] == expected
    # The answer is signed with the account's first secret over its exact bytes.
    assert raw.headers["Sign"] == sign(APP_ID, SECRET, raw.headers["Timestamp"], raw.body)


async def test_client_with_a_wrong_secret_is_refused(sim: Sim) -> None:
    # The simulator answers 11005 signed with its secret; ours cannot verify it.
    with pytest.raises(ProviderRefused, match="bad_response_signature"):
        await sim_client(sim, account("wrong")).poll(
            sim.call, [PaymentRef(merchant_ref="a")], datetime.now(UTC)
        )


async def test_simulator_answers_a_whole_batch(sim: Sim) -> None:
    lives = [SIMULATOR.lifecycle(account(), f"order-{i}", now=1700000000) for i in range(100)]
    for life in lives:
        sim.book.add("ccpayment", ACCOUNT, life)
    refs = [PaymentRef(merchant_ref=life.merchant_ref) for life in lives]
    results = await sim_client(sim).poll(sim.call, refs, datetime.now(UTC))
    assert [r.ref for r in results] == refs
    assert all(fold(r.observations).status is Status.PAID for r in results)
