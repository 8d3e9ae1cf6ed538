"""PayCore ``X-Signature``: the provider doc's test vectors and PayCoreAdapter.verify_callback."""

from __future__ import annotations

import base64
import hashlib
import json
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
from multidict import CIMultiDict

from paysync.errors import AuthenticationError
from paysync.settings import Secret
from providers.paycore.adapter import PayCoreAdapter
from providers.paycore.scheme import HEADER_SIGNATURE, PayCoreAccount, sign
from simulator.paycore import signature

FIXTURES = Path(__file__).parents[1] / "fixtures" / "paycore"
VECTORS: list[dict[str, Any]] = json.loads((FIXTURES / "vectors.json").read_text())
BODY = (FIXTURES / "vector_body.json").read_bytes()
TEST_KEY = "sk_test_EXAMPLEsecretKey0001"
LIVE_KEY = "sk_live_EXAMPLEsecretKey0001"
VALID = "yjg0QDGlY8I7a5Re3tS+EN1kzCk="
LIVE_SIGNED = "X8EOKQvARHMDyANcpfz2i/nlSJk="
NOW = datetime.fromtimestamp(1700000400, tz=UTC)
ADAPTER = PayCoreAdapter()


def account(live: list[str], test: list[str] | None = None) -> PayCoreAccount:
    """An account built the way settings builds it: references resolved from env."""
    env = {f"LIVE_{i}": value for i, value in enumerate(live)}
    env |= {f"TEST_{i}": value for i, value in enumerate(test or [])}
    return PayCoreAccount.model_validate(
        {
            "secrets": [f"env:LIVE_{i}" for i in range(len(live))],
            "test_secrets": [f"env:TEST_{i}" for i in range(len(test or []))],
        },
        context={"env": env},
    )


def headers(value: str | None = VALID) -> CIMultiDict[str]:
    hdrs: CIMultiDict[str] = CIMultiDict({"Content-Type": "application/json"})
    if value is not None:
        hdrs[HEADER_SIGNATURE] = value
    return hdrs


def reason_of(acct: PayCoreAccount, hdrs: CIMultiDict[str], body: bytes = BODY) -> str:
    with pytest.raises(AuthenticationError) as info:
        ADAPTER.verify_callback(acct, hdrs, body, NOW)
    return info.value.reason


def vector_account(vector: dict[str, Any]) -> PayCoreAccount:
    spec = vector["inputs"]["account"]
    return account(spec["secrets"], spec["test_secrets"])


# --- the vectors themselves ---------------------------------------------------------------


def test_fixture_has_every_vector_of_the_doc() -> None:
    assert len(BODY) == 313
    assert not BODY.endswith(b"\n")
    assert len(VECTORS) == 5
    assert {v["must_match"] for v in VECTORS} == {True, False}


@pytest.mark.parametrize("vector", VECTORS, ids=[v["name"] for v in VECTORS])
def test_vector_value(vector: dict[str, Any]) -> None:
    inputs = vector["inputs"]
    body = (FIXTURES / inputs["body_file"]).read_bytes()
    key = inputs["signed_with"].encode()
    digest = hashlib.sha1(key + body + key)  # noqa: S324 (PayCore's scheme)
    if inputs["encoding"] == "base64":
        assert base64.b64encode(digest.digest()).decode() == vector["expected"]
        assert sign(inputs["signed_with"], body) == vector["expected"]
        assert signature(inputs["signed_with"], body) == vector["expected"]
    else:
        assert digest.hexdigest() == vector["expected"]


@pytest.mark.parametrize("vector", VECTORS, ids=[v["name"] for v in VECTORS])
def test_vector_verification(vector: dict[str, Any]) -> None:
    inputs = vector["inputs"]
    body = (FIXTURES / inputs["body_file"]).read_bytes()
    acct = vector_account(vector)
    hdrs = headers(inputs["x_signature"])
    if vector["must_match"]:
        verified = ADAPTER.verify_callback(acct, hdrs, body, NOW)
        assert verified.variant == vector["variant"]
        matched = acct.test_secrets if verified.variant == "test" else acct.secrets
        assert verified.secret_ref in [s.ref for s in matched]
        assert verified.http_headers == {}
        assert verified.replay_key is None
    else:
        assert reason_of(acct, hdrs, body) == "bad_signature"


def test_extra_space_body_has_its_own_valid_signature() -> None:
    extra = (FIXTURES / "vector_body_extra_space.json").read_bytes()
    assert extra == BODY.replace(b'"status":', b'"status": ', 1)
    verified = ADAPTER.verify_callback(
        account([LIVE_KEY], [TEST_KEY]), headers("Pzn5giY+r0WDPHjs/ak6IeGuNxs="), extra, NOW
    )
    assert verified.variant == "test"


def test_live_signature_fails_then_passes_once_the_live_key_is_configured() -> None:
    without = account(["sk_live_UNRELATEDkey000000099"], [TEST_KEY])
    assert reason_of(without, headers(LIVE_SIGNED)) == "bad_signature"
    with_live = account(["sk_live_UNRELATEDkey000000099", LIVE_KEY], [TEST_KEY])
    verified = ADAPTER.verify_callback(with_live, headers(LIVE_SIGNED), BODY, NOW)
    assert (verified.secret_ref, verified.variant) == ("env:LIVE_1", "live")


def test_hex_digest_is_rejected_in_either_case() -> None:
    hex_digest = "ca38344031a563c23b6b945eded4be10dd64cc29"
    acct = account([LIVE_KEY], [TEST_KEY])
    assert reason_of(acct, headers(hex_digest)) == "bad_signature"
    assert reason_of(acct, headers(hex_digest.upper())) == "bad_signature"


def test_signature_is_standard_padded_base64_of_20_bytes() -> None:
    value = sign(TEST_KEY, BODY)
    assert len(value) == 28
    assert value.endswith("=")
    assert len(base64.b64decode(value, validate=True)) == 20


# --- verify_callback ----------------------------------------------------------------------


def test_valid_vector_names_test_secret() -> None:
    verified = ADAPTER.verify_callback(account([LIVE_KEY], [TEST_KEY]), headers(), BODY, NOW)
    assert (verified.secret_ref, verified.variant) == ("env:TEST_0", "test")


def test_header_name_is_case_insensitive() -> None:
    hdrs: CIMultiDict[str] = CIMultiDict({"x-signature": VALID})
    verified = ADAPTER.verify_callback(account([LIVE_KEY], [TEST_KEY]), hdrs, BODY, NOW)
    assert verified.variant == "test"


def test_surrounding_whitespace_in_header_is_ignored() -> None:
    verified = ADAPTER.verify_callback(
        account([LIVE_KEY], [TEST_KEY]), headers(f" {VALID} "), BODY, NOW
    )
    assert verified.variant == "test"


@pytest.mark.parametrize("value", [None, "", "   "], ids=["absent", "empty", "blank"])
def test_missing_or_empty_header_is_missing_header(value: str | None) -> None:
    assert reason_of(account([LIVE_KEY], [TEST_KEY]), headers(value)) == "missing_header"


@pytest.mark.parametrize(
    "value",
    [
        VALID.rstrip("="),  # unpadded
        VALID.replace("+", "-"),  # URL-safe alphabet
        VALID.lower(),
        VALID + "=",
        "yjg0QDGlY8I7a5Re3tS+EN1kzCk=\u00e9",
        "\u0443jg0QDGlY8I7a5Re3tS+EN1kzCk=",  # Cyrillic u in place of y
    ],
    ids=["unpadded", "urlsafe", "lowercase", "extra-pad", "non-ascii-suffix", "homoglyph"],
)
def test_other_encodings_of_the_digest_are_rejected(value: str) -> None:
    assert reason_of(account([LIVE_KEY], [TEST_KEY]), headers(value)) == "bad_signature"


@pytest.mark.parametrize("index", [0, len(BODY) // 2, len(BODY) - 1])
def test_one_changed_body_byte_is_bad_signature(index: int) -> None:
    body = bytearray(BODY)
    body[index] ^= 0x01
    assert reason_of(account([LIVE_KEY], [TEST_KEY]), headers(), bytes(body)) == "bad_signature"


def test_trailing_newline_is_bad_signature() -> None:
    assert reason_of(account([LIVE_KEY], [TEST_KEY]), headers(), BODY + b"\n") == "bad_signature"


def test_hmac_sha1_is_not_the_scheme() -> None:
    import hmac

    forged = base64.b64encode(hmac.new(TEST_KEY.encode(), BODY, "sha1").digest()).decode()
    assert reason_of(account([LIVE_KEY], [TEST_KEY]), headers(forged)) == "bad_signature"


def test_test_signature_without_test_secrets_is_bad_signature() -> None:
    assert reason_of(account([LIVE_KEY]), headers()) == "bad_signature"


def test_rotation_second_live_secret_matches_and_is_named() -> None:
    acct = account(["sk_live_OLDkey", LIVE_KEY])
    verified = ADAPTER.verify_callback(acct, headers(LIVE_SIGNED), BODY, NOW)
    assert (verified.secret_ref, verified.variant) == ("env:LIVE_1", "live")


def test_rotation_second_test_secret_matches_and_is_named() -> None:
    acct = account([LIVE_KEY], ["sk_test_OLDkey", TEST_KEY])
    verified = ADAPTER.verify_callback(acct, headers(), BODY, NOW)
    assert (verified.secret_ref, verified.variant) == ("env:TEST_1", "test")


# --- which mode's secrets are tried first (design §8) ---------------------------------------


class RecordingSecret(Secret):
    """A Secret that notes when its value is read, to observe the order of attempts."""

    __slots__ = ("log",)

    def __init__(self, ref: str, value: str, log: list[str]) -> None:
        super().__init__(ref, value)
        self.log = log

    def reveal(self) -> str:
        self.log.append(self.ref)
        return super().reveal()


def recording_account(live: str, test: str, log: list[str]) -> PayCoreAccount:
    return PayCoreAccount.model_validate(
        {
            "secrets": [RecordingSecret("env:LIVE", live, log)],
            "test_secrets": [RecordingSecret("env:TEST", test, log)],
        }
    )


def body_with_mode(test_mode: object) -> bytes:
    return BODY.replace(b'"test_mode":true', b'"test_mode":' + json.dumps(test_mode).encode())


@pytest.mark.parametrize(
    ("body", "first"),
    [
        (BODY, "env:TEST"),
        (body_with_mode(False), "env:LIVE"),
        (body_with_mode("true"), "env:LIVE"),
        (body_with_mode(None), "env:LIVE"),
        (BODY.replace(b',"test_mode":true', b""), "env:LIVE"),
        (b"not json", "env:LIVE"),
        (b"[1,2]", "env:LIVE"),
        (b'{"data":[]}', "env:LIVE"),
        (b"\xff\xfe", "env:LIVE"),
    ],
    ids=[
        "test-mode",
        "live-mode",
        "string-true",
        "null",
        "absent",
        "not-json",
        "array",
        "data-list",
        "not-utf8",
    ],
)
def test_the_claimed_mode_is_tried_first_and_then_the_other(body: bytes, first: str) -> None:
    log: list[str] = []
    acct = recording_account("sk_live_X", "sk_test_X", log)
    assert reason_of(acct, headers(), body) == "bad_signature"
    assert log[0] == first
    assert sorted(log) == ["env:LIVE", "env:TEST"]


def test_live_claim_signed_with_test_key_matches_on_second_attempt() -> None:
    # Design §8 tries the other mode's key; the variant records which one matched.
    body = body_with_mode(False)
    log: list[str] = []
    acct = recording_account(LIVE_KEY, TEST_KEY, log)
    verified = ADAPTER.verify_callback(acct, headers(sign(TEST_KEY, body)), body, NOW)
    assert (verified.secret_ref, verified.variant) == ("env:TEST", "test")
    assert log == ["env:LIVE", "env:TEST"]


def test_matching_first_mode_stops_there() -> None:
    log: list[str] = []
    acct = recording_account(LIVE_KEY, TEST_KEY, log)
    ADAPTER.verify_callback(acct, headers(), BODY, NOW)
    assert log == ["env:TEST"]


# --- the account and the acknowledgement ----------------------------------------------------


def test_account_requires_a_live_secret_and_defaults_to_no_test_secrets() -> None:
    assert account([LIVE_KEY]).test_secrets == []
    with pytest.raises(ValueError, match="secrets"):
        PayCoreAccount.model_validate({"secrets": [], "test_secrets": []})


def test_all_secrets_include_test_secrets_so_logs_are_scrubbed_of_them() -> None:
    acct = account([LIVE_KEY], [TEST_KEY])
    assert {s.reveal() for s in acct.all_secrets()} == {LIVE_KEY, TEST_KEY}


def test_secrets_never_in_errors_or_repr() -> None:
    acct = account([LIVE_KEY], [TEST_KEY])
    for value in (VALID, "", "0" * 28):
        with pytest.raises(AuthenticationError) as info:
            ADAPTER.verify_callback(acct, headers(value or None), BODY + b" ", NOW)
        error = info.value
        for text in (str(error), repr(error), error.detail, repr(error.args)):
            assert LIVE_KEY not in text
            assert TEST_KEY not in text
    assert LIVE_KEY not in repr(acct)
    assert TEST_KEY not in repr(acct)


def test_ack_is_exactly_200_with_empty_body() -> None:
    ack = ADAPTER.callback_ack
    assert (ack.status, ack.body, ack.content_type) == (200, b"", "text/plain")
    assert ADAPTER.returns is None
    assert "application/json" in ADAPTER.callback_media_types
