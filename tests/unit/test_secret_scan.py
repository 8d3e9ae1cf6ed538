"""The secret scan every end-to-end run ends with can fail: it finds each kind of leak."""

from __future__ import annotations

import base64
from pathlib import Path

import pytest

from tests.support.config import HDFC_USERNAME, RunConfig, write_config
from tests.support.process import assert_no_secret_in


@pytest.fixture
def run_config(tmp_path: Path) -> RunConfig:
    return write_config(tmp_path, database_url="postgresql://postgres@127.0.0.1/x", prefix="t")


def test_clean_output_passes(run_config: RunConfig) -> None:
    assert_no_secret_in('{"event":"callback_accepted","verified_by":"env:X"}', run_config)


@pytest.mark.parametrize(
    "leak",
    [
        lambda env: env["TEST_PLURAL_SECRET"],
        lambda env: base64.b64encode(env["TEST_PAYCORE_API_KEY"].encode()).decode(),
        lambda env: base64.b64encode(
            f"{HDFC_USERNAME}:{env['TEST_HDFC_PASSWORD']}".encode()
        ).decode(),
    ],
    ids=["plain", "base64", "basic credentials"],
)
def test_a_leak_in_any_form_fails(run_config: RunConfig, leak: object) -> None:
    assert callable(leak)
    text = f'{{"event":"oops","header":"{leak(run_config.env)}"}}'
    with pytest.raises(AssertionError, match="secrets in the log output"):
        assert_no_secret_in(text, run_config)
