"""Plural parse_callback / parse_return on envelopes built directly, the simulator's
requests, and the round trip of a pre-auth lifecycle through verify, parse and fold."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest
from multidict import CIMultiDict

from paysync.errors import MalformedMessage
from paysync.state.fold import Policy, fold
from providers.base import FORM_MEDIA_TYPE, parse_form
from providers.plural.adapter import ADAPTER
from providers.plural.scheme import MAPPING, PluralAccount
from schemas.envelope import Envelope, EnvelopeKind
from schemas.observation import Kind, Observation, Source
from schemas.status import Status
from simulator.plural import SIMULATOR, order_doc, webhook_body

FIXTURES = Path(__file__).parents[1] / "fixtures" / "plural"
RECEIVED_AT = datetime(2024, 6, 11, 10, 11, 0, tzinfo=UTC)
ACCOUNT = "shop-in"
ORDER_ID = "v1-240611101010-aa-TeSt01"
MSG_ID = "msg_made_up_0001"
TS = "1718100000"
HEX_KEY = "4D6164655570486578536563726574466F72506C7572616C5465737430303031"
SECRET = "bWFkZS11cC1wbHVyYWwtd2ViaG9vay1zZWNyZXQ="


def envelope(
    body: bytes,
    *,
    account: str = ACCOUNT,
    http_headers: dict[str, str] | None = None,
    kind: EnvelopeKind = EnvelopeKind.CALLBACK,
) -> Envelope:
    return Envelope(
        message_id="m-1",
        kind=kind,
        provider="plural",
        account=account,
        received_at=RECEIVED_AT,
        body=body,
        content_type="application/json",
        verified_by="env:PLURAL_WH",
        http_headers={"webhook-id": MSG_ID, "webhook-timestamp": TS}
        if http_headers is None
        else http_headers,
    )


# An override that removes the field.
_DROP = object()


def order(**overrides: Any) -> dict[str, Any]:
    base: dict[str, Any] = {
        "order_id": ORDER_ID,
        "merchant_order_reference": "shop-000123",
        "status": "PROCESSED",
        "order_amount": {"value": 125000, "currency": "INR"},
    }
    base.update(overrides)
    return {key: value for key, value in base.items() if value is not _DROP}


def parse(data: object, event_type: str = "ORDER_PROCESSED", **kw: Any) -> Observation:
    body = json.dumps({"event_type": event_type, "data": data}).encode()
    [obs] = ADAPTER.parse_callback(envelope(body, **kw))
    return obs


def malformed(body: bytes) -> str:
    with pytest.raises(MalformedMessage) as info:
        ADAPTER.parse_callback(envelope(body))
    return str(info.value)


def account(**fields: object) -> PluralAccount:
    env = {"PLURAL_WH": SECRET, "PLURAL_RET": HEX_KEY}
    data = {"secrets": ["env:PLURAL_WH"], "return_keys": ["env:PLURAL_RET"], **fields}
    return PluralAccount.model_validate(data, context={"env": env})


# --- the doc's example payloads ---------------------------------------------------------------


def test_doc_webhook_example_parses() -> None:
    [obs] = ADAPTER.parse_callback(
        envelope((FIXTURES / "webhook_order_processed.json").read_bytes())
    )
    assert obs.kind is Kind.STATUS
    assert obs.source is Source.CALLBACK
    assert obs.provider == "plural"
    assert obs.account == ACCOUNT
    assert obs.merchant_ref == "shop-000123"
    assert obs.provider_ref == ORDER_ID
    assert obs.provider_status == "PROCESSED"
    assert obs.status is Status.PAID
    assert obs.amount_due == Decimal("1250.00")
    assert obs.amount_due.as_tuple().exponent == -2
    assert obs.amount is None
    assert obs.currency == "INR"
    assert obs.record_id == MSG_ID
    # No updated_at in this body: the signed webhook-timestamp is the provider's time.
    assert obs.observed_at == datetime.fromtimestamp(int(TS), tz=UTC)
    assert obs.dedup_key == f"plural:{ACCOUNT}:{ORDER_ID}:status:PROCESSED"


def test_doc_get_order_example_parses() -> None:
    [obs] = ADAPTER.parse_callback(envelope((FIXTURES / "get_order_processed.json").read_bytes()))
    assert obs.merchant_ref == "shop-000123"
    assert obs.provider_ref == ORDER_ID
    assert obs.status is Status.PAID
    assert obs.amount_due == Decimal("1250.00")
    assert obs.observed_at == datetime(2024, 6, 11, 10, 10, 40, tzinfo=UTC)


# --- statuses ---------------------------------------------------------------------------------


@pytest.mark.parametrize(("provider_status", "status"), sorted(MAPPING.statuses.items()))
def test_every_order_status_maps(provider_status: str, status: Status) -> None:
    obs = parse(order(status=provider_status, pre_auth=False))
    assert obs.status is status
    assert obs.provider_status == provider_status


def test_pre_auth_processed_is_captured() -> None:
    assert parse(order(status="PROCESSED", pre_auth=True)).status is Status.CAPTURED


def test_pre_auth_authorized_is_authorized() -> None:
    assert parse(order(status="AUTHORIZED", pre_auth=True)).status is Status.AUTHORIZED


@pytest.mark.parametrize("pre_auth", [False, None, _DROP])
def test_processed_without_pre_auth_is_paid(pre_auth: object) -> None:
    assert parse(order(pre_auth=pre_auth)).status is Status.PAID


@pytest.mark.parametrize("pre_auth", ["true", 1, "false", 0])
def test_non_boolean_pre_auth_is_malformed(pre_auth: object) -> None:
    assert "pre_auth" in malformed(json.dumps({"data": order(pre_auth=pre_auth)}).encode())


def test_unknown_status_is_recorded_and_maps_to_nothing() -> None:
    obs = parse(order(status="ON_HOLD"))
    assert obs.status is None
    assert obs.provider_status == "ON_HOLD"
    assert obs.dedup_key == f"plural:{ACCOUNT}:{ORDER_ID}:status:ON_HOLD"


@pytest.mark.parametrize("event_type", ["REFUND_PROCESSED", "SOMETHING_NEW", ""])
def test_unknown_event_type_parses_the_order_the_same_way(event_type: str) -> None:
    obs = parse(order(status="PARTIALLY_REFUNDED"), event_type=event_type)
    assert obs.status is Status.PARTIALLY_REFUNDED
    assert obs.merchant_ref == "shop-000123"


def test_dedup_key_depends_on_account_order_and_status_only() -> None:
    a = parse(order(), http_headers={"webhook-id": "msg_a", "webhook-timestamp": TS})
    b = parse(order(updated_at="2024-06-11T10:10:40Z"), http_headers={"webhook-id": "msg_b"})
    c = parse(order(), account="other")
    d = parse(order(status="AUTHORIZED"))
    e = parse(order(order_id="v1-240611101010-aa-TeSt02"))
    assert a.dedup_key == b.dedup_key
    assert a.record_id == "msg_a"
    assert b.record_id == "msg_b"
    assert len({a.dedup_key, c.dedup_key, d.dedup_key, e.dedup_key}) == 4


def test_without_webhook_id_there_is_no_record_id() -> None:
    assert parse(order(), http_headers={}).record_id is None


# --- amounts ----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        (125000, "1250.00"),
        ("125000", "1250.00"),
        (1100, "11.00"),
        (1, "0.01"),
        (0, "0.00"),
        ("007", "0.07"),
        (12345678901234567890123456789012, "123456789012345678901234567890.12"),
    ],
)
def test_paise_become_rupees_exactly(value: object, expected: str) -> None:
    obs = parse(order(order_amount={"value": value, "currency": "INR"}))
    assert obs.amount_due == Decimal(expected)
    assert str(obs.amount_due) == expected


@pytest.mark.parametrize("amount", [_DROP, None])
def test_missing_order_amount_leaves_terms_open(amount: object) -> None:
    obs = parse(order(order_amount=amount))
    assert (obs.amount_due, obs.currency) == (None, None)


@pytest.mark.parametrize(
    "value", [1250.0, 1250.5, -1, "-1", True, False, "12.50", "", " 1", "1e3", None, [], {}]
)
def test_bad_amount_value_is_malformed(value: object) -> None:
    body = json.dumps({"data": order(order_amount={"value": value, "currency": "INR"})})
    assert "order_amount.value" in malformed(body.encode())


@pytest.mark.parametrize("amount", [125000, "125000", []])
def test_order_amount_not_an_object_is_malformed(amount: object) -> None:
    body = json.dumps({"data": order(order_amount=amount)})
    assert "order_amount" in malformed(body.encode())


@pytest.mark.parametrize("currency", [None, "", "USD", "inr", 356])
def test_currency_without_known_minor_unit_is_malformed(currency: object) -> None:
    body = json.dumps({"data": order(order_amount={"value": 100, "currency": currency})})
    assert "currency" in malformed(body.encode())


# --- times ------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("stated", "expected"),
    [
        ("2024-06-11T10:10:40Z", datetime(2024, 6, 11, 10, 10, 40, tzinfo=UTC)),
        ("2024-06-11T15:40:40+05:30", datetime(2024, 6, 11, 10, 10, 40, tzinfo=UTC)),
        ("2024-06-11T10:10:40.123Z", datetime(2024, 6, 11, 10, 10, 40, 123000, tzinfo=UTC)),
    ],
)
def test_updated_at_is_the_observation_time(stated: str, expected: datetime) -> None:
    obs = parse(order(updated_at=stated))
    assert obs.observed_at == expected
    assert obs.observed_at.utcoffset() is not None
    assert obs.observed_at.tzinfo is UTC


@pytest.mark.parametrize("stated", ["2024-06-11T10:10:40", "yesterday", "", 1718100000, {}])
def test_unreadable_or_zoneless_updated_at_is_malformed(stated: object) -> None:
    assert "updated_at" in malformed(json.dumps({"data": order(updated_at=stated)}).encode())


def test_without_any_stated_time_received_at_is_used() -> None:
    assert parse(order(), http_headers={}).observed_at == RECEIVED_AT


# --- malformed bodies -------------------------------------------------------------------------


# Bodies no provider can read are the contract's (tests/support/contract.py); these are
# Plural's own shape without its order.
@pytest.mark.parametrize(
    "body",
    [
        b'{"event_type": "ORDER_PROCESSED"}',
        b'{"event_type": "ORDER_PROCESSED", "data": null}',
        b'{"event_type": "ORDER_PROCESSED", "data": []}',
        b'{"event_type": "ORDER_PROCESSED", "data": "v1-1"}',
    ],
)
def test_unreadable_bodies_are_malformed(body: bytes) -> None:
    malformed(body)


@pytest.mark.parametrize("key", ["merchant_order_reference", "order_id", "status"])
@pytest.mark.parametrize("value", [_DROP, None, "", 12, ["x"]])
def test_missing_required_field_is_malformed_and_named(key: str, value: object) -> None:
    body = json.dumps({"data": order(**{key: value})}).encode()
    assert f"data.{key}" in malformed(body)


# --- parse_return -----------------------------------------------------------------------------


def test_parse_return_doc_form_body() -> None:
    raw = (FIXTURES / "return_success_form.txt").read_bytes()
    hint = ADAPTER.returns.parse_return(
        envelope(raw, kind=EnvelopeKind.RETURN_URL, http_headers={})
    )
    assert hint.provider == "plural"
    assert hint.account == ACCOUNT
    assert hint.merchant_ref is None
    assert hint.provider_ref == ORDER_ID
    assert hint.provider_status == "AUTHORIZED"
    assert hint.observed_at == RECEIVED_AT
    assert hint.dedup_key == f"plural:{ACCOUNT}:{ORDER_ID}:return:AUTHORIZED"


def test_parse_return_payment_status_and_plus_encoded_error() -> None:
    raw = (FIXTURES / "return_failed_form.txt").read_bytes()
    hint = ADAPTER.returns.parse_return(envelope(raw, kind=EnvelopeKind.RETURN_URL))
    assert (hint.provider_ref, hint.provider_status) == ("v1-240611101010-aa-TeSt02", "FAILED")
    raw = b"order_id=v1-x&payment_status=AUTHORIZED&signature=00"
    hint = ADAPTER.returns.parse_return(envelope(raw, kind=EnvelopeKind.RETURN_URL))
    assert hint.provider_status == "AUTHORIZED"


@pytest.mark.parametrize(
    "raw",
    [b"", b"status=AUTHORIZED", b"order_id=v1-x", b"order_id=&status=X", b"order_id=a&order_id=b"],
)
def test_parse_return_without_order_or_status_is_malformed(raw: bytes) -> None:
    with pytest.raises(MalformedMessage):
        ADAPTER.returns.parse_return(envelope(raw, kind=EnvelopeKind.RETURN_URL))


# --- simulator --------------------------------------------------------------------------------


def test_simulator_body_shape() -> None:
    updated = datetime(2024, 6, 11, 10, 10, 40, tzinfo=UTC)
    body = webhook_body(
        "ORDER_PROCESSED", ORDER_ID, "shop-000123", "PROCESSED", 125000, False, updated
    )
    assert b" " not in body
    doc = json.loads(body)
    assert doc["event_type"] == "ORDER_PROCESSED"
    assert doc["data"] == order_doc(
        order_id=ORDER_ID,
        merchant_ref="shop-000123",
        status="PROCESSED",
        amount_paise=125000,
        pre_auth=False,
        updated_at=updated,
    )
    assert doc["data"]["order_amount"] == {"value": 125000, "currency": "INR"}
    assert doc["data"]["updated_at"] == "2024-06-11T10:10:40Z"
    assert doc["data"]["payments"][0]["status"] == "PROCESSED"


@pytest.mark.parametrize("encoding", ["base64", "raw"])
def test_simulator_callback_verifies_and_parses(encoding: str) -> None:
    acct = account(webhook_key_encoding=encoding)
    now = 1718100000
    body = SIMULATOR.callback_body("order-9", now=now)
    headers = SIMULATOR.sign_callback(acct, body, now=now)
    assert set(SIMULATOR.required_headers) <= set(headers)
    assert headers["webhook-id"].startswith("msg_")
    assert headers["webhook-timestamp"] == str(now)
    assert headers["webhook-signature"].startswith("v1,")
    verified = ADAPTER.verify_callback(
        acct, CIMultiDict(headers), body, datetime.fromtimestamp(now, UTC)
    )
    assert verified.variant == encoding
    [obs] = ADAPTER.parse_callback(envelope(body, http_headers=dict(verified.http_headers)))
    assert obs.merchant_ref == "order-9"
    assert obs.status is Status.PAID
    assert obs.record_id == headers["webhook-id"]


def test_simulator_ids_differ_per_delivery() -> None:
    body = SIMULATOR.callback_body("order-9", now=1718100000)
    first = SIMULATOR.sign_callback(account(), body, now=1718100000)
    second = SIMULATOR.sign_callback(account(), body, now=1718100000)
    assert first["webhook-id"] != second["webhook-id"]


@pytest.mark.parametrize("method", ["GET", "POST"])
@pytest.mark.parametrize("status", ["AUTHORIZED", "FAILED"])
def test_simulator_return_verifies(method: Any, status: str) -> None:
    request = SIMULATOR.returns.signed_return(
        account(), order_id=ORDER_ID, status=status, method=method
    )
    assert request.route == "return"
    assert request.method == method
    if method == "GET":
        raw, expected_body = request.query.encode(), b""
        assert request.body == expected_body
    else:
        raw = request.body
        assert request.headers["Content-Type"] == FORM_MEDIA_TYPE
        assert request.query == ""
    params = parse_form(raw)
    verified = ADAPTER.returns.verify_return(account(), params, RECEIVED_AT)
    assert (verified.order_id, verified.provider_status) == (ORDER_ID, status)
    hint = ADAPTER.returns.parse_return(envelope(raw, kind=EnvelopeKind.RETURN_URL))
    assert hint.provider_ref == ORDER_ID


def test_simulator_return_needs_a_return_key() -> None:
    acct = PluralAccount.model_validate({"secrets": ["env:W"]}, context={"env": {"W": SECRET}})
    with pytest.raises(ValueError, match="return_keys"):
        SIMULATOR.returns.signed_return(acct, order_id=ORDER_ID, status="AUTHORIZED")


@pytest.mark.parametrize("encoding", ["base64", "raw"])
def test_lifecycle_round_trip_folds_to_captured(encoding: str) -> None:
    acct = account(webhook_key_encoding=encoding)
    now = 1718100000
    life = SIMULATOR.lifecycle(acct, "order-42", now=now)
    assert life.statuses == ["authorized", "captured"]
    assert life.provider_ref.startswith("v1-")
    assert (life.amount, life.currency) == (Decimal("1250.00"), "INR")
    seen: list[Observation] = []
    states = []
    for request in life.callbacks:
        verified = ADAPTER.verify_callback(
            acct, CIMultiDict(request.headers), request.body, datetime.fromtimestamp(now, UTC)
        )
        seen.extend(
            ADAPTER.parse_callback(envelope(request.body, http_headers=dict(verified.http_headers)))
        )
        states.append(fold(seen, Policy(failure_is_final=MAPPING.failure_is_final)))
    assert [s.status.value for s in states if s.status] == life.statuses
    final = states[-1]
    assert final.anomaly is None
    assert final.provider_ref == life.provider_ref
    assert (final.amount, final.currency) == (life.amount, life.currency)
    assert all(o.merchant_ref == "order-42" for o in seen)
    # Reversed delivery folds to the same state.
    assert fold(reversed(seen), Policy(failure_is_final=True)) == final
    # The processed webhook alone says captured too (pre_auth on the order).
    assert fold(seen[1:], Policy(failure_is_final=True)).status is Status.CAPTURED
