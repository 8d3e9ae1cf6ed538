"""load_settings: TOML file + explicit env dict, every problem reported at once, secrets safe."""

from __future__ import annotations

from pathlib import Path

import pytest

from paysync.errors import ConfigError
from paysync.settings import Secret, Settings, load_settings
from providers import account_models
from providers.ccpayment.scheme import CCPaymentAccount

SECRET_VALUE = "s3cr3t-0123456789abcdef"
INLINE_SECRET = "pasted-inline-secret-value-9f8e7d"

SHOP = """
[accounts.ccpayment.shop]
app_id = "202401010000000000000000000000001"
secrets = ["env:SHOP_SECRET"]
"""


def write(tmp_path: Path, text: str, name: str = "paysync.toml") -> Path:
    path = tmp_path / name
    path.write_text(text, encoding="utf-8")
    return path


def load(path: Path, env: dict[str, str] | None = None) -> Settings:
    return load_settings(account_models(), path=path, env=env or {})


def problems_of(path: Path, env: dict[str, str] | None = None) -> ConfigError:
    with pytest.raises(ConfigError) as info:
        load(path, env)
    return info.value


def keyed(error: ConfigError, key: str) -> list[str]:
    """Problems whose line starts with ``key`` (followed by ':' or ' (from')."""
    return [p for p in error.problems if p.startswith((f"{key}:", f"{key} ("))]


def test_empty_file_gives_defaults(tmp_path: Path) -> None:
    settings = load(write(tmp_path, ""))
    assert settings == Settings()
    assert settings.database_url == "postgresql://postgres@127.0.0.1:5432/paysync"
    assert settings.amqp_url == ["amqp://guest:guest@127.0.0.1:5672/"]
    assert settings.log_level == "info"
    assert settings.ingest.port == 8080
    assert settings.ingest.host == "0.0.0.0"
    assert settings.worker.prefetch == 128
    assert settings.worker.batch_size == 32
    assert settings.worker.batch_linger_ms == 5.0
    assert settings.broker.delivery_limit == 5
    assert settings.accounts == {}
    assert settings.secrets() == []


def test_file_values_are_read(tmp_path: Path) -> None:
    path = write(
        tmp_path,
        'log_level = "debug"\n[ingest]\nport = 9100\nhost = "127.0.0.1"\n[worker]\nprefetch = 4\n',
    )
    settings = load(path)
    assert settings.log_level == "debug"
    assert settings.ingest.port == 9100
    assert settings.ingest.host == "127.0.0.1"
    assert settings.worker.prefetch == 4
    assert settings.worker.relay_batch_size == 500


def test_env_overrides_file(tmp_path: Path) -> None:
    path = write(tmp_path, 'database_url = "postgresql://file/db"\n[ingest]\nport = 8081\n')
    settings = load(
        path,
        {
            "PAYSYNC_DATABASE_URL": "postgresql://env/db",
            "PAYSYNC_INGEST__PORT": "9000",
            "PAYSYNC_WORKER__RETRY_MAX_SECONDS": "2.5",
            "PAYSYNC_BROKER__NAME_PREFIX": "t1.",
        },
    )
    assert settings.database_url == "postgresql://env/db"
    assert settings.ingest.port == 9000
    assert isinstance(settings.ingest.port, int)
    assert settings.worker.retry_max_seconds == 2.5
    assert settings.broker.name_prefix == "t1."


def test_env_creates_a_missing_section(tmp_path: Path) -> None:
    settings = load(write(tmp_path, ""), {"PAYSYNC_INGEST__PORT": "9000"})
    assert settings.ingest.port == 9000
    assert settings.ingest.max_body_bytes == 64 * 1024


def test_unrelated_env_vars_are_ignored(tmp_path: Path) -> None:
    settings = load(write(tmp_path, ""), {"HOME": "/root", "DATABASE_URL": "x", "paysync_x": "1"})
    assert settings == Settings()


def test_config_path_from_env(tmp_path: Path) -> None:
    path = write(tmp_path, "[ingest]\nport = 9200\n", name="other.toml")
    settings = load_settings(account_models(), env={"PAYSYNC_CONFIG": str(path)})
    assert settings.ingest.port == 9200


def test_process_environment_is_not_read_when_env_is_given(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("PAYSYNC_INGEST__PORT", "9999")
    monkeypatch.setenv("SHOP_SECRET", SECRET_VALUE)
    error = problems_of(write(tmp_path, SHOP), {})
    assert keyed(error, "accounts.ccpayment.shop.secrets.0")
    settings = load(write(tmp_path, ""), {})
    assert settings.ingest.port == 8080


def test_accounts_are_built_with_provider_models(tmp_path: Path) -> None:
    settings = load(write(tmp_path, SHOP), {"SHOP_SECRET": SECRET_VALUE})
    shop = settings.account("ccpayment", "shop")
    assert isinstance(shop, CCPaymentAccount)
    assert shop.app_id == "202401010000000000000000000000001"
    assert shop.timestamp_tolerance_seconds == 600
    [secret] = shop.secrets
    assert isinstance(secret, Secret)
    assert secret.ref == "env:SHOP_SECRET"
    assert secret.reveal() == SECRET_VALUE
    assert settings.account("ccpayment", "nope") is None
    assert settings.account("nope", "shop") is None
    assert [s.reveal() for s in settings.secrets()] == [SECRET_VALUE]
    # The default broker URL carries the password "guest"; it is scrubbed from logs too.
    assert settings.secret_values() == [SECRET_VALUE, "guest"]


def test_secret_repr_shows_only_the_reference(tmp_path: Path) -> None:
    settings = load(write(tmp_path, SHOP), {"SHOP_SECRET": SECRET_VALUE})
    for text in (repr(settings), str(settings), repr(settings.secrets()[0])):
        assert SECRET_VALUE not in text
    assert "env:SHOP_SECRET" in repr(settings.secrets()[0])


def test_secret_values_include_url_passwords(tmp_path: Path) -> None:
    settings = load(
        write(tmp_path, SHOP),
        {
            "SHOP_SECRET": SECRET_VALUE,
            "PAYSYNC_DATABASE_URL": "postgresql://app:dbpass@db/paysync",
            "PAYSYNC_AMQP_URL": "amqp://app:mqpass@mq/",
        },
    )
    assert sorted(settings.secret_values()) == sorted([SECRET_VALUE, "dbpass", "mqpass"])


def test_file_secret_is_read_and_trailing_newline_stripped(tmp_path: Path) -> None:
    secret_file = tmp_path / "shop.secret"
    secret_file.write_bytes(SECRET_VALUE.encode() + b"\n")
    crlf_file = tmp_path / "crlf.secret"
    crlf_file.write_bytes(b"second-secret\r\n")
    path = write(
        tmp_path,
        f"""
[accounts.ccpayment.shop]
app_id = "a"
secrets = ["file:{secret_file}", "file:{crlf_file}"]
""",
    )
    settings = load(path)
    shop = settings.account("ccpayment", "shop")
    assert shop is not None
    assert [s.reveal() for s in shop.secrets] == [SECRET_VALUE, "second-secret"]
    assert [s.ref for s in shop.secrets] == [f"file:{secret_file}", f"file:{crlf_file}"]


def test_unreadable_file_secret_is_reported(tmp_path: Path) -> None:
    missing = tmp_path / "absent.secret"
    path = write(
        tmp_path, f'[accounts.ccpayment.shop]\napp_id = "a"\nsecrets = ["file:{missing}"]\n'
    )
    error = problems_of(path)
    assert keyed(error, "accounts.ccpayment.shop.secrets.0")


def test_empty_secret_is_reported(tmp_path: Path) -> None:
    error = problems_of(write(tmp_path, SHOP), {"SHOP_SECRET": ""})
    assert keyed(error, "accounts.ccpayment.shop.secrets.0")


def test_account_needs_at_least_one_secret(tmp_path: Path) -> None:
    path = write(tmp_path, '[accounts.ccpayment.shop]\napp_id = "a"\nsecrets = []\n')
    assert keyed(problems_of(path), "accounts.ccpayment.shop.secrets")


def test_every_problem_reported_at_once(tmp_path: Path) -> None:
    path = write(
        tmp_path,
        f"""
nope = 1

[ingest]
port = 8080

[accounts.ccpayment.shop]
app_id = "202401010000000000000000000000001"
secrets = ["{INLINE_SECRET}", "env:NOT_SET_ANYWHERE"]
timestamp_tolerance_seconds = 0

[accounts.paypal.main]
client_id = "x"
""",
    )
    error = problems_of(
        path,
        {"PAYSYNC_INGEST__PORT": "99999", "PAYSYNC_NOPE": "1", "PAYSYNC_WORKER__PREFETCH": "x"},
    )
    expected_keys = [
        "ingest.port",
        "nope",
        "PAYSYNC_NOPE",
        "accounts.ccpayment.shop.secrets.0",
        "accounts.ccpayment.shop.secrets.1",
        "accounts.ccpayment.shop.timestamp_tolerance_seconds",
        "accounts.paypal",
        "worker.prefetch",
    ]
    for key in expected_keys:
        assert keyed(error, key), f"{key} not reported in {error.problems}"
    assert len(error.problems) == len(expected_keys)
    text = str(error)
    for problem in error.problems:
        assert problem in text
    assert "NOT_SET_ANYWHERE" in "".join(keyed(error, "accounts.ccpayment.shop.secrets.1"))


def test_env_sourced_bad_value_names_its_variable(tmp_path: Path) -> None:
    error = problems_of(write(tmp_path, ""), {"PAYSYNC_INGEST__PORT": "not-a-port"})
    [line] = keyed(error, "ingest.port")
    assert "(from PAYSYNC_INGEST__PORT)" in line
    assert "(from PAYSYNC_INGEST__PORT)" in str(error)


def test_file_sourced_bad_value_does_not_blame_env(tmp_path: Path) -> None:
    error = problems_of(write(tmp_path, "[ingest]\nport = -1\n"), {})
    [line] = keyed(error, "ingest.port")
    assert "(from" not in line


def test_unknown_env_setting_in_a_section(tmp_path: Path) -> None:
    error = problems_of(write(tmp_path, ""), {"PAYSYNC_INGEST__NOPE": "1"})
    [line] = keyed(error, "ingest.nope")
    assert "(from PAYSYNC_INGEST__NOPE)" in line


@pytest.mark.parametrize(
    "name", ["PAYSYNC_NOPE", "PAYSYNC_ACCOUNTS", "PAYSYNC_ACCOUNTS__CCPAYMENT", "PAYSYNC_X__Y"]
)
def test_unknown_env_variable_is_reported(tmp_path: Path, name: str) -> None:
    error = problems_of(write(tmp_path, ""), {name: "1"})
    assert keyed(error, name)


@pytest.mark.parametrize(
    "inline",
    [INLINE_SECRET, f"sk:{INLINE_SECRET}", "env:", "file:"],
    ids=["plain", "colon", "env-empty", "file-empty"],
)
def test_inline_secret_is_reported_without_its_value(tmp_path: Path, inline: str) -> None:
    path = write(tmp_path, f'[accounts.ccpayment.shop]\napp_id = "a"\nsecrets = ["{inline}"]\n')
    error = problems_of(path)
    assert keyed(error, "accounts.ccpayment.shop.secrets.0")
    for text in (str(error), repr(error), *error.problems):
        assert INLINE_SECRET not in text


def test_inline_secret_is_not_echoed_next_to_other_problems(tmp_path: Path) -> None:
    path = write(
        tmp_path,
        f'[ingest]\nport = "x"\n[accounts.ccpayment.shop]\napp_id = 5\n'
        f'secrets = ["{INLINE_SECRET}"]\nsecret = "{INLINE_SECRET}"\n',
    )
    error = problems_of(path)
    assert keyed(error, "accounts.ccpayment.shop.secrets.0")
    assert keyed(error, "accounts.ccpayment.shop.secret")
    assert keyed(error, "accounts.ccpayment.shop.app_id")
    assert INLINE_SECRET not in str(error)


def test_unknown_provider_is_reported(tmp_path: Path) -> None:
    error = problems_of(write(tmp_path, '[accounts.paypal.main]\nsecrets = ["env:X"]\n'))
    [line] = keyed(error, "accounts.paypal")
    assert "ccpayment" in line  # names the known providers


def test_accounts_not_a_table_is_reported(tmp_path: Path) -> None:
    assert keyed(problems_of(write(tmp_path, "accounts = 3\n")), "accounts")


def test_section_not_a_table_with_env_override_is_reported(tmp_path: Path) -> None:
    error = problems_of(write(tmp_path, "ingest = 3\n"), {"PAYSYNC_INGEST__PORT": "9000"})
    assert keyed(error, "ingest")


def test_missing_file_is_config_error(tmp_path: Path) -> None:
    error = problems_of(tmp_path / "absent.toml")
    assert len(error.problems) == 1
    assert "absent.toml" in error.problems[0]


def test_invalid_toml_is_config_error(tmp_path: Path) -> None:
    error = problems_of(write(tmp_path, "[ingest\nport = \n"))
    assert len(error.problems) == 1
    assert "TOML" in error.problems[0]


def test_non_utf8_file_is_config_error(tmp_path: Path) -> None:
    # TOML is UTF-8 by definition: these bytes are invalid TOML, not a crash.
    path = tmp_path / "latin1.toml"
    path.write_bytes(b'log_level = "info"\n# caf\xe9\n')
    error = problems_of(path)
    assert len(error.problems) == 1


def test_unreadable_config_path_is_config_error(tmp_path: Path) -> None:
    # A directory where the file should be: reported, not an OSError traceback.
    error = problems_of(tmp_path)
    assert len(error.problems) == 1


NODES = [
    "amqp://u:pw1@h1:5672/vh?heartbeat=5",
    "amqp://u:pw1@h2:5673/vh?heartbeat=5",
    "amqp://u:pw1@h3:5674/vh?heartbeat=5",
]


@pytest.mark.parametrize(
    "text",
    [
        'amqp_url = "amqp://u:pw1@h1:5672,h2:5673,h3:5674/vh?heartbeat=5"',
        'amqp_url = "amqp://u:pw1@h1:5672/vh?heartbeat=5, amqp://u:pw1@h2:5673/vh?heartbeat=5 '
        'amqp://u:pw1@h3:5674/vh?heartbeat=5"',
        "amqp_url = [" + ", ".join(f'"{url}"' for url in NODES) + "]",
    ],
)
def test_several_broker_nodes_in_any_of_the_three_forms(tmp_path: Path, text: str) -> None:
    assert load(write(tmp_path, text)).amqp_url == NODES


def test_several_broker_nodes_from_the_environment(tmp_path: Path) -> None:
    env = {"PAYSYNC_AMQP_URL": "amqp://u:pw1@h1:5672,h2:5673,h3:5674/vh?heartbeat=5"}
    assert load(write(tmp_path, ""), env).amqp_url == NODES


def test_every_broker_password_is_a_secret_value(tmp_path: Path) -> None:
    text = 'amqp_url = ["amqp://a:first-pass@h1/", "amqp://b:second-pass@h2/"]'
    values = load(write(tmp_path, text)).secret_values()
    assert {"first-pass", "second-pass"} <= set(values)


@pytest.mark.parametrize(
    "text",
    ['amqp_url = "http://h1:5672/"', 'amqp_url = "amqp://u:p@h1:5672,,h2/"', "amqp_url = []"],
)
def test_a_bad_broker_address_names_the_key(tmp_path: Path, text: str) -> None:
    assert keyed(problems_of(write(tmp_path, text)), "amqp_url")
