"""Plural signatures: the provider doc's vectors, verify_callback, verify_return, account config."""

from __future__ import annotations

import base64
import json
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
from multidict import CIMultiDict
from pydantic import ValidationError

from paysync.errors import AuthenticationError, ConfigError
from paysync.settings import load_settings
from providers.base import parse_form
from providers.plural.adapter import ADAPTER
from providers.plural.scheme import PluralAccount, return_signature, webhook_key, webhook_signature
from schemas.status import Status

FIXTURES = Path(__file__).parents[1] / "fixtures" / "plural"
VECTORS: list[dict[str, Any]] = json.loads((FIXTURES / "vectors.json").read_text("utf-8"))
WEBHOOK_VECTORS = [v for v in VECTORS if v["scheme"] == "webhook"]
RETURN_VECTORS = [v for v in VECTORS if v["scheme"] == "return"]

MADE_UP_SECRET = "bWFkZS11cC1wbHVyYWwtd2ViaG9vay1zZWNyZXQ="
MADE_UP_ID = "msg_made_up_0001"
MADE_UP_TS = "1718100000"
MADE_UP_SIG = "v1,uNMLOg2y34rwV5zvZMXU6K4buHT0Ao5rIs65Jz+olTA="
MADE_UP_RAW_SIG = "v1,4ZnGC8FrugQWKbBR8F4DEt9teRxvywpGriPrScFKtyU="
BODY = (FIXTURES / "webhook_order_processed.json").read_bytes()
NOW = datetime.fromtimestamp(int(MADE_UP_TS), tz=UTC)
HEX_KEY = "4D6164655570486578536563726574466F72506C7572616C5465737430303031"
OTHER_HEX_KEY = "00" * 32
RETURN_SIG = "7C74B30E145475B6C21F0FC72C7921441DA686EBE1D20340C8425B30C3E2ED2C"
ORDER_ID = "v1-240611101010-aa-TeSt01"


def account(
    secrets: dict[str, str] | None = None,
    *,
    return_keys: dict[str, str] | None = None,
    **fields: object,
) -> PluralAccount:
    """An account built the way settings builds it: secret references resolved from env."""
    secrets = {"PLURAL_WH": MADE_UP_SECRET} if secrets is None else secrets
    return_keys = {"PLURAL_RET": HEX_KEY} if return_keys is None else return_keys
    data: dict[str, object] = {
        "secrets": [f"env:{n}" for n in secrets],
        "return_keys": [f"env:{n}" for n in return_keys],
        **fields,
    }
    return PluralAccount.model_validate(data, context={"env": {**secrets, **return_keys}})


def headers(
    *, msg_id: str = MADE_UP_ID, ts: str = MADE_UP_TS, sig: str = MADE_UP_SIG
) -> CIMultiDict[str]:
    return CIMultiDict(
        {
            "Content-Type": "application/json",
            "webhook-id": msg_id,
            "webhook-timestamp": ts,
            "webhook-signature": sig,
        }
    )


def sig_for(secret: str, *, msg_id: str = MADE_UP_ID, ts: str = MADE_UP_TS, body: bytes = BODY):
    _, key = webhook_key(secret, "base64")
    return "v1," + base64.b64encode(webhook_signature(msg_id, ts, body, key)).decode()


def reason_of(
    hdrs: CIMultiDict[str],
    body: bytes = BODY,
    now: datetime = NOW,
    acct: PluralAccount | None = None,
) -> str:
    with pytest.raises(AuthenticationError) as info:
        ADAPTER.verify_callback(acct or account(), hdrs, body, now)
    assert MADE_UP_SECRET not in str(info.value)
    return info.value.reason


def return_reason(params: dict[str, str], acct: PluralAccount | None = None) -> str:
    with pytest.raises(AuthenticationError) as info:
        ADAPTER.returns.verify_return(acct or account(), params, NOW)
    assert HEX_KEY not in str(info.value)
    return info.value.reason


def vector_body(vector: dict[str, Any]) -> bytes:
    if "body_file" in vector:
        return (FIXTURES / str(vector["body_file"])).read_bytes()
    return str(vector["body"]).encode("utf-8")


# --- the doc's vectors ------------------------------------------------------------------------


def test_fixture_body_is_exact_bytes() -> None:
    assert BODY.startswith(b'{"event_type":"ORDER_PROCESSED",')
    assert BODY.endswith(b'"currency":"INR"}}}')
    assert len(BODY) == 191


@pytest.mark.parametrize("vector", WEBHOOK_VECTORS, ids=lambda v: v["name"])
def test_webhook_vector_signature(vector: dict[str, Any]) -> None:
    _, key = webhook_key(vector["secret"], vector["key_encoding"])
    mac = webhook_signature(vector["msg_id"], vector["timestamp"], vector_body(vector), key)
    computed = "v1," + base64.b64encode(mac).decode()
    assert (computed == vector["expected"]) is vector["must_match"]


@pytest.mark.parametrize("vector", WEBHOOK_VECTORS, ids=lambda v: v["name"])
def test_webhook_vector_through_verify_callback(vector: dict[str, Any]) -> None:
    acct = account({"PLURAL_WH": vector["secret"]}, webhook_key_encoding=vector["key_encoding"])
    hdrs = headers(msg_id=vector["msg_id"], ts=vector["timestamp"], sig=vector["expected"])
    now = datetime.fromtimestamp(int(vector["timestamp"]), tz=UTC)
    if vector["must_match"]:
        verified = ADAPTER.verify_callback(acct, hdrs, vector_body(vector), now)
        assert verified.secret_ref == "env:PLURAL_WH"
        assert verified.variant == vector["key_encoding"]
        assert verified.replay_key == vector["msg_id"]
        assert verified.http_headers == {
            "webhook-id": vector["msg_id"],
            "webhook-timestamp": vector["timestamp"],
        }
    else:
        assert reason_of(hdrs, vector_body(vector), now, acct) == "bad_signature"


def test_official_secret_decodes_to_documented_key() -> None:
    assert webhook_key("YWJjMTIzNA==", "base64") == ("base64", b"abc1234")
    assert webhook_key(MADE_UP_SECRET, "base64") == ("base64", b"made-up-plural-webhook-secret")
    assert webhook_key(MADE_UP_SECRET, "raw") == ("raw", MADE_UP_SECRET.encode())


@pytest.mark.parametrize("vector", RETURN_VECTORS, ids=lambda v: v["name"])
def test_return_vector_signature(vector: dict[str, Any]) -> None:
    params = vector["params"]
    joined = "&".join(f"{k}={params[k]}" for k in sorted(params))
    assert joined == vector["string_signed"]
    assert (return_signature(params, vector["hex_key"]) == vector["expected"]) is vector[
        "must_match"
    ]


@pytest.mark.parametrize("vector", RETURN_VECTORS, ids=lambda v: v["name"])
def test_return_vector_through_verify_return(vector: dict[str, Any]) -> None:
    acct = account(return_keys={"PLURAL_RET": vector["hex_key"]})
    params = {**vector["params"], "signature": vector["expected"]}
    if not vector["must_match"]:
        assert return_reason(params, acct) == "bad_signature"
        return
    verified = ADAPTER.returns.verify_return(acct, params, NOW)
    status_field = "payment_status" if "payment_status" in params else "status"
    assert verified.secret_ref == "env:PLURAL_RET"
    assert verified.variant == status_field
    assert verified.order_id == params["order_id"]
    assert verified.provider_status == params[status_field]
    assert (
        verified.status
        == {"AUTHORIZED": Status.AUTHORIZED, "FAILED": Status.FAILED}[params[status_field]]
    )


def test_return_signature_is_64_uppercase_hex() -> None:
    value = return_signature({"order_id": ORDER_ID, "status": "AUTHORIZED"}, HEX_KEY)
    assert len(value) == 64
    assert value == value.upper()
    int(value, 16)


def test_doc_form_body_verifies_after_parse_form() -> None:
    params = parse_form((FIXTURES / "return_success_form.txt").read_bytes())
    verified = ADAPTER.returns.verify_return(account(), params, NOW)
    assert (verified.order_id, verified.provider_status) == (ORDER_ID, "AUTHORIZED")


def test_error_message_with_plus_for_space_verifies_after_parse_form() -> None:
    raw = (FIXTURES / "return_failed_form.txt").read_bytes()
    assert b"Consumer+Authentication+required" in raw
    params = parse_form(raw)
    assert params["error_message"] == "Consumer Authentication required"
    verified = ADAPTER.returns.verify_return(account(), params, NOW)
    assert verified.status is Status.FAILED
    assert verified.order_id == "v1-240611101010-aa-TeSt02"


def test_error_message_signed_url_encoded_does_not_verify() -> None:
    # Plural signs the unencoded value: a signature over "Consumer+Authentication..." or
    # "%20" must not be accepted for the decoded parameters.
    params = parse_form((FIXTURES / "return_failed_form.txt").read_bytes())
    for encoded in ("Consumer+Authentication+required", "Consumer%20Authentication%20required"):
        forged = {**params, "error_message": encoded}
        wrong = return_signature(forged, HEX_KEY)
        assert return_reason({**params, "signature": wrong}) == "bad_signature"


# --- verify_callback --------------------------------------------------------------------------


def test_made_up_vector_verifies_with_default_encoding() -> None:
    verified = ADAPTER.verify_callback(account(), headers(), BODY, NOW)
    assert verified.secret_ref == "env:PLURAL_WH"
    assert verified.variant == "base64"


def test_headers_are_case_insensitive() -> None:
    hdrs = CIMultiDict(
        {
            "Webhook-Id": MADE_UP_ID,
            "WEBHOOK-TIMESTAMP": MADE_UP_TS,
            "Webhook-Signature": MADE_UP_SIG,
        }
    )
    assert ADAPTER.verify_callback(account(), hdrs, BODY, NOW).replay_key == MADE_UP_ID


def test_rotation_old_signature_plus_good_one() -> None:
    old = sig_for("b2xkLXNlY3JldC1vbmU=")
    assert ADAPTER.verify_callback(account(), headers(sig=f"{old} {MADE_UP_SIG}"), BODY, NOW)
    assert ADAPTER.verify_callback(account(), headers(sig=f"{MADE_UP_SIG} {old}"), BODY, NOW)


def test_rotation_secret_and_signature_pairs_cross() -> None:
    old_secret = "b2xkLXNlY3JldC1vbmU="
    acct = account({"PLURAL_OLD": old_secret, "PLURAL_NEW": MADE_UP_SECRET})
    header = f"{sig_for(old_secret)} {MADE_UP_SIG}"
    # Both pairs match; the first configured secret is named.
    assert ADAPTER.verify_callback(acct, headers(sig=header), BODY, NOW).secret_ref == (
        "env:PLURAL_OLD"
    )


@pytest.mark.parametrize(
    "header",
    [
        f"v1,not-base64!! {MADE_UP_SIG}",
        f"v1, {MADE_UP_SIG}",
        f"junk {MADE_UP_SIG}",
        f"v1,{'A' * 44} {MADE_UP_SIG}",
        f"{MADE_UP_SIG}  v1,AAAA",
        f"v2,{MADE_UP_SIG[3:]} {MADE_UP_SIG}",
        f"v1a,xyz {MADE_UP_SIG}",
    ],
)
def test_junk_entries_beside_a_good_one_are_ignored(header: str) -> None:
    assert ADAPTER.verify_callback(account(), headers(sig=header), BODY, NOW)


@pytest.mark.parametrize(
    "header",
    [
        f"v2,{MADE_UP_SIG[3:]}",
        f"V1,{MADE_UP_SIG[3:]}",
        MADE_UP_SIG[3:],
        f"v1a,{MADE_UP_SIG[3:]}",
        f"v1,{MADE_UP_SIG[3:-1]}",
        "v1,",
        "junk",
        "v1,ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad",
    ],
)
def test_no_matching_v1_entry_is_bad_signature(header: str) -> None:
    assert reason_of(headers(sig=header)) == "bad_signature"


def test_whsec_prefix_is_stripped_and_decoded() -> None:
    acct = account({"PLURAL_WH": "whsec_" + MADE_UP_SECRET})
    verified = ADAPTER.verify_callback(acct, headers(), BODY, NOW)
    assert verified.variant == "base64"


def test_whsec_prefix_is_base64_even_under_raw_encoding() -> None:
    acct = account({"PLURAL_WH": "whsec_" + MADE_UP_SECRET}, webhook_key_encoding="raw")
    assert ADAPTER.verify_callback(acct, headers(), BODY, NOW).variant == "base64"


def test_raw_encoding_variant_is_reported() -> None:
    acct = account(webhook_key_encoding="raw")
    verified = ADAPTER.verify_callback(acct, headers(sig=MADE_UP_RAW_SIG), BODY, NOW)
    assert verified.variant == "raw"


@pytest.mark.parametrize("empty", ["webhook-id", "webhook-timestamp", "webhook-signature"])
def test_each_empty_header_is_missing(empty: str) -> None:
    hdrs = headers()
    hdrs[empty] = ""
    assert reason_of(hdrs) == "missing_header"


@pytest.mark.parametrize(
    "ts",
    [
        "1718100000.5",
        "-1718100000",
        "+1718100000",
        " 1718100000",
        "1718100000ms",
        "17181e5",
        "1718100000\u00b2",
        "\u0661\u0667\u0661\u0668\u0661\u0660\u0660\u0660\u0660\u0660",
    ],
)
def test_non_digit_timestamp_is_bad_timestamp(ts: str) -> None:
    assert reason_of(headers(ts=ts)) == "bad_timestamp"


@pytest.mark.parametrize("offset", [-301, 301, -86_400, 86_400])
def test_correctly_signed_stale_timestamp_past_and_future(offset: int) -> None:
    ts = str(int(MADE_UP_TS) + offset)
    assert reason_of(headers(ts=ts, sig=sig_for(MADE_UP_SECRET, ts=ts))) == "stale_timestamp"


def test_timestamp_at_tolerance_edges_is_accepted() -> None:
    for offset in (-300, 300):
        ts = str(int(MADE_UP_TS) + offset)
        ADAPTER.verify_callback(
            account(), headers(ts=ts, sig=sig_for(MADE_UP_SECRET, ts=ts)), BODY, NOW
        )


def test_configured_tolerance_applies() -> None:
    ts = str(int(MADE_UP_TS) - 30)
    hdrs = headers(ts=ts, sig=sig_for(MADE_UP_SECRET, ts=ts))
    assert reason_of(hdrs, acct=account(timestamp_tolerance_seconds=29)) == "stale_timestamp"
    ADAPTER.verify_callback(account(timestamp_tolerance_seconds=30), hdrs, BODY, NOW)


def test_absurdly_long_digit_timestamp_is_stale_not_a_crash() -> None:
    assert reason_of(headers(ts="9" * 5000)) == "stale_timestamp"


def test_milliseconds_timestamp_is_stale() -> None:
    ts = MADE_UP_TS + "000"
    assert reason_of(headers(ts=ts, sig=sig_for(MADE_UP_SECRET, ts=ts))) == "stale_timestamp"


@pytest.mark.parametrize("index", [0, len(BODY) // 2, len(BODY) - 1])
def test_tampered_body_is_bad_signature(index: int) -> None:
    body = bytearray(BODY)
    body[index] ^= 0x01
    assert reason_of(headers(), bytes(body)) == "bad_signature"


def test_appended_newline_is_bad_signature() -> None:
    assert reason_of(headers(), BODY + b"\n") == "bad_signature"


def test_tampered_id_is_bad_signature() -> None:
    assert reason_of(headers(msg_id="msg_made_up_0002")) == "bad_signature"


def test_tampered_timestamp_within_tolerance_is_bad_signature() -> None:
    assert reason_of(headers(ts="1718100001")) == "bad_signature"


# --- verify_return ----------------------------------------------------------------------------


def good_params(**extra: str) -> dict[str, str]:
    return {"order_id": ORDER_ID, "status": "AUTHORIZED", "signature": RETURN_SIG, **extra}


def test_lowercase_return_signature_is_accepted() -> None:
    params = good_params(signature=RETURN_SIG.lower())
    assert ADAPTER.returns.verify_return(account(), params, NOW).order_id == ORDER_ID


def test_tampered_return_status_is_bad_signature() -> None:
    assert return_reason(good_params(status="PROCESSED")) == "bad_signature"


def test_tampered_return_order_id_is_bad_signature() -> None:
    assert return_reason(good_params(order_id="v1-240611101010-aa-TeSt99")) == "bad_signature"


def test_added_return_field_is_bad_signature() -> None:
    assert return_reason(good_params(error_code="X")) == "bad_signature"


def test_added_empty_return_field_is_signed_too() -> None:
    assert return_reason(good_params(error_code="")) == "bad_signature"
    params = {"order_id": ORDER_ID, "status": "AUTHORIZED", "error_code": ""}
    params["signature"] = return_signature(params, HEX_KEY)
    assert ADAPTER.returns.verify_return(account(), params, NOW).provider_status == "AUTHORIZED"


def test_return_key_rotation_names_the_matching_key() -> None:
    acct = account(return_keys={"RET_OLD": OTHER_HEX_KEY, "RET_NEW": HEX_KEY})
    assert ADAPTER.returns.verify_return(acct, good_params(), NOW).secret_ref == "env:RET_NEW"


def test_lowercase_hex_key_is_the_same_key() -> None:
    acct = account(return_keys={"PLURAL_RET": HEX_KEY.lower()})
    assert ADAPTER.returns.verify_return(acct, good_params(), NOW).secret_ref == "env:PLURAL_RET"


@pytest.mark.parametrize("missing", ["signature", "order_id", "status"])
def test_missing_return_parameter(missing: str) -> None:
    params = good_params()
    del params[missing]
    assert return_reason(params) == "missing_parameter"


@pytest.mark.parametrize("empty", ["signature", "order_id", "status"])
def test_empty_return_parameter_is_missing(empty: str) -> None:
    assert return_reason(good_params(**{empty: ""})) == "missing_parameter"


def test_no_return_keys_is_return_not_configured() -> None:
    assert return_reason(good_params(), account(return_keys={})) == "return_not_configured"


def test_wrong_return_key_is_bad_signature() -> None:
    acct = account(return_keys={"PLURAL_RET": OTHER_HEX_KEY})
    assert return_reason(good_params(), acct) == "bad_signature"


@pytest.mark.parametrize(
    "signature", [RETURN_SIG[:-1], RETURN_SIG + "0", "é" * 64, " " + RETURN_SIG]
)
def test_malformed_return_signature_is_bad_signature(signature: str) -> None:
    assert return_reason(good_params(signature=signature)) == "bad_signature"


# --- account configuration --------------------------------------------------------------------


def validation_text(secrets: dict[str, str], return_keys: dict[str, str], **fields: object) -> str:
    with pytest.raises(ValidationError) as info:
        account(secrets, return_keys=return_keys, **fields)
    return "\n".join(e["msg"] + repr(e["loc"]) for e in info.value.errors(include_input=False))


def test_defaults() -> None:
    acct = account()
    assert acct.webhook_key_encoding == "base64"
    assert acct.timestamp_tolerance_seconds == 300
    assert acct.client_id is None
    assert account(return_keys={}).return_keys == []


@pytest.mark.parametrize("value", ["made-up-plural-webhook-secret", "abc", "whsec_not base64!"])
def test_secret_that_is_not_base64_is_a_config_error(value: str) -> None:
    text = validation_text({"PLURAL_WH": value}, {"PLURAL_RET": HEX_KEY})
    assert "secrets[0] (env:PLURAL_WH)" in text
    assert "webhook_key_encoding" in text
    assert value not in text


def test_whsec_secret_that_is_not_base64_fails_under_raw_too() -> None:
    text = validation_text(
        {"A": MADE_UP_SECRET, "B": "whsec_$$$$"}, {"R": HEX_KEY}, webhook_key_encoding="raw"
    )
    assert "secrets[1] (env:B)" in text
    assert "$$$$" not in text


def test_secret_decoding_to_nothing_is_a_config_error() -> None:
    assert "empty key" in validation_text({"PLURAL_WH": "whsec_"}, {"R": HEX_KEY})


def test_non_base64_secret_is_fine_under_raw() -> None:
    acct = account({"PLURAL_WH": "made-up-plural-webhook-secret"}, webhook_key_encoding="raw")
    assert acct.webhook_key_encoding == "raw"


@pytest.mark.parametrize("value", ["4D61Z0", "4D6", "4D 61", "0x4D61", "4D61\n"])
def test_return_key_not_hex_is_a_config_error(value: str) -> None:
    text = validation_text({"PLURAL_WH": MADE_UP_SECRET}, {"RET_A": HEX_KEY, "RET_B": value})
    assert "return_keys[1] (env:RET_B)" in text
    assert value not in text


def test_unknown_key_encoding_is_rejected() -> None:
    assert "webhook_key_encoding" in validation_text(
        {"PLURAL_WH": MADE_UP_SECRET}, {"R": HEX_KEY}, webhook_key_encoding="hex"
    )


def test_config_file_reports_bad_secret_and_bad_return_key_at_once(tmp_path: Path) -> None:
    path = tmp_path / "paysync.toml"
    path.write_text(
        '[accounts.plural.shop-in]\nsecrets = ["env:WH"]\nreturn_keys = ["env:RET"]\n',
        encoding="utf-8",
    )
    env = {"WH": "not base64 at all", "RET": "not hex"}
    with pytest.raises(ConfigError) as info:
        load_settings({"plural": PluralAccount}, path=path, env=env)
    text = "\n".join(info.value.problems)
    assert "accounts.plural.shop-in.webhook_key_encoding" in text
    assert "accounts.plural.shop-in.return_keys" in text
    for value in env.values():
        assert value not in text
