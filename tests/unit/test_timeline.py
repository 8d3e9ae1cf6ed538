"""paysync.timeline.document: rows → the JSON document of the /v1 API, and its text view."""

from __future__ import annotations

import base64
import uuid
from datetime import UTC, datetime, timedelta, timezone
from decimal import Decimal
from typing import Any

import orjson
import pytest

from paysync.cli.timeline_text import render_text
from paysync.timeline.document import (
    build_timeline,
    encode_raw,
    format_time,
    json_value,
)

T0 = datetime(2026, 11, 21, 10, 0, 0, 123456, tzinfo=UTC)
EVENT_ID = uuid.UUID("6a55eaa8-0000-4000-8000-000000000001")


def payment_row(**changes: Any) -> dict[str, Any]:
    row: dict[str, Any] = {
        "id": 7,
        "provider": "ccpayment",
        "account": "shop",
        "merchant_ref": "order-1",
        "provider_ref": "o-1",
        "status": "paid",
        "amount": Decimal("25.00"),
        "currency": "USDT",
        "amount_paid": Decimal("2.5E+1"),
        "amount_refunded": Decimal("0"),
        "late": False,
        "anomaly": None,
        "expires_at": None,
        "seq": 2,
        "metadata": {"cart": "c-9"},
        "created_at": T0,
        "updated_at": T0 + timedelta(seconds=2),
        "next_check_at": None,
        "check_attempts": 0,
    }
    return row | changes


def inbox_row(id_: int, at: datetime, outcome: str = "applied", **changes: Any) -> dict[str, Any]:
    row: dict[str, Any] = {
        "id": id_,
        "dedup_key": f"ccpayment:rec-{id_}",
        "source": "callback",
        "kind": "credit",
        "received_at": at,
        "applied_at": at + timedelta(milliseconds=5),
        "outcome": outcome,
        "message_id": f"m-{id_}",
        "observation": {"kind": "credit", "record_id": f"rec-{id_}", "amount": "10"},
        "raw": b'{"pay_status":"success"}',
    }
    return row | changes


def transition_row(
    seq: int, frm: str | None, to: str, at: datetime, inbox_id: int
) -> dict[str, Any]:
    return {
        "seq": seq,
        "from_status": frm,
        "to_status": to,
        "source": "callback",
        "inbox_id": inbox_id,
        "at": at,
    }


def event_row(seq: int, at: datetime, published: datetime | None = None) -> dict[str, Any]:
    body = {"event_id": str(EVENT_ID), "payment": {"seq": seq, "amount_paid": "25"}}
    return {
        "event_id": EVENT_ID,
        "seq": seq,
        "routing_key": "payment.paid",
        "created_at": at,
        "published_at": published,
        "body": body,
    }


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        (Decimal("25.00"), "25.00"),
        (Decimal("1E-7"), "0.0000001"),
        (Decimal("2.5E+3"), "2500"),
        (Decimal("-0.10"), "-0.10"),
    ],
)
def test_money_is_a_plain_decimal_string(value: Decimal, expected: str) -> None:
    assert json_value(value) == expected


def test_times_are_utc_iso_with_microseconds_and_z() -> None:
    ist = timezone(timedelta(hours=5, minutes=30))
    moment = datetime(2026, 11, 21, 15, 30, 0, 5, tzinfo=ist)
    assert format_time(moment) == "2026-11-21T10:00:00.000005Z"
    assert json_value({"at": [moment]}) == {"at": ["2026-11-21T10:00:00.000005Z"]}
    with pytest.raises(ValueError, match="naive"):
        format_time(datetime(2026, 11, 21))


def test_raw_bytes_are_utf8_text_when_they_decode_else_base64() -> None:
    assert encode_raw('{"a":"ü"}'.encode()) == ('{"a":"ü"}', "utf-8")
    binary = b"\xff\xfe\x00payload"
    text, encoding = encode_raw(binary)
    assert encoding == "base64"
    assert base64.b64decode(text) == binary


def test_payment_keeps_every_column_with_money_times_and_metadata_shaped() -> None:
    shaped = build_timeline(payment_row(new_column="x"), [], [], [])["payment"]
    assert shaped["amount"] == "25.00"
    assert shaped["amount_paid"] == "25"
    assert shaped["amount_refunded"] == "0"
    assert shaped["created_at"] == "2026-11-21T10:00:00.123456Z"
    assert shaped["expires_at"] is None
    assert shaped["metadata"] == {"cart": "c-9"}
    assert shaped["new_column"] == "x"
    assert list(shaped) == [*payment_row(), "new_column"]
    # JSON columns read without the pool's codec arrive as text.
    as_text = build_timeline(payment_row(metadata='{"cart":"c-9"}'), [], [], [])
    assert as_text["payment"]["metadata"] == {"cart": "c-9"}


def test_lists_are_ordered_by_id_and_seq_whatever_the_row_order() -> None:
    doc = build_timeline(
        payment_row(),
        [inbox_row(3, T0), inbox_row(1, T0), inbox_row(2, T0, "duplicate")],
        [
            transition_row(2, "underpaid", "paid", T0, 3),
            transition_row(1, None, "underpaid", T0, 1),
        ],
        [event_row(2, T0), event_row(1, T0)],
    )
    assert [o["id"] for o in doc["observations"]] == [1, 2, 3]
    assert [o["outcome"] for o in doc["observations"]] == ["applied", "duplicate", "applied"]
    assert [t["seq"] for t in doc["transitions"]] == [1, 2]
    assert [e["seq"] for e in doc["events"]] == [1, 2]


def test_observation_event_and_transition_fields() -> None:
    doc = build_timeline(
        payment_row(),
        [inbox_row(1, T0, raw=b"\x80binary", observation='{"kind":"credit"}')],
        [transition_row(1, None, "paid", T0, 1)],
        [event_row(1, T0, published=T0 + timedelta(seconds=1)) | {"body": '{"seq":1}'}],
    )
    [obs], [tr], [ev] = doc["observations"], doc["transitions"], doc["events"]
    assert obs == {
        "id": 1,
        "dedup_key": "ccpayment:rec-1",
        "source": "callback",
        "kind": "credit",
        "received_at": "2026-11-21T10:00:00.123456Z",
        "applied_at": "2026-11-21T10:00:00.128456Z",
        "outcome": "applied",
        "message_id": "m-1",
        "observation": {"kind": "credit"},
        "raw": base64.b64encode(b"\x80binary").decode(),
        "raw_encoding": "base64",
    }
    assert tr == {
        "seq": 1,
        "from_status": None,
        "to_status": "paid",
        "source": "callback",
        "inbox_id": 1,
        "at": "2026-11-21T10:00:00.123456Z",
    }
    assert ev == {
        "event_id": str(EVENT_ID),
        "seq": 1,
        "routing_key": "payment.paid",
        "created_at": "2026-11-21T10:00:00.123456Z",
        "published_at": "2026-11-21T10:00:01.123456Z",
        "body": {"seq": 1},
    }
    # The document is plain JSON: orjson needs no default for any value in it.
    assert orjson.loads(orjson.dumps(doc)) == doc


def test_text_view_merges_everything_by_time_with_cause_before_effect() -> None:
    t1, t2 = T0 + timedelta(seconds=1), T0 + timedelta(seconds=2)
    doc = build_timeline(
        payment_row(),
        [inbox_row(2, t2), inbox_row(1, T0)],
        # A transition and its event share their transaction's time.
        [
            transition_row(2, "underpaid", "paid", t2, 2),
            transition_row(1, None, "underpaid", t1, 1),
        ],
        [event_row(2, t2), event_row(1, t1, published=t2)],
    )
    text = render_text(doc)
    head, _, timeline = text.partition("\ntimeline (UTC):\n")
    assert head.startswith("payment ccpayment/shop/order-1: paid (seq 2)\n")
    assert "  amount_paid      25\n" in head
    assert "  late             no\n" in head
    assert '  metadata         {"cart":"c-9"}\n' in head
    kinds = [line.split()[1] + line.split()[2] for line in timeline.splitlines()]
    assert kinds == [
        "received#1",
        "transitionseq",
        "eventseq",
        "received#2",
        "transitionseq",
        "eventseq",
    ]
    lines = timeline.splitlines()
    assert lines[0].startswith("  2026-11-21T10:00:00.123456Z  received")
    assert "record_id=rec-1 amount=10" in lines[0]
    assert "seq 1: (none) -> underpaid  (callback, inbox #1)" in lines[1]
    assert "published 2026-11-21T10:00:02.123456Z" in lines[2]
    assert "not yet published" in lines[5]
    assert [line.split()[0] for line in lines] == sorted(line.split()[0] for line in lines)


def test_text_view_of_a_payment_without_history() -> None:
    text = render_text(build_timeline(payment_row(status=None, seq=0), [], [], []))
    assert text.startswith("payment ccpayment/shop/order-1: (no status yet) (seq 0)")
    assert text.endswith("timeline (UTC):\n  (nothing recorded)")
