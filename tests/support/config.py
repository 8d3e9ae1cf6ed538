"""Test configuration files: one account per provider, named ``shop``, whose secrets come
from the environment (random per test, except where a test vector needs its own)."""

from __future__ import annotations

import base64
import secrets
import socket
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from paysync.settings import Settings, load_settings
from providers import REGISTRY, account_models
from tests.support.services import AMQP_URL

APP_ID = "202401010000000000000000000000001"
# The test vectors' invented secret (../shared/providers/ccpayment.md).
VECTOR_SECRET = "0123456789abcdef0123456789abcdef"
SECRET_ENV = "TEST_CCPAYMENT_SECRET"
OLD_SECRET_ENV = "TEST_CCPAYMENT_OLD_SECRET"
ACCOUNT = "shop"
HDFC_USERNAME = "paysync_hooks"
RETURN_SUCCESS = "https://shop.example/paid"
RETURN_FAILURE = "https://shop.example/failed"
# Environment variable → how to make a fresh secret for it.
PROVIDER_SECRETS: dict[str, Callable[[], str]] = {
    "TEST_PAYCORE_SECRET": lambda: "sk_live_" + secrets.token_hex(12),
    "TEST_PAYCORE_TEST_SECRET": lambda: "sk_test_" + secrets.token_hex(12),
    "TEST_HDFC_PASSWORD": lambda: secrets.token_hex(12),
    "TEST_HDFC_RESPONSE_KEY": lambda: secrets.token_hex(16).upper(),
    "TEST_PLURAL_SECRET": lambda: base64.b64encode(secrets.token_bytes(24)).decode(),
    "TEST_PLURAL_RETURN_KEY": lambda: secrets.token_hex(32).upper(),
    "TEST_PAYCORE_API_KEY": lambda: secrets.token_hex(12),
    "TEST_HDFC_API_KEY": lambda: secrets.token_hex(12).upper(),
    "TEST_PLURAL_CLIENT_SECRET": lambda: secrets.token_hex(12),
}
PROVIDER_ACCOUNTS = f"""
[accounts.paycore.{ACCOUNT}]
secrets = ["env:TEST_PAYCORE_SECRET"]
test_secrets = ["env:TEST_PAYCORE_TEST_SECRET"]
api_account_id = "coma_TESTACCOUNT"
api_key = "env:TEST_PAYCORE_API_KEY"

[accounts.hdfc.{ACCOUNT}]
webhook_username = "{HDFC_USERNAME}"
secrets = ["env:TEST_HDFC_PASSWORD"]
response_keys = ["env:TEST_HDFC_RESPONSE_KEY"]
return_success_url = "{RETURN_SUCCESS}"
return_failure_url = "{RETURN_FAILURE}?from=paysync"
api_key = "env:TEST_HDFC_API_KEY"
merchant_id = "shop_test"
payment_page_client_id = "hdfcmaster"

[accounts.plural.{ACCOUNT}]
secrets = ["env:TEST_PLURAL_SECRET"]
client_id = "client-test"
client_secret = "env:TEST_PLURAL_CLIENT_SECRET"
return_keys = ["env:TEST_PLURAL_RETURN_KEY"]
return_success_url = "{RETURN_SUCCESS}"
return_failure_url = "{RETURN_FAILURE}?from=paysync"
"""


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


@dataclass
class RunConfig:
    path: Path
    env: dict[str, str]
    port: int

    @property
    def settings(self) -> Settings:
        return load_settings(account_models(), path=self.path, env=self.env)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def secret(self) -> str:
        return self.env[SECRET_ENV]


def write_config(
    directory: Path,
    *,
    database_url: str,
    prefix: str,
    amqp_url: str = AMQP_URL,
    extra: str = "",
    secret: str | None = None,
    status_url: str | None = None,
    status_rate: float = 20.0,
    heartbeat_seconds: int = 5,
) -> RunConfig:
    """``status_url``: the simulated status APIs (simulator/status.py) every account asks."""
    port = free_port()
    directory.mkdir(parents=True, exist_ok=True)
    path = directory / "paysync.toml"
    path.write_text(
        f"""
database_url = "{database_url}"
amqp_url = "{amqp_url}"
log_level = "info"

[broker]
name_prefix = "{prefix}"
delivery_limit = 3
reconnect_seconds = 0.2
reconnect_max_seconds = 1.0
heartbeat_seconds = {heartbeat_seconds}

[ingest]
host = "127.0.0.1"
port = {port}
max_body_bytes = 4096
confirm_timeout_seconds = 2.0

[metrics]
# Processes without ingest serve /metrics on a free port of their own (logged).
port = 0

[worker]
prefetch = 16
retry_initial_seconds = 0.05
retry_max_seconds = 0.5
relay_poll_seconds = 0.5

[accounts.ccpayment.{ACCOUNT}]
app_id = "{APP_ID}"
secrets = ["env:{OLD_SECRET_ENV}", "env:{SECRET_ENV}"]
{PROVIDER_ACCOUNTS}
{_status_tables(status_url, status_rate)}
{extra}
""",
        encoding="utf-8",
    )
    env = {
        SECRET_ENV: secret or secrets.token_hex(16),
        OLD_SECRET_ENV: secrets.token_hex(16),
    } | {name: make() for name, make in PROVIDER_SECRETS.items()}
    return RunConfig(path=path, env=env, port=port)


def _status_tables(status_url: str | None, rate: float) -> str:
    if status_url is None:
        return ""
    return "".join(
        f"""
[accounts.{provider}.{ACCOUNT}.status_api]
base_url = "{status_url}/{provider}/{ACCOUNT}"
rate_per_second = {rate}
concurrency = 8
timeout_seconds = 2.0
max_attempts = 6
"""
        # Every registered provider: one without an account above fails to load, loudly.
        for provider in sorted(REGISTRY)
    )


# The /v1 API's bearer tokens: two, as during a rotation.
TOKEN_ENV = "TEST_API_TOKEN"
OLD_TOKEN_ENV = "TEST_API_OLD_TOKEN"
API_TABLE = f'[api]\ntokens = ["env:{OLD_TOKEN_ENV}", "env:{TOKEN_ENV}"]\n'


def with_tokens(config: RunConfig) -> RunConfig:
    config.env[TOKEN_ENV] = secrets.token_urlsafe(24)
    config.env[OLD_TOKEN_ENV] = secrets.token_urlsafe(24)
    return config
