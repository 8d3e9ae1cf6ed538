"""HDFC SmartGateway webhooks (Basic credentials, parse_callback), the return-URL hint
(parse_return) and the simulator round trips."""

from __future__ import annotations

import base64
import json
from datetime import UTC, datetime
from decimal import Decimal
from pathlib import Path
from typing import Any, Literal

import pytest
from multidict import CIMultiDict

from paysync.errors import AuthenticationError, MalformedMessage
from paysync.state.fold import Policy, fold
from providers.base import JSON_MEDIA_TYPES, parse_form
from providers.hdfc.adapter import ADAPTER, HdfcReturns
from providers.hdfc.scheme import MAPPING, HdfcAccount
from schemas.envelope import Envelope, EnvelopeKind
from schemas.observation import Kind, Observation, Source
from schemas.status import Status
from simulator.base import ProviderSimulator, ReturnSimulator
from simulator.hdfc import SIMULATOR, Refund, basic_auth, order_event

FIXTURES = Path(__file__).parents[1] / "fixtures" / "hdfc"
SUCCESS = (FIXTURES / "callback_success.json").read_bytes()
REFUND = (FIXTURES / "callback_refund.json").read_bytes()
REFUND_TRIMMED = (FIXTURES / "callback_refund_trimmed.json").read_bytes()
RECEIVED_AT = datetime(2025, 1, 15, 9, 41, 9, tzinfo=UTC)
NOW = RECEIVED_AT
ACCOUNT = "shop-in"
USERNAME = "paysync"
PASSWORD = "s3cret:with:colons"
RESPONSE_KEY = "MADEUP_RESPONSE_KEY_7f3a9c"
POLICY = Policy(failure_is_final=MAPPING.failure_is_final)


def account(passwords: dict[str, str] | None = None) -> HdfcAccount:
    passwords = {"HDFC_WH_PW": PASSWORD} if passwords is None else passwords
    return HdfcAccount.model_validate(
        {
            "webhook_username": USERNAME,
            "secrets": [f"env:{name}" for name in passwords],
            "response_keys": ["env:HDFC_RK"],
            "merchant_id": "shop_demo",
        },
        context={"env": {**passwords, "HDFC_RK": RESPONSE_KEY}},
    )


def envelope(
    body: bytes, *, kind: EnvelopeKind = EnvelopeKind.CALLBACK, account: str = ACCOUNT
) -> Envelope:
    return Envelope(
        message_id="msg-1",
        kind=kind,
        provider="hdfc",
        account=account,
        received_at=RECEIVED_AT,
        body=body,
        content_type="application/json",
        verified_by="env:HDFC_WH_PW",
    )


def parse(document: object) -> list[Observation]:
    return ADAPTER.parse_callback(envelope(json.dumps(document).encode()))


def order_doc(**order: Any) -> dict[str, Any]:
    base: dict[str, Any] = {
        "id": "ordeh_9f8e7d6c5b4a",
        "order_id": "ord_TEST_0001",
        "status": "CHARGED",
        "amount": "1499.00",
        "currency": "INR",
    }
    base.update(order)
    return {
        "id": "evt_V2_0a1b",
        "date_created": "2025-01-15T09:41:07Z",
        "event_name": "ORDER_SUCCEEDED",
        "content": {"order": {k: v for k, v in base.items() if v is not ...}},
    }


# --- Basic credentials ---------------------------------------------------------------------


def verify(authorization: str | None, acct: HdfcAccount | None = None) -> str:
    headers: CIMultiDict[str] = CIMultiDict({"Content-Type": "application/json"})
    if authorization is not None:
        headers["authorization"] = authorization
    return ADAPTER.verify_callback(acct or account(), headers, SUCCESS, NOW).secret_ref


def reason_of(authorization: str | None, acct: HdfcAccount | None = None) -> str:
    with pytest.raises(AuthenticationError) as info:
        verify(authorization, acct)
    for text in (str(info.value), repr(info.value), info.value.detail):
        assert PASSWORD not in text
    return info.value.reason


def test_basic_credentials_verify() -> None:
    assert verify(basic_auth(USERNAME, PASSWORD)) == "env:HDFC_WH_PW"


def test_basic_scheme_is_case_insensitive() -> None:
    token = basic_auth(USERNAME, PASSWORD).split(" ", 1)[1]
    assert verify(f"basic {token}") == "env:HDFC_WH_PW"
    assert verify(f"BASIC  {token}") == "env:HDFC_WH_PW"


def test_header_name_is_case_insensitive() -> None:
    headers = CIMultiDict({"AUTHORIZATION": basic_auth(USERNAME, PASSWORD)})
    assert ADAPTER.verify_callback(account(), headers, b"", NOW).secret_ref == "env:HDFC_WH_PW"


def test_verified_carries_no_credentials() -> None:
    headers = CIMultiDict({"Authorization": basic_auth(USERNAME, PASSWORD)})
    verified = ADAPTER.verify_callback(account(), headers, SUCCESS, NOW)
    assert dict(verified.http_headers) == {}
    assert verified.replay_key is None


@pytest.mark.parametrize("value", [None, ""], ids=["absent", "empty"])
def test_missing_header(value: str | None) -> None:
    assert reason_of(value) == "missing_header"


@pytest.mark.parametrize(
    "value",
    [
        "Bearer " + base64.b64encode(f"{USERNAME}:{PASSWORD}".encode()).decode(),
        "Basic",
        "Basic ",
        "Basic !!!notbase64!!!",
        "Basic cGF5c3luYw",  # truncated: bad padding
        "Basic " + base64.b64encode(b"no-colon-here").decode(),
        "Basic \u00e9\u00e9\u00e9\u00e9",
        base64.b64encode(f"{USERNAME}:{PASSWORD}".encode()).decode(),  # no scheme
    ],
    ids=[
        "bearer",
        "scheme-only",
        "empty-token",
        "not-base64",
        "bad-padding",
        "no-colon",
        "non-ascii",
        "no-scheme",
    ],
)
def test_malformed_credentials(value: str) -> None:
    assert reason_of(value) == "bad_credentials"


def test_wrong_username() -> None:
    assert reason_of(basic_auth("someone", PASSWORD)) == "bad_credentials"


def test_password_prefix_is_not_enough() -> None:
    assert reason_of(basic_auth(USERNAME, PASSWORD[:-1])) == "bad_credentials"
    assert reason_of(basic_auth(USERNAME, PASSWORD + "x")) == "bad_credentials"


def test_colon_split_is_at_the_first_colon() -> None:
    # RFC 7617: the user-id has no colon; the password may (PASSWORD has two).
    assert reason_of(basic_auth(USERNAME[:3], USERNAME[3:] + ":" + PASSWORD)) == "bad_credentials"
    assert verify(basic_auth(USERNAME, PASSWORD)) == "env:HDFC_WH_PW"


def test_username_and_password_swapped() -> None:
    assert reason_of(basic_auth(PASSWORD, USERNAME)) == "bad_credentials"


def test_rotation_wrong_username_with_either_password() -> None:
    acct = account({"PW_OLD": "old-password", "PW_NEW": PASSWORD})
    for password in ("old-password", PASSWORD):
        assert reason_of(basic_auth("other", password), acct) == "bad_credentials"


def test_unicode_credentials() -> None:
    acct = account({"PW": "pässwörd"})
    assert verify(basic_auth(USERNAME, "pässwörd"), acct) == "env:PW"


def test_adapter_attributes() -> None:
    assert ADAPTER.name == "hdfc"
    assert ADAPTER.account_model is HdfcAccount
    assert ADAPTER.callback_ack.status == 200
    assert ADAPTER.callback_ack.body == b""
    assert ADAPTER.callback_ack.content_type == "text/plain"
    assert ADAPTER.callback_media_types == JSON_MEDIA_TYPES
    assert isinstance(ADAPTER.returns, HdfcReturns)


def test_account_secrets_include_response_keys() -> None:
    refs = {s.ref for s in account().all_secrets()}
    assert refs == {"env:HDFC_WH_PW", "env:HDFC_RK"}
    assert PASSWORD not in repr(account())


def test_account_requires_a_username() -> None:
    with pytest.raises(ValueError, match="webhook_username"):
        HdfcAccount.model_validate(
            {"webhook_username": "", "secrets": ["env:PW"]}, context={"env": {"PW": "x"}}
        )


# --- parse_callback: the doc's examples ----------------------------------------------------


def test_success_example() -> None:
    [obs] = ADAPTER.parse_callback(envelope(SUCCESS))
    assert obs.kind is Kind.STATUS
    assert obs.source is Source.CALLBACK
    assert obs.provider == "hdfc"
    assert obs.account == ACCOUNT
    assert obs.merchant_ref == "ord_TEST_0001"
    assert obs.provider_ref == "ordeh_9f8e7d6c5b4a"
    assert obs.provider_status == "CHARGED"
    assert obs.status is Status.PAID
    assert obs.amount_due == Decimal("1499.0")
    assert isinstance(obs.amount_due, Decimal)
    assert obs.amount is None
    assert obs.currency == "INR"
    assert obs.observed_at == datetime(2025, 1, 15, 9, 41, 7, tzinfo=UTC)
    assert obs.dedup_key == "hdfc:shop-in:ord_TEST_0001:status:CHARGED"


def test_refund_example() -> None:
    status, refund = ADAPTER.parse_callback(envelope(REFUND))
    assert status.kind is Kind.STATUS
    assert status.status is Status.PAID
    assert status.dedup_key == "hdfc:shop-in:ord_TEST_0001:status:CHARGED"
    assert refund.kind is Kind.REFUND
    assert refund.amount == Decimal("500.0")
    assert refund.record_id == "rf_ord_TEST_0001_1"
    assert refund.merchant_ref == "ord_TEST_0001"
    assert refund.provider_ref == "ordeh_9f8e7d6c5b4a"
    assert refund.amount_due == Decimal("1499.0")
    assert refund.currency == "INR"
    assert refund.observed_at == datetime(2025, 1, 16, 4, 10, tzinfo=UTC)
    assert refund.dedup_key == "hdfc:shop-in:ord_TEST_0001:refund:rf_ord_TEST_0001_1"


def test_refund_example_as_printed_in_the_doc() -> None:
    """The doc prints only the differing parts: no event time, no Juspay id, no amount."""
    status, refund = ADAPTER.parse_callback(envelope(REFUND_TRIMMED))
    assert status.observed_at == RECEIVED_AT
    assert status.provider_ref is None
    assert status.amount_due is None
    assert refund.amount == Decimal("500.0")
    assert refund.dedup_key == "hdfc:shop-in:ord_TEST_0001:refund:rf_ord_TEST_0001_1"


def test_success_then_refund_fold_to_partially_refunded_in_any_order() -> None:
    success = ADAPTER.parse_callback(envelope(SUCCESS))
    refund = ADAPTER.parse_callback(envelope(REFUND))
    for observations in (success + refund, refund + success, refund + refund + success):
        state = fold(observations, POLICY)
        assert state.status is Status.PARTIALLY_REFUNDED
        assert state.amount_refunded == Decimal(500)
        assert state.amount == Decimal(1499)
        assert state.anomaly is None


def test_refund_seen_again_in_a_later_event_is_not_counted_twice() -> None:
    second = order_doc(
        refunds=[
            {"unique_request_id": "rf_1", "amount": "500.00", "status": "SUCCESS"},
            {"unique_request_id": "rf_2", "amount": "999.00", "status": "SUCCESS"},
        ]
    )
    first = order_doc(refunds=[{"unique_request_id": "rf_1", "amount": "500", "status": "SUCCESS"}])
    state = fold(parse(first) + parse(second) + parse(first), POLICY)
    assert state.amount_refunded == Decimal(1499)
    assert state.status is Status.REFUNDED


@pytest.mark.parametrize("status", ["PENDING", "FAILURE", "MANUAL_REVIEW", "success", None])
def test_unsuccessful_refund_entries_move_no_money(status: str | None) -> None:
    document = order_doc(
        refunds=[{"unique_request_id": "rf_1", "amount": "500.00", "status": status}]
    )
    [obs] = parse(document)
    assert obs.kind is Kind.STATUS


def test_refunds_null_or_empty() -> None:
    assert len(parse(order_doc(refunds=None))) == 1
    assert len(parse(order_doc(refunds=[]))) == 1


@pytest.mark.parametrize(
    "refunds",
    [
        "rf_1",
        [["rf_1"]],
        [{"amount": "1", "status": "SUCCESS"}],
        [{"unique_request_id": "", "amount": "1", "status": "SUCCESS"}],
        [{"unique_request_id": "rf_1", "status": "SUCCESS"}],
        [{"unique_request_id": "rf_1", "amount": "-1", "status": "SUCCESS"}],
    ],
    ids=["not-list", "entry-not-object", "no-id", "empty-id", "no-amount", "negative-amount"],
)
def test_malformed_successful_refund(refunds: object) -> None:
    with pytest.raises(MalformedMessage):
        parse(order_doc(refunds=refunds))


@pytest.mark.parametrize(
    ("status", "expected"),
    [
        ("NEW", Status.PENDING),
        ("PENDING_VBV", Status.PENDING),
        ("AUTHORIZED", Status.AUTHORIZED),
        ("AUTHORIZATION_FAILED", Status.FAILED),
        ("JUSPAY_DECLINED", Status.FAILED),
        ("CAPTURE_FAILED", Status.FAILED),
        ("VOIDED", Status.CANCELLED),
        ("AUTO_REFUNDED", Status.REFUNDED),
        ("VOID_FAILED", None),
        ("PARTIAL_CHARGED", None),
        ("SOMETHING_NEW", None),
    ],
)
def test_status_mapping(status: str, expected: Status | None) -> None:
    [obs] = parse(order_doc(status=status))
    assert obs.status is expected
    assert obs.provider_status == status
    assert obs.dedup_key == f"hdfc:shop-in:ord_TEST_0001:status:{status}"


def test_failed_then_charged_is_paid_without_anomaly() -> None:
    # Juspay orders take several attempts: a failure never blocks a later success.
    observations = parse(order_doc(status="AUTHORIZATION_FAILED")) + parse(order_doc())
    state = fold(observations, POLICY)
    assert state.status is Status.PAID
    assert state.anomaly is None


def test_authorized_then_charged_is_captured() -> None:
    observations = parse(order_doc(status="AUTHORIZED")) + parse(order_doc())
    assert fold(observations, POLICY).status is Status.CAPTURED


@pytest.mark.parametrize("event_name", ["ORDER_FAILED", "TXN_CREATED", "SOMETHING_ELSE", None])
def test_any_event_name_is_parsed_by_its_order(event_name: str | None) -> None:
    document = order_doc(status="PENDING_VBV")
    document["event_name"] = event_name
    [obs] = parse(document)
    assert obs.status is Status.PENDING


@pytest.mark.parametrize(
    ("raw", "expected"),
    [
        (b"1499.0", Decimal("1499.0")),
        (b"69999", Decimal(69999)),
        (b'"10.00"', Decimal("10.00")),
        (b"0.30000000000000004", Decimal("0.30000000000000004")),
    ],
)
def test_amount_is_exact(raw: bytes, expected: Decimal) -> None:
    body = json.dumps(order_doc(amount="A")).encode().replace(b'"A"', raw)
    [obs] = ADAPTER.parse_callback(envelope(body))
    assert obs.amount_due == expected
    assert str(obs.amount_due) == str(expected)


@pytest.mark.parametrize(
    "raw",
    [b'"abc"', b'"-1"', b"-1.5", b"NaN", b"Infinity", b"true", b'"1e3"', b'"1_000"', b"[]"],
)
def test_bad_amount_is_malformed(raw: bytes) -> None:
    body = json.dumps(order_doc(amount="A")).encode().replace(b'"A"', raw)
    with pytest.raises(MalformedMessage, match="amount"):
        ADAPTER.parse_callback(envelope(body))


def test_missing_amount_and_currency() -> None:
    [obs] = parse(order_doc(amount=..., currency=...))
    assert obs.amount_due is None
    assert obs.currency is None


@pytest.mark.parametrize(
    ("date_created", "expected"),
    [
        ("2025-01-15T09:41:07Z", datetime(2025, 1, 15, 9, 41, 7, tzinfo=UTC)),
        ("2025-01-15T15:11:07+05:30", datetime(2025, 1, 15, 9, 41, 7, tzinfo=UTC)),
        ("2025-01-15T09:41:07", datetime(2025, 1, 15, 9, 41, 7, tzinfo=UTC)),
        ("yesterday", RECEIVED_AT),
        (None, RECEIVED_AT),
        (1736934067, RECEIVED_AT),
    ],
)
def test_observed_at(date_created: object, expected: datetime) -> None:
    document = order_doc()
    document["date_created"] = date_created
    [obs] = parse(document)
    assert obs.observed_at == expected
    assert obs.observed_at.utcoffset() is not None


def test_dedup_key_depends_on_account_order_and_status_only() -> None:
    [a] = parse(order_doc(amount="1"))
    [b] = parse({**order_doc(), "id": "evt_other", "date_created": "2026-01-01T00:00:00Z"})
    [c] = ADAPTER.parse_callback(envelope(json.dumps(order_doc()).encode(), account="other"))
    [d] = parse(order_doc(order_id="ord_2"))
    assert a.dedup_key == b.dedup_key
    assert len({a.dedup_key, c.dedup_key, d.dedup_key}) == 3


def test_jwt_body_is_not_supported() -> None:
    with pytest.raises(MalformedMessage, match="JWT"):
        parse({"JWT": "eyJhbGciOiJSUzI1NiJ9.e30.sig"})


@pytest.mark.parametrize(
    "document",
    [
        {"event_name": "ORDER_SUCCEEDED"},
        {"content": {}},
        {"content": {"order": None}},
        {"content": {"order": "ord_TEST_0001"}},
        {"content": "x"},
    ],
    ids=["no-content", "no-order", "null-order", "order-string", "content-string"],
)
def test_missing_order_is_malformed(document: dict[str, Any]) -> None:
    with pytest.raises(MalformedMessage, match=r"content\.order"):
        parse(document)


@pytest.mark.parametrize("order_id", [..., "", None, 42])
def test_missing_order_id_is_malformed(order_id: object) -> None:
    with pytest.raises(MalformedMessage, match="order_id"):
        parse(order_doc(order_id=order_id))


def test_missing_status_is_malformed() -> None:
    with pytest.raises(MalformedMessage, match="status"):
        parse(order_doc(status=...))


# --- parse_return ----------------------------------------------------------------------------


def test_parse_return_of_the_doc_post_body() -> None:
    body = (FIXTURES / "return_post_body.txt").read_bytes()
    hint = HdfcReturns().parse_return(envelope(body, kind=EnvelopeKind.RETURN_URL))
    assert hint.provider == "hdfc"
    assert hint.account == ACCOUNT
    assert hint.merchant_ref == "ord_TEST_0001"
    assert hint.provider_ref is None
    assert hint.provider_status == "CHARGED"
    assert hint.observed_at == RECEIVED_AT
    assert hint.dedup_key == "hdfc:shop-in:ord_TEST_0001:return:CHARGED"


def test_parse_return_camel_case_order_id() -> None:
    hint = HdfcReturns().parse_return(envelope(b"orderId=ord_9&status=PENDING_VBV"))
    assert hint.merchant_ref == "ord_9"


@pytest.mark.parametrize("body", [b"status=CHARGED", b"order_id=&status=CHARGED", b"order_id=x"])
def test_parse_return_without_order_or_status_is_malformed(body: bytes) -> None:
    with pytest.raises(MalformedMessage):
        HdfcReturns().parse_return(envelope(body))


def test_parse_return_repeated_key_is_malformed() -> None:
    with pytest.raises(MalformedMessage):
        HdfcReturns().parse_return(envelope(b"order_id=a&order_id=b&status=CHARGED"))


# --- simulator round trips -------------------------------------------------------------------


def _protocols(sim: ProviderSimulator, returns: ReturnSimulator | None) -> None:
    """Type-checked by mypy: the simulator satisfies the interfaces."""


def test_simulator_shape() -> None:
    _protocols(SIMULATOR, SIMULATOR.returns)
    assert SIMULATOR.name == "hdfc"
    assert SIMULATOR.signs_timestamp is False
    assert SIMULATOR.required_headers == ("Authorization",)


def test_simulator_lifecycle_verifies_and_folds_to_paid() -> None:
    acct = account()
    now = int(NOW.timestamp())
    life = SIMULATOR.lifecycle(acct, "order-42", now=now)
    assert life.statuses == ["paid"]
    assert life.amount == Decimal("1499.00")
    assert life.currency == "INR"
    assert life.provider_ref.startswith("ordeh_")
    seen: list[Observation] = []
    for request in life.callbacks:
        assert request.route == "webhooks"
        assert request.method == "POST"
        verified = ADAPTER.verify_callback(acct, CIMultiDict(request.headers), request.body, NOW)
        assert verified.secret_ref == "env:HDFC_WH_PW"
        seen.extend(ADAPTER.parse_callback(envelope(request.body)))
    assert {o.merchant_ref for o in seen} == {"order-42"}
    assert {o.provider_ref for o in seen} == {life.provider_ref}
    state = fold(seen, POLICY)
    assert [state.status] == [Status(s) for s in life.statuses]
    assert state.amount == life.amount
    assert state.currency == life.currency


def test_simulator_callback_body_and_headers() -> None:
    acct = account()
    body = SIMULATOR.callback_body("order-7", now=int(NOW.timestamp()))
    headers = SIMULATOR.sign_callback(acct, body, now=int(NOW.timestamp()))
    assert headers["Content-Type"] == "application/json"
    ADAPTER.verify_callback(acct, CIMultiDict(headers), body, NOW)
    [obs] = ADAPTER.parse_callback(envelope(body))
    assert obs.status is Status.PAID
    assert obs.observed_at == NOW.replace(microsecond=0)
    doc = json.loads(body)
    assert doc["event_name"] == "ORDER_SUCCEEDED"
    assert doc["content"]["order"]["status_id"] == 21
    assert b'"amount":1499.00,' in body


def test_simulator_refund_event_round_trip() -> None:
    body = order_event(
        merchant_ref="order-9",
        juspay_id="ordeh_abc",
        event_name="ORDER_REFUNDED",
        status="CHARGED",
        amount=Decimal("1499.00"),
        created=NOW,
        refunds=[
            Refund(unique_request_id="rf_1", amount=Decimal("1000.00")),
            Refund(unique_request_id="rf_2", amount=Decimal("499.00")),
            Refund(unique_request_id="rf_3", amount=Decimal("5.00"), status="PENDING"),
        ],
    )
    assert json.loads(body)["content"]["order"]["amount_refunded"] == 1499
    observations = ADAPTER.parse_callback(envelope(body))
    assert [o.record_id for o in observations if o.kind is Kind.REFUND] == ["rf_1", "rf_2"]
    state = fold(observations, POLICY)
    assert state.status is Status.REFUNDED
    assert state.amount_refunded == Decimal("1499.00")


@pytest.mark.parametrize("method", ["GET", "POST"])
def test_simulator_signed_return_verifies(method: Literal["GET", "POST"]) -> None:
    acct = account()
    assert SIMULATOR.returns is not None
    request = SIMULATOR.returns.signed_return(
        acct,
        order_id="ord_TEST_0001",
        status="CHARGED",
        method=method,
    )
    assert request.route == "return"
    assert request.method == method
    raw = request.query.encode() if method == "GET" else request.body
    if method == "POST":
        assert request.headers["Content-Type"] == "application/x-www-form-urlencoded"
        assert request.query == ""
    else:
        assert request.body == b""
    # Byte for byte the doc's example.
    assert raw == (FIXTURES / "return_post_body.txt").read_bytes()
    returns = HdfcReturns()
    verified = returns.verify_return(acct, parse_form(raw), NOW)
    assert verified.status is Status.PAID
    assert verified.secret_ref == "env:HDFC_RK"
    hint = returns.parse_return(envelope(raw, kind=EnvelopeKind.RETURN_URL))
    assert hint.merchant_ref == "ord_TEST_0001"


def test_simulator_return_for_unknown_status_has_no_status_id() -> None:
    assert SIMULATOR.returns is not None
    request = SIMULATOR.returns.signed_return(account(), order_id="o1", status="PARTIAL_CHARGED")
    params = parse_form(request.body)
    assert "status_id" not in params
    assert HdfcReturns().verify_return(account(), params, NOW).status is None
