"""Wire contracts: events against their JSON Schemas, Envelope AMQP round trip, Status ranks."""

from __future__ import annotations

import json
import re
import uuid
from datetime import UTC, datetime, timedelta, timezone
from decimal import Decimal
from typing import Any

import jsonschema
import pytest
from hypothesis import given
from hypothesis import strategies as st

from paysync.errors import MalformedMessage
from schemas.envelope import (
    H_ACCOUNT,
    H_HTTP,
    H_KIND,
    H_PROVIDER,
    H_RECEIVED_AT,
    H_SCHEMA,
    H_VERIFIED_BY,
    Envelope,
    EnvelopeKind,
)
from schemas.event import EventType, PaymentEvent, format_time
from schemas.observation import Source
from schemas.status import Status, higher
from tests.support.event_schemas import SCHEMA_DIR, VALIDATORS, validate_event, validator

HEADERS_SCHEMA = json.loads((SCHEMA_DIR / "envelope-headers.schema.json").read_text())
TIME_FORMAT = re.compile(r"^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}\.\d{3}Z$")

EVENT_VALIDATOR = VALIDATORS["payment.status_changed"]
HEADERS_VALIDATOR = validator(HEADERS_SCHEMA)


def event(**overrides: Any) -> PaymentEvent:
    fields: dict[str, Any] = {
        "type": EventType.STATUS_CHANGED,
        "event_id": str(uuid.UUID(int=1)),
        "occurred_at": datetime(2026, 11, 21, 10, 0, 0, 123456, tzinfo=UTC),
        "source": "callback",
        "provider": "ccpayment",
        "account": "shop",
        "merchant_ref": "order-1001",
        "provider_ref": "202401011100000000000000000000003",
        "status": Status.PAID,
        "previous_status": Status.UNDERPAID,
        "amount": Decimal("25.012"),
        "amount_paid": Decimal("25.012"),
        "currency": "USDT",
        "late": False,
        "anomaly": (),
        "seq": 2,
    }
    fields.update(overrides)
    return PaymentEvent(**fields)


# --- Events --------------------------------------------------------------------------------


def test_event_validates_against_schema() -> None:
    EVENT_VALIDATOR.validate(event().to_json())


def test_event_with_nulls_validates_against_schema() -> None:
    body = event(
        provider_ref=None,
        previous_status=None,
        amount=None,
        currency=None,
        status=Status.PENDING,
        amount_paid=Decimal(0),
        seq=1,
        metadata={"note": "x"},
    ).to_json()
    EVENT_VALIDATOR.validate(body)
    assert body["payment"]["previous_status"] is None
    assert body["payment"]["amount"] is None
    assert body["payment"]["metadata"] == {"note": "x"}


@pytest.mark.parametrize("status", list(Status))
# Every observation source, and the operator's refold.
@pytest.mark.parametrize("source", [*(s.value for s in Source), "refold"])
def test_every_status_and_source_validates(status: Status, source: str) -> None:
    EVENT_VALIDATOR.validate(event(status=status, source=source).to_json())


def test_schema_rejects_what_it_should() -> None:
    # The validator is not vacuous: a float amount and a bad status are refused.
    body = event().to_json()
    body["payment"]["amount"] = 25.012
    with pytest.raises(jsonschema.ValidationError):
        EVENT_VALIDATOR.validate(body)
    body = event().to_json()
    body["payment"]["status"] = "done"
    with pytest.raises(jsonschema.ValidationError):
        EVENT_VALIDATOR.validate(body)


def test_event_json_fields() -> None:
    body = event().to_json()
    assert body["type"] == "payment.status_changed"
    assert body["schema_version"] == 1
    assert body["event_id"] == str(uuid.UUID(int=1))
    payment = body["payment"]
    assert payment["status"] == "paid"
    assert payment["previous_status"] == "underpaid"
    assert payment["amount"] == "25.012"
    assert payment["amount_paid"] == "25.012"
    assert payment["late"] is False
    assert payment["seq"] == 2
    # The body is plain JSON: it survives a dump/load unchanged.
    assert json.loads(json.dumps(body)) == body


def test_every_event_carries_its_anomalies_empty_when_none() -> None:
    assert event().to_json()["payment"]["anomaly"] == []
    body = event(anomaly=("cancelled_and_paid", "currency_conflict")).to_json()
    EVENT_VALIDATOR.validate(body)
    assert body["payment"]["anomaly"] == ["cancelled_and_paid", "currency_conflict"]
    for wrong in ("currency_conflict", ["x", "x"], ["Not-A-Code"], None):
        body["payment"]["anomaly"] = wrong
        with pytest.raises(jsonschema.ValidationError):
            EVENT_VALIDATOR.validate(body)
    del body["payment"]["anomaly"]
    with pytest.raises(jsonschema.ValidationError):
        EVENT_VALIDATOR.validate(body)


def flagged(**overrides: Any) -> PaymentEvent:
    fields: dict[str, Any] = {
        "type": EventType.FLAGGED,
        "previous_status": Status.PAID,
        "anomaly": ("currency_conflict",),
    }
    return event(**(fields | overrides))


def test_a_flagged_event_validates_against_its_schema_and_routes_apart() -> None:
    body = flagged().to_json()
    validate_event(body)
    assert body["type"] == "payment.flagged"
    assert flagged().routing_key == "payment.flagged"
    assert body["payment"]["status"] == body["payment"]["previous_status"] == "paid"
    # The status_changed schema does not take it, nor the flagged schema a status change.
    with pytest.raises(jsonschema.ValidationError):
        EVENT_VALIDATOR.validate(body)
    with pytest.raises(jsonschema.ValidationError):
        VALIDATORS["payment.flagged"].validate(event().to_json())


def test_a_flagged_event_names_at_least_one_anomaly_and_shares_the_payment_shape() -> None:
    with pytest.raises(jsonschema.ValidationError):
        validate_event(flagged(anomaly=()).to_json())
    body = flagged().to_json()
    body["payment"]["amount"] = 25.0  # the shared payment definition applies
    with pytest.raises(jsonschema.ValidationError):
        validate_event(body)
    with pytest.raises(jsonschema.ValidationError):
        validate_event({**flagged().to_json(), "type": "payment.something_else"})


def test_money_is_strings() -> None:
    payment = event(amount=Decimal("100.50"), amount_paid=Decimal("0")).to_json()["payment"]
    assert payment["amount"] == "100.50"
    assert payment["amount_paid"] == "0"
    assert isinstance(payment["amount"], str)


@pytest.mark.parametrize(
    "amount",
    [
        Decimal("0.00000012"),  # 1.2E-7 BTC is an ordinary crypto amount
        Decimal("0.000000000000000001"),  # CCPayment sends up to 18 decimals
        Decimal("0E-18"),  # "0.000000000000000000" parsed as Decimal
        Decimal("1E+2"),  # a JSON number 1e2 parsed with parse_float=Decimal
    ],
    ids=["1.2E-7", "1E-18", "0E-18", "1E+2"],
)
def test_small_and_exponent_amounts_are_plain_decimal_strings(amount: Decimal) -> None:
    body = event(amount=amount, amount_paid=amount).to_json()
    EVENT_VALIDATOR.validate(body)
    assert Decimal(body["payment"]["amount"]) == amount


@given(
    amount=st.decimals(min_value=0, max_value=Decimal("1e12"), places=18, allow_nan=False),
    paid=st.decimals(min_value=0, max_value=Decimal("1e12"), places=18, allow_nan=False),
)
def test_any_amount_validates_and_round_trips(amount: Decimal, paid: Decimal) -> None:
    body = event(amount=amount, amount_paid=paid).to_json()
    EVENT_VALIDATOR.validate(body)
    assert Decimal(body["payment"]["amount"]) == amount
    assert Decimal(body["payment"]["amount_paid"]) == paid


@pytest.mark.parametrize("status", list(Status))
def test_routing_key(status: Status) -> None:
    assert event(status=status).routing_key == f"payment.{status.value}"


def test_occurred_at_is_utc_milliseconds() -> None:
    moment = datetime(2026, 11, 21, 10, 0, 0, 123456, tzinfo=UTC)
    assert event(occurred_at=moment).to_json()["occurred_at"] == "2026-11-21T10:00:00.123Z"


def test_occurred_at_converts_non_utc_offset() -> None:
    ist = timezone(timedelta(hours=5, minutes=30))
    moment = datetime(2026, 11, 21, 15, 30, 0, 999999, tzinfo=ist)
    assert format_time(moment) == "2026-11-21T10:00:00.999Z"
    negative = timezone(timedelta(hours=-8))
    assert format_time(datetime(2026, 12, 31, 20, 0, 1, tzinfo=negative)) == (
        "2027-01-01T04:00:01.000Z"
    )


@given(
    moment=st.datetimes(
        min_value=datetime(1970, 1, 2),
        max_value=datetime(9998, 12, 30),
        timezones=st.sampled_from(
            [UTC, timezone(timedelta(hours=14)), timezone(timedelta(hours=-12, minutes=-30))]
        ),
    )
)
def test_occurred_at_format_property(moment: datetime) -> None:
    text = format_time(moment)
    assert TIME_FORMAT.match(text)
    parsed = datetime.strptime(text, "%Y-%m-%dT%H:%M:%S.%fZ").replace(tzinfo=UTC)
    assert timedelta(0) <= moment - parsed < timedelta(milliseconds=1)


# --- Envelope ------------------------------------------------------------------------------


def envelope(**overrides: Any) -> Envelope:
    fields: dict[str, Any] = {
        "message_id": "5b7c1e0e-7f43-4a39-9a43-0e0d1f1c2b3a",
        "kind": EnvelopeKind.CALLBACK,
        "provider": "ccpayment",
        "account": "shop",
        "received_at": datetime(2026, 11, 21, 10, 0, 0, 123456, tzinfo=UTC),
        "body": b'{"pay_status":"success"}',
        "content_type": "application/json; charset=utf-8",
        "verified_by": "env:CCP_SECRET",
        "http_headers": {"Timestamp": "1700000000"},
    }
    fields.update(overrides)
    return Envelope(**fields)


def round_trip(env: Envelope, headers: dict[str, Any] | None = None) -> Envelope:
    return Envelope.from_amqp(
        message_id=env.message_id,
        headers=env.amqp_headers() if headers is None else headers,
        body=env.body,
        content_type=env.content_type,
    )


def to_bytes(value: Any) -> Any:
    if isinstance(value, str):
        return value.encode()
    if isinstance(value, dict):
        return {k: to_bytes(v) for k, v in value.items()}
    return value


def test_amqp_headers_validate_against_schema() -> None:
    HEADERS_VALIDATOR.validate(envelope().amqp_headers())


def test_amqp_headers_content() -> None:
    headers = envelope().amqp_headers()
    assert headers[H_SCHEMA] == 1
    assert headers[H_KIND] == "callback"
    assert headers[H_PROVIDER] == "ccpayment"
    assert headers[H_ACCOUNT] == "shop"
    assert headers[H_VERIFIED_BY] == "env:CCP_SECRET"
    assert headers[H_HTTP] == {"Timestamp": "1700000000"}
    assert isinstance(headers[H_HTTP], dict)


@pytest.mark.parametrize(
    "env",
    [
        envelope(),
        envelope(kind=EnvelopeKind.RETURN_URL, http_headers={}, verified_by=""),
        envelope(received_at=datetime(2026, 1, 1, 5, 30, tzinfo=timezone(timedelta(hours=5)))),
        envelope(body=b"", content_type="application/octet-stream"),
    ],
)
def test_envelope_round_trips(env: Envelope) -> None:
    assert round_trip(env) == env


def test_envelope_round_trips_with_bytes_header_values() -> None:
    env = envelope()
    back = round_trip(env, to_bytes(env.amqp_headers()))
    assert back == env
    assert isinstance(back.http_headers["Timestamp"], str)


def test_missing_content_type_defaults() -> None:
    env = envelope()
    back = Envelope.from_amqp(
        message_id=env.message_id, headers=env.amqp_headers(), body=env.body, content_type=None
    )
    assert back.content_type == "application/octet-stream"


def test_missing_optional_headers_default() -> None:
    headers = envelope().amqp_headers()
    del headers[H_VERIFIED_BY]
    del headers[H_HTTP]
    back = round_trip(envelope(), headers)
    assert back.verified_by == ""
    assert back.http_headers == {}


@pytest.mark.parametrize("header", [H_KIND, H_PROVIDER, H_ACCOUNT, H_RECEIVED_AT])
def test_missing_required_header_is_malformed(header: str) -> None:
    headers = envelope().amqp_headers()
    del headers[header]
    with pytest.raises(MalformedMessage, match=header):
        round_trip(envelope(), headers)


@pytest.mark.parametrize("header", [H_KIND, H_PROVIDER, H_ACCOUNT, H_RECEIVED_AT])
def test_empty_required_header_is_malformed(header: str) -> None:
    headers = envelope().amqp_headers()
    headers[header] = ""
    with pytest.raises(MalformedMessage):
        round_trip(envelope(), headers)


@pytest.mark.parametrize("message_id", [None, ""])
def test_missing_message_id_is_malformed(message_id: str | None) -> None:
    env = envelope()
    with pytest.raises(MalformedMessage, match="message_id"):
        Envelope.from_amqp(
            message_id=message_id, headers=env.amqp_headers(), body=env.body, content_type=None
        )


@pytest.mark.parametrize(
    "received_at", ["yesterday", "2026-13-01T00:00:00+00:00", 1700000000, b"\xff\xfe", ["x"]]
)
def test_bad_received_at_is_malformed(received_at: object) -> None:
    headers = envelope().amqp_headers()
    headers[H_RECEIVED_AT] = received_at
    with pytest.raises(MalformedMessage):
        round_trip(envelope(), headers)


@pytest.mark.parametrize(
    ("header", "value"),
    [
        (H_KIND, "webhook"),
        (H_PROVIDER, 5),
        (H_HTTP, "Timestamp"),
        (H_HTTP, {"Timestamp": 1700000000}),
        (H_VERIFIED_BY, 3),
    ],
)
def test_bad_header_values_are_malformed(header: str, value: object) -> None:
    headers = envelope().amqp_headers()
    headers[header] = value
    with pytest.raises(MalformedMessage):
        round_trip(envelope(), headers)


# --- Status --------------------------------------------------------------------------------

DESIGN_ORDER = [
    "pending",
    "failed",
    "expired",
    "underpaid",
    "overdue",
    "authorized",
    "cancelled",
    "paid",
    "captured",
    "overpaid",
    "partially_refunded",
    "refunded",
    "charged_back",
]


def test_status_ranks_follow_design_order() -> None:
    assert [Status(name).rank for name in DESIGN_ORDER] == list(range(13))
    assert len(Status) == 13


@pytest.mark.parametrize("a", list(Status))
@pytest.mark.parametrize("b", list(Status))
def test_higher_picks_higher_rank(a: Status, b: Status) -> None:
    expected = a if DESIGN_ORDER.index(a.value) >= DESIGN_ORDER.index(b.value) else b
    assert higher(a, b) is expected
    assert higher(a, b).rank == max(a.rank, b.rank)
    assert higher(a, b) is higher(b, a)
