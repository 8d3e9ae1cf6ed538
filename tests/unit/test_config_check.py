"""Configuration as operators meet it: ``paysync config check`` shows every account's own
fields (secrets by reference only), status-API credentials are required at load with
every missing one reported at once, and every account example in the README loads and
has a status-API client — an example that passes the check must also work."""

from __future__ import annotations

import base64
import json
import re
import secrets
from pathlib import Path

import pytest

from paysync import cli
from paysync.errors import ConfigError
from paysync.settings import load_settings
from providers import REGISTRY, account_models

README = Path(__file__).parents[2] / "README.md"

FULL = """
[accounts.ccpayment.c1]
app_id = "202401010000000000000000000000001"
secrets = ["env:C_SECRET"]
timestamp_tolerance_seconds = 300

[accounts.paycore.p1]
secrets = ["env:P_SECRET"]
test_secrets = ["env:P_TEST"]
api_account_id = "coma_P1"
api_key = "env:P_API"

[accounts.hdfc.h1]
webhook_username = "hooks"
secrets = ["env:H_PASSWORD"]
response_keys = ["env:H_RESPONSE"]
return_success_url = "https://shop.example/ok"
return_failure_url = "https://shop.example/ko"
api_key = "env:H_API"
merchant_id = "shop_h1"

[accounts.plural.l1]
secrets = ["env:L_WEBHOOK"]
webhook_key_encoding = "raw"
return_keys = ["env:L_RETURN"]
return_success_url = "https://shop.example/ok"
return_failure_url = "https://shop.example/ko"
client_id = "client-l1"
client_secret = "env:L_CLIENT"
"""


def fresh(name: str) -> str:
    """A value of the shape the variable ``name`` holds (hex keys, base64 secrets)."""
    if "RETURN" in name or "RESPONSE" in name:
        return secrets.token_hex(32).upper()
    if "PLURAL" in name and "WEBHOOK" in name:
        return base64.b64encode(secrets.token_bytes(24)).decode()
    return secrets.token_urlsafe(18)


def env_for(text: str) -> dict[str, str]:
    return {name: fresh(name) for name in re.findall(r'"env:([A-Z0-9_]+)"', text)}


@pytest.mark.usefixtures("restored_logging")
def test_config_check_prints_each_accounts_own_fields_and_no_secret(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    path = tmp_path / "paysync.toml"
    path.write_text(FULL, encoding="utf-8")
    env = env_for(FULL)
    for name, value in env.items():
        monkeypatch.setenv(name, value)
    assert cli.main(["--config", str(path), "config", "check"]) == 0
    out = capsys.readouterr().out
    accounts = json.loads(out)["accounts"]
    assert accounts["ccpayment"]["c1"]["app_id"] == "202401010000000000000000000000001"
    assert accounts["ccpayment"]["c1"]["timestamp_tolerance_seconds"] == 300
    assert accounts["paycore"]["p1"] | {"status_api": None} == {
        "secrets": ["env:P_SECRET"],
        "test_secrets": ["env:P_TEST"],
        "api_account_id": "coma_P1",
        "api_key": "env:P_API",
        "status_api": None,
    }
    hdfc = accounts["hdfc"]["h1"]
    assert (hdfc["webhook_username"], hdfc["merchant_id"], hdfc["api_key"]) == (
        "hooks",
        "shop_h1",
        "env:H_API",
    )
    assert hdfc["response_keys"] == ["env:H_RESPONSE"]
    assert hdfc["return_success_url"] == "https://shop.example/ok"
    plural = accounts["plural"]["l1"]
    assert (plural["webhook_key_encoding"], plural["client_id"], plural["client_secret"]) == (
        "raw",
        "client-l1",
        "env:L_CLIENT",
    )
    assert plural["return_keys"] == ["env:L_RETURN"]
    assert plural["return_failure_url"] == "https://shop.example/ko"
    for value in env.values():
        assert value not in out


def test_missing_status_api_credentials_are_all_reported_at_load(tmp_path: Path) -> None:
    text = re.sub(
        r"^(api_account_id|api_key|merchant_id|client_id|client_secret) = .*\n",
        "",
        FULL,
        flags=re.M,
    )
    path = tmp_path / "paysync.toml"
    path.write_text(text, encoding="utf-8")
    with pytest.raises(ConfigError) as info:
        load_settings(account_models(), path=path, env=env_for(text))
    assert sorted(info.value.problems) == sorted(
        f"accounts.{key}: required by the status API"
        for key in (
            "paycore.p1.api_account_id",
            "paycore.p1.api_key",
            "hdfc.h1.api_key",
            "hdfc.h1.merchant_id",
            "plural.l1.client_id",
            "plural.l1.client_secret",
        )
    )


@pytest.mark.parametrize("field", ["merchant_id", "client_id"])
def test_an_empty_status_api_identifier_is_refused(tmp_path: Path, field: str) -> None:
    text = re.sub(rf"^{field} = .*$", f'{field} = ""', FULL, flags=re.M)
    path = tmp_path / "paysync.toml"
    path.write_text(text, encoding="utf-8")
    with pytest.raises(ConfigError) as info:
        load_settings(account_models(), path=path, env=env_for(text))
    assert [p.split(":")[0].rsplit(".", 1)[1] for p in info.value.problems] == [field]


def readme_account_examples() -> str:
    blocks = re.findall(r"```toml\n(.*?)```", README.read_text(encoding="utf-8"), flags=re.S)
    examples = [b for b in blocks if b.lstrip().startswith("[accounts.")]
    assert len(examples) >= 4
    return "\n".join(examples)


def test_every_readme_account_example_loads_and_can_be_reconciled(tmp_path: Path) -> None:
    text = readme_account_examples()
    path = tmp_path / "paysync.toml"
    path.write_text(text, encoding="utf-8")
    settings = load_settings(account_models(), path=path, env=env_for(text))
    assert sorted(settings.accounts) == sorted(REGISTRY)
    for provider, accounts in settings.accounts.items():
        registered = REGISTRY[provider]
        base_url = registered.status_base_url
        assert base_url is not None
        for name, account in accounts.items():
            # Raises ConfigError if unusable.
            assert registered.status_client(name, account, base_url) is not None
