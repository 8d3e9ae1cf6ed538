"""HDFC SmartGateway return-URL signature (``validateHMAC_SHA256``) and API auth: the doc's
test vectors (tests/fixtures/hdfc/vectors.json) and HdfcReturns.verify_return."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from pathlib import Path
from typing import Any
from urllib.parse import quote, urlencode

import pytest

from paysync.errors import AuthenticationError
from providers.base import parse_form
from providers.hdfc.adapter import ADAPTER, HdfcReturns
from providers.hdfc.scheme import (
    RETURN_VARIANTS,
    HdfcAccount,
    api_authorization,
    received_signature,
    return_message,
    sign_return,
)
from schemas.status import Status

FIXTURES = Path(__file__).parents[1] / "fixtures" / "hdfc"
VECTORS: list[dict[str, Any]] = json.loads((FIXTURES / "vectors.json").read_text())
SIGNATURE_VECTORS = [v for v in VECTORS if v["kind"] == "return_signature"]
AUTH_VECTORS = [v for v in VECTORS if v["kind"] == "api_authorization"]

PUBLIC_KEY = "92206A0A4A75499C9B11206C2B3B9A53"
PUBLIC_PARAMS = {
    "order_id": "order_1727694028",
    "status": "AUTHORIZATION_FAILED",
    "status_id": "27",
    "myQP": "aGVsbG9Xb3JsZA==",
}
PUBLIC_PER_PAIR = "8Esx2nrz3KE059rdsTkffYKu6AXXk07KzBo3KOexl3I="
PUBLIC_JOINED_ONLY = "46VjdlU4nyITFmWH4Z7B+XmkuCaJvX4gbcElYlM1Nmk="
KEY = "MADEUP_RESPONSE_KEY_7f3a9c"
CHARGED = {"order_id": "ord_TEST_0001", "status": "CHARGED", "status_id": "21"}
CHARGED_SIGNATURE = "qE8nOgKkTXPRon5GYYC5LV3k+TMQ8keP0+o1cb71ZKs="
CART = {
    "order_id": "ord_TEST_0002",
    "status": "PENDING_VBV",
    "status_id": "23",
    "cart_ref": "cart 42/a+b",
}
CART_FORM = "loaAX3FuKEliZQM0N2VLu83ye/69SJwEJ5RW22EtSEo="
CART_RFC3986 = "xwA7RxVHRlkUqd6eIGMNsEPOoQNmgjLliilEReW/Ryw="
NOW = datetime(2025, 1, 15, 9, 41, 7, tzinfo=UTC)
RETURNS = HdfcReturns()


def account(keys: dict[str, str] | None = None) -> HdfcAccount:
    keys = {"HDFC_RK": KEY} if keys is None else keys
    env = {"HDFC_WH_PW": "webhook-password", **keys}
    return HdfcAccount.model_validate(
        {
            "webhook_username": "paysync",
            "secrets": ["env:HDFC_WH_PW"],
            "response_keys": [f"env:{name}" for name in keys],
        },
        context={"env": env},
    )


def signed(params: dict[str, str], signature: str) -> dict[str, str]:
    return {**params, "signature": signature, "signature_algorithm": "HMAC-SHA256"}


def reason_of(params: dict[str, str], acct: HdfcAccount | None = None) -> str:
    with pytest.raises(AuthenticationError) as info:
        RETURNS.verify_return(acct or account(), params, NOW)
    return info.value.reason


def test_adapter_exposes_the_return_scheme() -> None:
    assert isinstance(ADAPTER.returns, HdfcReturns)


# --- the vectors file ----------------------------------------------------------------------


def test_vectors_file_holds_every_doc_vector() -> None:
    names = {v["name"].split("_", 1)[0] for v in VECTORS}
    assert names == {"1", "2", "3", "4"}
    assert any(not v["must_match"] for v in VECTORS)


@pytest.mark.parametrize("vector", SIGNATURE_VECTORS, ids=lambda v: v["name"])
def test_signature_vector(vector: dict[str, Any]) -> None:
    inputs = vector["inputs"]
    computed = sign_return(inputs["params"], inputs["key"], inputs["variant"])
    assert (computed == vector["expected"]) is vector["must_match"]


@pytest.mark.parametrize("vector", SIGNATURE_VECTORS, ids=lambda v: v["name"])
def test_signature_vector_through_verify_return(vector: dict[str, Any]) -> None:
    """A must-match vector verifies with its own variant named; a must-not-match value
    either fails or is accepted under a different variant, never under the one tested."""
    inputs = vector["inputs"]
    acct = account({"RK": inputs["key"]})
    params = signed(inputs["params"], vector["expected"])
    if vector["must_match"]:
        verified = RETURNS.verify_return(acct, params, NOW)
        # Vector 2's values need no encoding: all variants agree and the first is named.
        assert verified.variant == inputs["variant"] or vector["name"].startswith("2_")
        assert verified.secret_ref == "env:RK"
    else:
        verified = RETURNS.verify_return(acct, params, NOW)
        assert verified.variant != inputs["variant"]


@pytest.mark.parametrize("vector", AUTH_VECTORS, ids=lambda v: v["name"])
def test_api_authorization_vector(vector: dict[str, Any]) -> None:
    computed = api_authorization(vector["inputs"]["api_key"])
    assert (computed == vector["expected"]) is vector["must_match"]


# --- vector 1: the public Java sample --------------------------------------------------------


def test_public_vector_per_pair() -> None:
    assert sign_return(PUBLIC_PARAMS, PUBLIC_KEY) == PUBLIC_PER_PAIR
    assert sign_return(PUBLIC_PARAMS, PUBLIC_KEY, "per_pair_rfc3986") == PUBLIC_PER_PAIR


def test_public_vector_joined_only_differs() -> None:
    assert sign_return(PUBLIC_PARAMS, PUBLIC_KEY, "joined_only") == PUBLIC_JOINED_ONLY
    assert PUBLIC_JOINED_ONLY != PUBLIC_PER_PAIR


def test_public_vector_messages() -> None:
    assert return_message(PUBLIC_PARAMS) == (
        "myQP%3DaGVsbG9Xb3JsZA%253D%253D%26order_id%3Dorder_1727694028"
        "%26status%3DAUTHORIZATION_FAILED%26status_id%3D27"
    )
    assert return_message(PUBLIC_PARAMS, "joined_only") == (
        "myQP%3DaGVsbG9Xb3JsZA%3D%3D%26order_id%3Dorder_1727694028"
        "%26status%3DAUTHORIZATION_FAILED%26status_id%3D27"
    )


def test_public_vector_verifies_per_pair() -> None:
    acct = account({"RK": PUBLIC_KEY})
    verified = RETURNS.verify_return(acct, signed(PUBLIC_PARAMS, PUBLIC_PER_PAIR), NOW)
    assert verified.variant == "per_pair_form"
    assert verified.order_id == "order_1727694028"
    assert verified.provider_status == "AUTHORIZATION_FAILED"
    assert verified.status is Status.FAILED


def test_public_vector_signed_joined_only_is_accepted_as_joined_only() -> None:
    acct = account({"RK": PUBLIC_KEY})
    verified = RETURNS.verify_return(acct, signed(PUBLIC_PARAMS, PUBLIC_JOINED_ONLY), NOW)
    assert verified.variant == "joined_only"
    assert verified.secret_ref == "env:RK"


# --- vector 2: made-up CHARGED, and the raw URL ---------------------------------------------


def test_charged_vector_pairs_message_and_signature() -> None:
    assert return_message(CHARGED) == "order_id%3Dord_TEST_0001%26status%3DCHARGED%26status_id%3D21"
    assert sign_return(CHARGED, KEY) == CHARGED_SIGNATURE


def test_charged_vector_all_variants_agree_on_plain_values() -> None:
    assert {sign_return(CHARGED, KEY, v) for v in RETURN_VARIANTS} == {CHARGED_SIGNATURE}


def test_doc_post_body_verifies_after_one_form_decoding() -> None:
    body = (FIXTURES / "return_post_body.txt").read_bytes()
    params = parse_form(body)
    assert params["signature"] == "qE8nOgKkTXPRon5GYYC5LV3k%2BTMQ8keP0%2Bo1cb71ZKs%3D"
    assert received_signature(params["signature"]) == CHARGED_SIGNATURE
    verified = RETURNS.verify_return(account(), params, NOW)
    assert verified.order_id == "ord_TEST_0001"
    assert verified.provider_status == "CHARGED"
    assert verified.status is Status.PAID
    assert verified.secret_ref == "env:HDFC_RK"
    assert verified.variant == "per_pair_form"


def test_raw_url_form_of_the_signature() -> None:
    raw = "qE8nOgKkTXPRon5GYYC5LV3k%252BTMQ8keP0%252Bo1cb71ZKs%253D"
    assert quote(quote(CHARGED_SIGNATURE, safe=""), safe="") == raw
    assert f"signature={raw}".encode() in (FIXTURES / "return_post_body.txt").read_bytes()


@pytest.mark.parametrize(
    "given",
    [
        CHARGED_SIGNATURE,  # already fully decoded
        "qE8nOgKkTXPRon5GYYC5LV3k%2BTMQ8keP0%2Bo1cb71ZKs%3D",  # as parse_form leaves it
        "qE8nOgKkTXPRon5GYYC5LV3k%252BTMQ8keP0%252Bo1cb71ZKs%253D",  # never decoded at all
        "qE8nOgKkTXPRon5GYYC5LV3k TMQ8keP0 o1cb71ZKs=",  # a singly-encoded "+" read as space
    ],
    ids=["plain", "once-encoded", "twice-encoded", "plus-as-space"],
)
def test_received_signature_forms_all_verify(given: str) -> None:
    assert received_signature(given) == CHARGED_SIGNATURE
    verified = RETURNS.verify_return(account(), signed(CHARGED, given), NOW)
    assert verified.order_id == "ord_TEST_0001"


def test_received_signature_decodes_at_most_twice() -> None:
    thrice = quote(quote(quote(CHARGED_SIGNATURE, safe=""), safe=""), safe="")
    assert received_signature(thrice) != CHARGED_SIGNATURE
    assert reason_of(signed(CHARGED, thrice)) == "bad_signature"


def test_signature_plus_survives_decoding() -> None:
    # A literal "+" in the base64 must survive (unquote, and spaces restored).
    assert received_signature("a+b%2Bc") == "a+b+c"


def test_get_query_with_signature_double_encoded_verifies() -> None:
    query = urlencode(signed(CHARGED, quote(CHARGED_SIGNATURE, safe="")))
    assert "%252B" in query
    verified = RETURNS.verify_return(account(), parse_form(query.encode()), NOW)
    assert verified.status is Status.PAID


# --- vector 3: a merchant parameter that needs encoding --------------------------------------


def test_cart_vector_both_styles() -> None:
    assert sign_return(CART, KEY, "per_pair_form") == CART_FORM
    assert sign_return(CART, KEY, "per_pair_rfc3986") == CART_RFC3986
    assert CART_FORM != CART_RFC3986


@pytest.mark.parametrize(
    ("signature", "variant"),
    [(CART_FORM, "per_pair_form"), (CART_RFC3986, "per_pair_rfc3986")],
)
def test_cart_vector_accepted_with_its_variant(signature: str, variant: str) -> None:
    verified = RETURNS.verify_return(account(), signed(CART, signature), NOW)
    assert verified.variant == variant
    assert verified.order_id == "ord_TEST_0002"
    assert verified.status is Status.PENDING


def test_cart_vector_through_a_real_query_string() -> None:
    # The browser brings cart_ref URL-encoded; parse_form decodes it once, as signed.
    query = urlencode(signed(CART, quote(CART_FORM, safe="")))
    params = parse_form(query.encode())
    assert params["cart_ref"] == "cart 42/a+b"
    verified = RETURNS.verify_return(account(), params, NOW)
    assert verified.variant == "per_pair_form"


def test_cart_vector_joined_only_value_is_accepted_as_joined_only() -> None:
    joined = sign_return(CART, KEY, "joined_only")
    assert joined not in (CART_FORM, CART_RFC3986)
    verified = RETURNS.verify_return(account(), signed(CART, joined), NOW)
    assert verified.variant == "joined_only"


# --- vector 4: API auth ----------------------------------------------------------------------


def test_api_authorization_documented_form() -> None:
    assert api_authorization("MADEUPAPIKEY123") == "Basic TUFERVVQQVBJS0VZMTIzOg=="


def test_api_authorization_is_not_the_node_kit_form() -> None:
    assert api_authorization("MADEUPAPIKEY123") != "Basic TUFERVVQQVBJS0VZMTIz"


# --- verify_return failures ------------------------------------------------------------------


@pytest.mark.parametrize(
    "change",
    [
        {"status": "AUTHORIZATION_FAILED"},
        {"order_id": "ord_TEST_0002"},
        {"status_id": "27"},
        {"extra": "1"},
    ],
    ids=["status", "order_id", "status_id", "added-param"],
)
def test_tampered_parameter_is_bad_signature(change: dict[str, str]) -> None:
    params = {**signed(CHARGED, CHARGED_SIGNATURE), **change}
    assert reason_of(params) == "bad_signature"


def test_removed_parameter_is_bad_signature() -> None:
    params = signed(CHARGED, CHARGED_SIGNATURE)
    del params["status_id"]
    assert reason_of(params) == "bad_signature"


def test_signature_algorithm_is_not_signed() -> None:
    params = {**signed(CHARGED, CHARGED_SIGNATURE), "signature_algorithm": "anything"}
    assert RETURNS.verify_return(account(), params, NOW).order_id == "ord_TEST_0001"


@pytest.mark.parametrize("index", [0, 20, 43])
def test_changed_signature_char_is_bad_signature(index: int) -> None:
    chars = list(CHARGED_SIGNATURE)
    chars[index] = "A" if chars[index] != "A" else "B"
    assert reason_of(signed(CHARGED, "".join(chars))) == "bad_signature"


@pytest.mark.parametrize("given", ["", "é", "\x00", "%ZZ", "%C3%28"])
def test_odd_signatures_fail_cleanly(given: str) -> None:
    expected = "missing_parameter" if not given else "bad_signature"
    assert reason_of(signed(CHARGED, given)) == expected


def test_wrong_key_is_bad_signature() -> None:
    assert reason_of(signed(CHARGED, CHARGED_SIGNATURE), account({"RK": "other"})) == (
        "bad_signature"
    )


def test_rotation_second_response_key_matches() -> None:
    acct = account({"RK_OLD": "an-old-response-key", "RK_NEW": KEY})
    verified = RETURNS.verify_return(acct, signed(CHARGED, CHARGED_SIGNATURE), NOW)
    assert verified.secret_ref == "env:RK_NEW"


def test_rotation_first_response_key_matches() -> None:
    acct = account({"RK_CUR": KEY, "RK_NEXT": "a-next-response-key"})
    verified = RETURNS.verify_return(acct, signed(CHARGED, CHARGED_SIGNATURE), NOW)
    assert verified.secret_ref == "env:RK_CUR"


@pytest.mark.parametrize("missing", ["signature", "order_id", "status"])
def test_missing_parameter(missing: str) -> None:
    params = signed(CHARGED, CHARGED_SIGNATURE)
    del params[missing]
    assert reason_of(params) == "missing_parameter"


@pytest.mark.parametrize("empty", ["signature", "order_id", "status"])
def test_empty_parameter_is_missing(empty: str) -> None:
    params = {**signed(CHARGED, CHARGED_SIGNATURE), empty: ""}
    assert reason_of(params) == "missing_parameter"


def test_camel_case_order_id_fallback() -> None:
    params = {"orderId": "ord_TEST_0001", "status": "CHARGED", "status_id": "21"}
    verified = RETURNS.verify_return(account(), signed(params, sign_return(params, KEY)), NOW)
    assert verified.order_id == "ord_TEST_0001"


def test_no_response_keys_is_return_not_configured() -> None:
    acct = account({})
    assert acct.response_keys == []
    assert reason_of(signed(CHARGED, CHARGED_SIGNATURE), acct) == "return_not_configured"


def test_unknown_status_verifies_without_canonical_status() -> None:
    params = {"order_id": "ord_TEST_0003", "status": "PARTIAL_CHARGED"}
    verified = RETURNS.verify_return(account(), signed(params, sign_return(params, KEY)), NOW)
    assert verified.provider_status == "PARTIAL_CHARGED"
    assert verified.status is None


def test_response_key_never_in_error_text() -> None:
    with pytest.raises(AuthenticationError) as info:
        RETURNS.verify_return(account(), signed(CHARGED, "x" * 44), NOW)
    for text in (str(info.value), repr(info.value), info.value.detail):
        assert KEY not in text
    assert KEY not in repr(account())
