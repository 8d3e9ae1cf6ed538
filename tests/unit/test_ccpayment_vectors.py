"""CCPayment v1 signature: the provider doc's test vectors and CCPaymentAdapter.verify_callback."""

from __future__ import annotations

import hashlib
import hmac
import json
from datetime import UTC, datetime
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest

from paysync.errors import AuthenticationError
from providers.ccpayment.adapter import CCPaymentAdapter
from providers.ccpayment.scheme import (
    HEADER_APP_ID,
    HEADER_SIGN,
    HEADER_TIMESTAMP,
    CCPaymentAccount,
    sign,
)

# Test vectors of ../shared/providers/ccpayment.md ("Test vectors"); bodies are exact bytes.
FIXTURES = Path(__file__).parents[1] / "fixtures" / "ccpayment"
VECTORS: list[dict[str, Any]] = json.loads((FIXTURES / "vectors.json").read_text("utf-8"))
BY_NAME = {v["name"]: v for v in VECTORS}
APP_ID = "202401010000000000000000000000001"
APP_SECRET = "0123456789abcdef0123456789abcdef"
TIMESTAMP = "1700000000"
WEBHOOK_BODY = (FIXTURES / "vector_webhook_body.json").read_bytes()
WEBHOOK_SIGN: str = BY_NAME["v1_webhook"]["expected"]
WEBHOOK_SIGN_TS_PLUS_1: str = BY_NAME["v1_webhook_next_timestamp_against_original_timestamp"][
    "expected"
]
EMPTY_BODY_SIGN: str = BY_NAME["v1_empty_body"]["expected"]

NOW = datetime.fromtimestamp(1700000000, tz=UTC)
ADAPTER = CCPaymentAdapter()


def account(
    secrets: dict[str, str] | None = None, *, tolerance: int | None = None
) -> CCPaymentAccount:
    """An account built the way settings builds it: secret references resolved from env."""
    secrets = {"CCP_SECRET": APP_SECRET} if secrets is None else secrets
    fields: dict[str, object] = {
        "app_id": APP_ID,
        "secrets": [f"env:{name}" for name in secrets],
    }
    if tolerance is not None:
        fields["timestamp_tolerance_seconds"] = tolerance
    return CCPaymentAccount.model_validate(fields, context={"env": dict(secrets)})


def headers(
    *, app_id: str = APP_ID, timestamp: str = TIMESTAMP, sign_value: str = WEBHOOK_SIGN
) -> dict[str, str]:
    return {
        "Content-Type": "application/json; charset=utf-8",
        HEADER_APP_ID: app_id,
        HEADER_TIMESTAMP: timestamp,
        HEADER_SIGN: sign_value,
    }


def reason_of(
    hdrs: dict[str, str],
    body: bytes = WEBHOOK_BODY,
    now: datetime = NOW,
    acct: CCPaymentAccount | None = None,
) -> AuthenticationError:
    with pytest.raises(AuthenticationError) as info:
        ADAPTER.verify_callback(acct or account(), hdrs, body, now)
    return info.value


# --- the vectors themselves ---------------------------------------------------------------


def body_of(vector: dict[str, Any]) -> bytes:
    return (FIXTURES / str(vector["inputs"]["body_file"])).read_bytes()


def test_fixture_has_every_vector_of_the_doc() -> None:
    assert len(WEBHOOK_BODY) == 406
    assert not WEBHOOK_BODY.endswith(b"\n")
    assert body_of(BY_NAME["v1_empty_body"]) == b""
    assert body_of(BY_NAME["v1_order_info_request"]) == b'{"merchant_order_ids":["order-1001"]}'
    assert len(VECTORS) == 6
    assert len(BY_NAME) == len(VECTORS)
    assert {v["must_match"] for v in VECTORS} == {True, False}
    assert {v["inputs"]["scheme"] for v in VECTORS} == {"v1", "v2"}
    for vector in VECTORS:
        inputs = vector["inputs"]
        assert (inputs["app_id"], inputs["app_secret"]) == (APP_ID, APP_SECRET)
        assert inputs["headers"][HEADER_SIGN] == vector["expected"]
        assert not body_of(vector).endswith(b"\n")


def test_fixture_has_the_doc_example_payloads() -> None:
    webhook = json.loads((FIXTURES / "example_webhook_partial_payment.json").read_bytes())
    info = json.loads((FIXTURES / "example_order_info_response.json").read_bytes())
    v2 = json.loads((FIXTURES / "example_v2_webhook.json").read_bytes())
    [item] = info["data"]
    merchant_ref = item["order_detail"]["merchant_order_id"]
    assert webhook["extend"]["merchant_order_id"] == merchant_ref == v2["msg"]["orderId"]
    assert webhook["paid_amount"] == item["trade_list"][0]["amount"]
    # "A second webhook ... completes it (total = due)".
    paid = sum(Decimal(trade["amount"]) for trade in item["trade_list"])
    assert paid == Decimal(webhook["order_amount"]) == Decimal(item["order_detail"]["order_amount"])


@pytest.mark.parametrize("vector", VECTORS, ids=[v["name"] for v in VECTORS])
def test_vector_value(vector: dict[str, Any]) -> None:
    inputs = vector["inputs"]
    app_id, secret, timestamp = inputs["app_id"], inputs["app_secret"], inputs["timestamp"]
    body = body_of(vector)
    if inputs["scheme"] == "v1":
        plain = hashlib.sha256((app_id + secret + timestamp).encode() + body).hexdigest()
        assert plain == vector["expected"]
        assert sign(app_id, secret, timestamp, body) == vector["expected"]
    else:
        message = (app_id + timestamp).encode() + body
        mac = hmac.new(secret.encode(), message, hashlib.sha256).hexdigest()
        assert mac == vector["expected"]
        assert sign(app_id, secret, timestamp, body) != vector["expected"]


@pytest.mark.parametrize("vector", VECTORS, ids=[v["name"] for v in VECTORS])
def test_vector_verification(vector: dict[str, Any]) -> None:
    inputs = vector["inputs"]
    hdrs = {"Content-Type": "application/json; charset=utf-8"} | inputs["headers"]
    acct = account({"CCP_SECRET": inputs["app_secret"]})
    if vector["must_match"]:
        verified = ADAPTER.verify_callback(acct, hdrs, body_of(vector), NOW)
        assert verified.secret_ref == "env:CCP_SECRET"
        assert verified.http_headers == {HEADER_TIMESTAMP: inputs["headers"][HEADER_TIMESTAMP]}
    else:
        assert reason_of(hdrs, body_of(vector), acct=acct).reason == "bad_signature"


def test_webhook_vector_with_next_timestamp_differs() -> None:
    vector = BY_NAME["v1_webhook_next_timestamp_against_original_timestamp"]
    assert vector["inputs"]["timestamp"] == "1700000001"
    assert vector["inputs"]["headers"][HEADER_TIMESTAMP] == TIMESTAMP
    assert WEBHOOK_SIGN_TS_PLUS_1 != WEBHOOK_SIGN


def test_sign_is_64_lowercase_hex() -> None:
    value = sign(APP_ID, APP_SECRET, TIMESTAMP, WEBHOOK_BODY)
    assert len(value) == 64
    assert value == value.lower()
    int(value, 16)


# --- verify_callback ----------------------------------------------------------------------


def test_vector_verifies() -> None:
    verified = ADAPTER.verify_callback(account(), headers(), WEBHOOK_BODY, NOW)
    assert verified.secret_ref == "env:CCP_SECRET"
    assert verified.http_headers == {HEADER_TIMESTAMP: TIMESTAMP}


def test_empty_body_vector_verifies() -> None:
    verified = ADAPTER.verify_callback(account(), headers(sign_value=EMPTY_BODY_SIGN), b"", NOW)
    assert verified.secret_ref == "env:CCP_SECRET"


def test_next_timestamp_vector_verifies_within_tolerance() -> None:
    verified = ADAPTER.verify_callback(
        account(),
        headers(timestamp="1700000001", sign_value=WEBHOOK_SIGN_TS_PLUS_1),
        WEBHOOK_BODY,
        NOW,
    )
    assert verified.http_headers == {HEADER_TIMESTAMP: "1700000001"}


def test_uppercase_sign_is_accepted() -> None:
    verified = ADAPTER.verify_callback(
        account(), headers(sign_value=WEBHOOK_SIGN.upper()), WEBHOOK_BODY, NOW
    )
    assert verified.secret_ref == "env:CCP_SECRET"


@pytest.mark.parametrize("index", [0, len(WEBHOOK_BODY) // 2, len(WEBHOOK_BODY) - 1])
def test_one_changed_body_byte_is_bad_signature(index: int) -> None:
    body = bytearray(WEBHOOK_BODY)
    body[index] ^= 0x01
    assert reason_of(headers(), bytes(body)).reason == "bad_signature"


def test_appended_body_byte_is_bad_signature() -> None:
    assert reason_of(headers(), WEBHOOK_BODY + b"\n").reason == "bad_signature"


def test_changed_timestamp_within_tolerance_is_bad_signature() -> None:
    assert reason_of(headers(timestamp="1700000001")).reason == "bad_signature"


@pytest.mark.parametrize("index", [0, 31, 63])
def test_one_changed_sign_char_is_bad_signature(index: int) -> None:
    chars = list(WEBHOOK_SIGN)
    chars[index] = "0" if chars[index] != "0" else "1"
    assert reason_of(headers(sign_value="".join(chars))).reason == "bad_signature"


def test_wrong_app_id_is_foreign_app_id() -> None:
    wrong = "202401010000000000000000000000009"
    # Signed correctly for the other app id: the app id check itself must reject it.
    signed = sign(wrong, APP_SECRET, TIMESTAMP, WEBHOOK_BODY)
    assert reason_of(headers(app_id=wrong, sign_value=signed)).reason == "foreign_app_id"


@pytest.mark.parametrize("empty", [HEADER_APP_ID, HEADER_TIMESTAMP, HEADER_SIGN])
def test_each_empty_header_is_missing(empty: str) -> None:
    hdrs = headers()
    hdrs[empty] = ""
    assert reason_of(hdrs).reason == "missing_header"


@pytest.mark.parametrize(
    "timestamp",
    [
        "170000000",  # 9 digits
        "17000000000",  # 11 digits
        "1700000000000",  # milliseconds
        "170000000x",
        "-170000000",
        "+170000000",
        " 170000000",
        "1.70000000",
        "170000000\u00b2",  # SUPERSCRIPT TWO: str.isdigit() is true, int() raises
        "\u0661\u0667" + "\u0660" * 8,  # Arabic-Indic 1700000000: not ASCII Unix seconds
    ],
    ids=[
        "9-digits",
        "11-digits",
        "milliseconds",
        "letter",
        "minus",
        "plus",
        "space",
        "dot",
        "superscript-two",
        "arabic-indic-digits",
    ],
)
def test_non_ten_digit_timestamp_is_bad_timestamp(timestamp: str) -> None:
    assert reason_of(headers(timestamp=timestamp)).reason == "bad_timestamp"


def test_timestamp_at_tolerance_edges_is_accepted() -> None:
    acct = account(tolerance=600)
    for ts in (1700000000 - 600, 1700000000 + 600):
        signed = sign(APP_ID, APP_SECRET, str(ts), WEBHOOK_BODY)
        ADAPTER.verify_callback(
            acct, headers(timestamp=str(ts), sign_value=signed), WEBHOOK_BODY, NOW
        )


@pytest.mark.parametrize("offset", [-601, 601, -86_400, 86_400])
def test_timestamp_outside_tolerance_is_stale(offset: int) -> None:
    ts = str(1700000000 + offset)
    # Correctly signed, so only the freshness check can reject it.
    signed = sign(APP_ID, APP_SECRET, ts, WEBHOOK_BODY)
    error = reason_of(headers(timestamp=ts, sign_value=signed), acct=account(tolerance=600))
    assert error.reason == "stale_timestamp"


def test_vector_is_stale_when_now_moves_past_tolerance() -> None:
    later = datetime.fromtimestamp(1700000000 + 601, tz=UTC)
    assert reason_of(headers(), now=later, acct=account(tolerance=600)).reason == (
        "stale_timestamp"
    )


@pytest.mark.parametrize(
    "hdrs",
    [
        headers(sign_value=WEBHOOK_SIGN_TS_PLUS_1),
        headers(app_id="someone-else"),
        headers(timestamp="12"),
        headers(timestamp="1600000000"),
        {HEADER_APP_ID: APP_ID, HEADER_TIMESTAMP: TIMESTAMP},
    ],
)
def test_secret_never_in_authentication_error_text(hdrs: dict[str, str]) -> None:
    error = reason_of(hdrs)
    for text in (str(error), repr(error), error.detail, error.reason, repr(error.args)):
        assert APP_SECRET not in text
