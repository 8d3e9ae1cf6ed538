"""A payment's timeline as JSON-ready data: pure shaping, no I/O.

The rows come from Postgres (``paysync/timeline/store.py``) as plain mappings: the payment, its
inbox receipts (observations), its transitions and its outbox rows (emitted events). The
same document is the body of ``GET /v1/payments/...`` and the output of
``paysync payment show --json`` (``paysync/cli/timeline_text.py`` is the terminal view).

Money is a plain decimal string (``format(x, "f")``, never exponent notation), times are
ISO 8601 in UTC with microseconds and ``Z``, raw bodies are UTF-8 text when they decode,
else base64, with ``raw_encoding`` saying which.
"""

from __future__ import annotations

import base64
import uuid
from collections.abc import Iterable, Mapping
from datetime import UTC, datetime
from decimal import Decimal
from typing import Any

import orjson

Row = Mapping[str, Any]

OBSERVATION_FIELDS = (
    "id",
    "dedup_key",
    "source",
    "kind",
    "received_at",
    "applied_at",
    "outcome",
    "message_id",
)
TRANSITION_FIELDS = ("seq", "from_status", "to_status", "source", "inbox_id", "at")
EVENT_FIELDS = ("event_id", "seq", "routing_key", "created_at", "published_at")


def format_time(moment: datetime) -> str:
    """``2026-11-21T10:00:00.123456Z``; a fixed width, so the strings sort chronologically."""
    if moment.tzinfo is None:
        raise ValueError("naive datetime in a timeline: times must be timezone-aware")
    return moment.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def json_value(value: Any) -> Any:
    """A database value as JSON: decimals as plain strings, times in UTC, uuids as text."""
    if isinstance(value, Decimal):
        return format(value, "f")
    if isinstance(value, datetime):
        return format_time(value)
    if isinstance(value, uuid.UUID):
        return str(value)
    if isinstance(value, Mapping):
        return {str(k): json_value(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [json_value(v) for v in value]
    return value


def encode_raw(raw: bytes) -> tuple[str, str]:
    """``(text, "utf-8")`` when the bytes are UTF-8, else ``(base64 text, "base64")``."""
    try:
        return raw.decode("utf-8"), "utf-8"
    except UnicodeDecodeError:
        return base64.b64encode(raw).decode("ascii"), "base64"


def _parsed(value: Any) -> Any:
    """JSON columns arrive decoded through the pool's codec, or as text without it."""
    if isinstance(value, str | bytes):
        return orjson.loads(value)
    return value


def shape_payment(row: Row) -> dict[str, Any]:
    """Every column of the payment row, whatever later migrations add."""
    return {key: json_value(_parsed(v) if key == "metadata" else v) for key, v in row.items()}


def shape_observation(row: Row) -> dict[str, Any]:
    shaped = {key: json_value(row[key]) for key in OBSERVATION_FIELDS}
    shaped["observation"] = json_value(_parsed(row["observation"]))
    shaped["raw"], shaped["raw_encoding"] = encode_raw(bytes(row["raw"]))
    return shaped


def shape_transition(row: Row) -> dict[str, Any]:
    return {key: json_value(row[key]) for key in TRANSITION_FIELDS}


def shape_event(row: Row) -> dict[str, Any]:
    shaped = {key: json_value(row[key]) for key in EVENT_FIELDS}
    shaped["body"] = json_value(_parsed(row["body"]))
    return shaped


def build_timeline(
    payment: Row,
    observations: Iterable[Row],
    transitions: Iterable[Row],
    events: Iterable[Row],
) -> dict[str, Any]:
    """The whole document: receipts in id order, transitions and events in seq order."""
    return {
        "payment": shape_payment(payment),
        "observations": [
            shape_observation(r) for r in sorted(observations, key=lambda r: int(r["id"]))
        ],
        "transitions": [
            shape_transition(r) for r in sorted(transitions, key=lambda r: int(r["seq"]))
        ],
        "events": [shape_event(r) for r in sorted(events, key=lambda r: int(r["seq"]))],
    }
