"""Configuration: one TOML file, every scalar overridable by ``PAYSYNC_*`` environment variables.

Secrets are never written in the file; it names where they live (``env:NAME`` or
``file:PATH``) and they are resolved at start-up into :class:`Secret` values whose ``repr``
shows only the reference. Every problem in the file, the environment and the secret
references is collected and raised together as one :class:`~paysync.errors.ConfigError`,
each line naming its key.

Override rules: ``PAYSYNC_DATABASE_URL`` sets the top-level ``database_url``;
``PAYSYNC_INGEST__PORT`` sets ``port`` in the ``[ingest]`` table. ``PAYSYNC_CONFIG`` names
the file (default ``paysync.toml``). Provider accounts live only in the file.
"""

from __future__ import annotations

import math
import os
import re
import tomllib
from collections.abc import Mapping
from pathlib import Path
from typing import Annotated, Any, ClassVar, Literal
from urllib.parse import urlsplit, urlunsplit

from pydantic import (
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    ValidationError,
    ValidationInfo,
)

from paysync.errors import ConfigError

ENV_PREFIX = "PAYSYNC_"
CONFIG_ENV = "PAYSYNC_CONFIG"
DEFAULT_CONFIG_PATH = "paysync.toml"


class Secret:
    """A resolved secret. ``ref`` (``env:NAME``) is safe to log; the value is not."""

    __slots__ = ("_value", "ref")

    def __init__(self, ref: str, value: str) -> None:
        self.ref = ref
        self._value = value

    def reveal(self) -> str:
        return self._value

    def __repr__(self) -> str:
        return f"Secret({self.ref!r})"

    __str__ = __repr__


def _resolve_secret(raw: object, info: ValidationInfo) -> Secret:
    if isinstance(raw, Secret):
        return raw
    if not isinstance(raw, str):
        raise ValueError("a secret reference must be a string such as 'env:NAME' or 'file:PATH'")
    env: Mapping[str, str] = (info.context or {}).get("env", os.environ)
    kind, _, target = raw.partition(":")
    if kind == "env" and target:
        if target not in env:
            raise ValueError(f"environment variable {target} is not set")
        value = env[target]
    elif kind == "file" and target:
        try:
            value = Path(target).read_text(encoding="utf-8").rstrip("\r\n")
        except OSError as exc:
            raise ValueError(f"cannot read secret file {target}: {exc.strerror}") from None
    else:
        # The raw value may itself be a secret pasted inline: never echo it.
        raise ValueError("secrets must be referenced as 'env:NAME' or 'file:PATH', not inline")
    if not value:
        raise ValueError(f"secret {raw} is empty")
    return Secret(raw, value)


SecretRef = Annotated[Secret, BeforeValidator(_resolve_secret)]

DEFAULT_AMQP_URL = "amqp://guest:guest@127.0.0.1:5672/"


def _amqp_urls(raw: object) -> list[str]:
    """Every node's URL: a list of URLs, or one string holding URLs separated by commas
    or whitespace, or one URL whose host part lists several ``host:port``."""
    if isinstance(raw, str):
        items: list[object] = [part for part in re.split(r"[\s,]+(?=amqps?://)", raw.strip())]
    elif isinstance(raw, list):
        items = list(raw)
    else:
        raise ValueError("must be an AMQP URL or a list of AMQP URLs")
    urls: list[str] = []
    for item in items:
        if not isinstance(item, str):
            raise ValueError("must be an AMQP URL or a list of AMQP URLs")
        urls.extend(expand_hosts(item.strip()))
    if not urls:
        raise ValueError("names no broker")
    return urls


def expand_hosts(url: str) -> list[str]:
    """``amqp://u:p@h1:5672,h2:5673/vh`` → one URL per host, sharing credentials, vhost
    and query. A single-host URL comes back as it is."""
    parts = urlsplit(url)
    if parts.scheme not in ("amqp", "amqps"):
        raise ValueError("each broker URL must start with amqp:// or amqps://")
    userinfo, at, hosts = parts.netloc.rpartition("@")
    expanded = []
    for host in hosts.split(","):
        if not host.strip():
            raise ValueError("a broker URL names an empty host")
        netloc = f"{userinfo}{at}{host.strip()}"
        expanded.append(urlunsplit(parts._replace(netloc=netloc)))
    return expanded


class _Model(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True, arbitrary_types_allowed=True)


class StatusApiSettings(_Model):
    """How paysync calls one account's status API (``[accounts.<p>.<a>.status_api]``)."""

    # None: the provider's production URL (each provider module names it).
    base_url: str | None = Field(default=None, pattern=r"^https?://[^\s]+$")
    # Never more than this many requests per second to this account, nor in flight at once.
    rate_per_second: float = Field(default=5.0, gt=0)
    concurrency: int = Field(default=4, ge=1, le=100)
    timeout_seconds: float = Field(default=10.0, gt=0)
    # Attempts per call on 429, 5xx and timeouts, with backoff and jitter between them.
    max_attempts: int = Field(default=4, ge=1, le=20)


class ProviderAccount(_Model):
    """Fields every provider account has; each provider module extends it."""

    # The optional fields the provider's status API cannot do without. The reconciler asks
    # it about every payment, so they are required when the configuration loads.
    status_api_fields: ClassVar[tuple[str, ...]] = ()

    secrets: list[SecretRef] = Field(min_length=1)
    status_api: StatusApiSettings = StatusApiSettings()

    def status_api_problems(self, provider: str, name: str) -> list[str]:
        """One ``key: message`` line per status-API field this account lacks."""
        return [
            f"accounts.{provider}.{name}.{field}: required by the status API"
            for field in self.status_api_fields
            if getattr(self, field) is None
        ]

    def all_secrets(self) -> list[Secret]:
        """Every secret of the account, in any field (some providers have several kinds)."""
        found: list[Secret] = []
        for name in type(self).model_fields:
            value = getattr(self, name)
            items = value if isinstance(value, list | tuple) else [value]
            found.extend(v for v in items if isinstance(v, Secret))
        return found


class IngestSettings(_Model):
    host: str = "0.0.0.0"
    port: int = Field(default=8080, ge=0, le=65535)
    max_body_bytes: int = Field(default=64 * 1024, ge=1024)
    # A body not received in full within this is refused (408 body_timeout).
    body_timeout_seconds: float = Field(default=10.0, gt=0)
    confirm_timeout_seconds: float = Field(default=5.0, gt=0)
    shutdown_timeout_seconds: float = Field(default=10.0, gt=0)
    # A new connection must deliver its request head (line and headers) within this, or
    # it is closed (slowloris); an idle kept-alive one is closed after keepalive_timeout
    # (keep it above a load balancer's idle timeout); at most max_connections are open.
    header_timeout_seconds: float = Field(default=10.0, gt=0)
    keepalive_timeout_seconds: float = Field(default=75.0, gt=0)
    max_connections: int = Field(default=1024, ge=1)
    # A signed delivery id (Plural's webhook-id) seen within this window is acknowledged
    # but not published again. Longer than any provider's timestamp tolerance, so a copy
    # is either stale (401) or recognised.
    replay_window_seconds: float = Field(default=900.0, gt=0)
    replay_cache_size: int = Field(default=100_000, ge=1)
    # One accepted callback in this many is logged at info (callback_accepted, with
    # sampled_one_in); every one is counted in paysync_callbacks_total and logged at debug.
    # Rejections, duplicates and unconfirmed publishes are always logged. 1: log every one.
    accepted_log_every: int = Field(default=100, ge=1)
    # Ingest processes serving the port (SO_REUSEPORT): an int, or "auto" (one per CPU
    # this process may run on, capped by a cgroup CPU quota). 1 (the default): ingest
    # runs in the role's own process, as before; see docs/operations.md.
    processes: Annotated[int, Field(ge=1, le=256)] | Literal["auto"] = 1
    # Listen with SO_REUSEPORT, so that several ingest processes share the port (the
    # supervisor sets it for its children; a process manager may run them the same way).
    reuse_port: bool = False

    def local_url(self) -> str:
        """Where a process on this machine reaches ingest (simulators, the demo)."""
        host = "127.0.0.1" if self.host in ("0.0.0.0", "::") else self.host
        return f"http://{host}:{self.port}"

    def process_count(self) -> int:
        """How many ingest processes ``processes`` means on this machine."""
        return self.processes if isinstance(self.processes, int) else usable_cpus()


def usable_cpus() -> int:
    """CPUs this process may run on (its affinity), capped by a cgroup v2 CPU quota
    (``cpu.max``, as a container's CPU limit sets it), at least 1."""
    count = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count()
    try:
        quota, period = Path("/sys/fs/cgroup/cpu.max").read_text(encoding="ascii").split()[:2]
    except (OSError, ValueError):
        quota, period = "max", "1"
    if quota != "max":
        count = min(count or 1, math.ceil(int(quota) / int(period)))
    return max(count or 1, 1)


class WorkerSettings(_Model):
    # Unacked deliveries per consumer: a few batches' worth, so the next batch fills while
    # one commits.
    prefetch: int = Field(default=128, ge=1, le=10_000)
    # Deliveries applied in one transaction (one savepoint each); 1 = one transaction per
    # message. A batch is cut at this size, or the linger after its first delivery.
    batch_size: int = Field(default=32, ge=1, le=1_000)
    batch_linger_ms: float = Field(default=5.0, ge=0, le=1_000)
    relay_batch_size: int = Field(default=500, ge=1, le=10_000)
    relay_poll_seconds: float = Field(default=1.0, gt=0)
    publish_timeout_seconds: float = Field(default=5.0, gt=0)
    retry_initial_seconds: float = Field(default=0.2, gt=0)
    retry_max_seconds: float = Field(default=10.0, gt=0)


class ReconcilerSettings(_Model):
    # A scheduled round claims at most this many due payments, every interval.
    interval_seconds: float = Field(default=5.0, gt=0)
    batch_size: int = Field(default=200, ge=1, le=10_000)
    # A claimed payment is not claimed again for this long (a crashed replica's work returns).
    lease_seconds: float = Field(default=300.0, gt=0)
    # The check ladder (seconds after each check) and when to stop checking.
    ladder_seconds: list[float] = Field(default=[60, 300, 900, 3600, 21600, 86400], min_length=1)
    give_up_after_seconds: float = Field(default=7 * 86400, gt=0)


class BrokerSettings(_Model):
    name_prefix: str = Field(default="", pattern=r"^[A-Za-z0-9_.-]*$")
    delivery_limit: int = Field(default=5, ge=1, le=1000)
    # First wait before reconnecting; it doubles (with jitter) up to reconnect_max_seconds.
    reconnect_seconds: float = Field(default=1.0, gt=0)
    reconnect_max_seconds: float = Field(default=10.0, gt=0)
    # AMQP heartbeat: a dead, paused or partitioned node is noticed within about three.
    heartbeat_seconds: int = Field(default=10, ge=1, le=600)
    connect_timeout_seconds: float = Field(default=10.0, gt=0)


class MetricsSettings(_Model):
    """Where a process without ingest serves /metrics, /healthz and /readyz (port 0: any)."""

    host: str = "0.0.0.0"
    port: int = Field(default=9100, ge=0, le=65535)


class ApiSettings(_Model):
    """The ``/v1`` HTTP API. Bearer tokens are secret references; several may be active at
    once, for rotation. With none configured every ``/v1`` request is refused."""

    tokens: list[SecretRef] = []
    # Where providers reach this deployment (``https://pay.example``): ``POST /v1/checkouts``
    # points each order's callbacks at ``<public_url>/webhooks/<provider>/<account>`` and,
    # with ``return_to = "paysync"``, the customer's return at ``<public_url>/return/…``.
    # Unset: the provider account's own settings apply.
    public_url: str | None = Field(default=None, pattern=r"^https?://[^\s]+$")


class ConsoleSettings(_Model):
    """The operators' web console (``paysync console``, or ``paysync all --console``): its
    own port; logging in takes one of the ``[api] tokens``. Sessions are signed with
    ``session_key`` (a secret reference; none: a random key per process, so sessions end
    with it, and every replica behind one address needs the same key)."""

    host: str = "127.0.0.1"
    port: int = Field(default=8081, ge=0, le=65535)
    session_key: SecretRef | None = None
    session_max_age_seconds: int = Field(default=8 * 3600, ge=60)
    # Cookies marked Secure: set it when the console is served over HTTPS (it should be).
    secure_cookies: bool = False
    replay_rate_per_second: float = Field(default=200.0, gt=0)


class Settings(_Model):
    database_url: str = "postgresql://postgres@127.0.0.1:5432/paysync"
    # One URL, a URL listing several nodes (amqp://u:p@h1:5672,h2:5672/vhost), or a list
    # of URLs: paysync connects to any live node and moves to the next when one dies.
    amqp_url: Annotated[list[str], BeforeValidator(_amqp_urls)] = [DEFAULT_AMQP_URL]
    log_level: Literal["debug", "info", "warning", "error"] = "info"
    # The event loop every command runs on (paysync/runtime.py): uvloop's, or asyncio's own.
    event_loop: Literal["uvloop", "asyncio"] = "uvloop"
    database_pool_size: int = Field(default=10, ge=1, le=500)
    broker: BrokerSettings = BrokerSettings()
    ingest: IngestSettings = IngestSettings()
    worker: WorkerSettings = WorkerSettings()
    api: ApiSettings = ApiSettings()
    reconciler: ReconcilerSettings = ReconcilerSettings()
    metrics: MetricsSettings = MetricsSettings()
    console: ConsoleSettings = ConsoleSettings()
    accounts: dict[str, dict[str, ProviderAccount]] = Field(default_factory=dict)

    def account(self, provider: str, account: str) -> ProviderAccount | None:
        return self.accounts.get(provider, {}).get(account)

    def secrets(self) -> list[Secret]:
        """Every resolved secret, so log output can be scrubbed of them."""
        found = [
            s for accts in self.accounts.values() for a in accts.values() for s in a.all_secrets()
        ]
        key = [self.console.session_key] if self.console.session_key else []
        return found + list(self.api.tokens) + key

    def secret_values(self) -> list[str]:
        """Secret values and the passwords inside the database and broker URLs."""
        passwords = [urlsplit(url).password for url in (self.database_url, *self.amqp_url)]
        return [s.reveal() for s in self.secrets()] + [p for p in passwords if p]


_SECTIONS = ("broker", "ingest", "worker", "api", "reconciler", "metrics", "console")


def load_settings(
    account_models: Mapping[str, type[ProviderAccount]],
    *,
    path: str | Path | None = None,
    env: Mapping[str, str] | None = None,
) -> Settings:
    """Read the file, overlay the environment, resolve secrets; raise every problem at once."""
    env = dict(os.environ if env is None else env)
    path = Path(path or env.get(CONFIG_ENV) or DEFAULT_CONFIG_PATH)
    try:
        data = tomllib.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise ConfigError([f"{path}: config file not found (set {CONFIG_ENV})"]) from None
    except OSError as exc:
        raise ConfigError([f"{path}: cannot read the config file: {exc.strerror}"]) from None
    except UnicodeDecodeError:
        raise ConfigError([f"{path}: not valid TOML: the file is not UTF-8"]) from None
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError([f"{path}: not valid TOML: {exc}"]) from None

    problems: list[str] = []
    sources = _overlay_env(data, env, problems)
    accounts = _validate_accounts(data.pop("accounts", {}), account_models, env, problems)
    try:
        settings = Settings.model_validate(data, context={"env": env})
    except ValidationError as exc:
        problems.extend(_describe(exc, (), sources))
        settings = None
    if problems or settings is None:
        raise ConfigError(problems)
    return settings.model_copy(update={"accounts": accounts})


def _overlay_env(
    data: dict[str, Any], env: Mapping[str, str], problems: list[str]
) -> dict[str, str]:
    """Apply ``PAYSYNC_*`` variables onto ``data``; return key path → variable name."""
    sources: dict[str, str] = {}
    top_level = set(Settings.model_fields) - set(_SECTIONS) - {"accounts"}
    for name, value in sorted(env.items()):
        if not name.startswith(ENV_PREFIX) or name == CONFIG_ENV:
            continue
        section, sep, key = name[len(ENV_PREFIX) :].lower().partition("__")
        if sep and section in _SECTIONS:
            table = data.setdefault(section, {})
            if not isinstance(table, dict):
                problems.append(f"{section}: must be a table")
                continue
            table[key] = value
            sources[f"{section}.{key}"] = name
        elif not sep and section in top_level:
            data[section] = value
            sources[section] = name
        else:
            problems.append(f"{name}: unknown setting (environment variable)")
    return sources


def _validate_accounts(
    raw: object,
    account_models: Mapping[str, type[ProviderAccount]],
    env: Mapping[str, str],
    problems: list[str],
) -> dict[str, dict[str, ProviderAccount]]:
    if not isinstance(raw, dict):
        problems.append("accounts: must be a table of [accounts.<provider>.<account>]")
        return {}
    result: dict[str, dict[str, ProviderAccount]] = {}
    for provider, accounts in raw.items():
        model = account_models.get(provider)
        if model is None:
            known = ", ".join(sorted(account_models))
            problems.append(f"accounts.{provider}: unknown provider (known: {known})")
            continue
        if not isinstance(accounts, dict):
            problems.append(f"accounts.{provider}: must be a table of accounts")
            continue
        for name, fields in accounts.items():
            try:
                validated = model.model_validate(fields, context={"env": env})
            except ValidationError as exc:
                problems.extend(_describe(exc, ("accounts", provider, name), {}))
                continue
            problems.extend(validated.status_api_problems(provider, name))
            result.setdefault(provider, {})[name] = validated
    return result


def _describe(
    exc: ValidationError, prefix: tuple[str, ...], sources: Mapping[str, str]
) -> list[str]:
    lines = []
    for err in exc.errors(include_input=False, include_url=False):
        key = ".".join(str(p) for p in (*prefix, *err["loc"]))
        origin = f" (from {sources[key]})" if key in sources else ""
        lines.append(f"{key}{origin}: {err['msg']}")
    return lines
