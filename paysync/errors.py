"""The one exception tree of paysync.

Every error paysync raises on purpose derives from ``PaysyncError`` and is either
``Permanent`` (retrying cannot help: dead-letter it or answer 4xx) or ``Transient``
(a dependency is unavailable: retry with backoff, answer 503)::

    PaysyncError
    ├── ConfigError                   configuration is invalid (all problems at once)
    ├── RoleEnded                     a role's main task ended while the process ran
    ├── StartupError                  a process cannot start: a port in use, a TLS file
    │   ├── TopologyMissing           an exchange or queue is missing: run `paysync migrate`
    │   └── TopologyMismatch          RabbitMQ refused the topology as configured
    ├── Permanent
    │   ├── AuthenticationError       a request failed its provider's scheme (reason code)
    │   ├── UnknownAccount            {provider}/{account} is not configured
    │   ├── MalformedMessage          an authenticated body/envelope cannot be parsed
    │   └── ProviderRefused           a provider's status API refused us (401/403/4xx, bad
    │                                 response signature): retrying will not help
    └── Transient
        ├── BrokerUnavailable         RabbitMQ down or did not confirm in time
        ├── DatabaseUnavailable       Postgres down or a lock conflict
        └── ProviderUnavailable       a provider's status API: 429, 5xx, timeout (retried)

Each process maps these to outcomes in exactly one place: HTTP status in ingest,
ack / retry / dead-letter in the worker, retry / give up (a failed check) in the reconciler.
"""

from __future__ import annotations


class PaysyncError(Exception):
    """Base of every error paysync raises deliberately."""


class ConfigError(PaysyncError):
    """Configuration is invalid; ``problems`` lists every ``key: message`` found."""

    def __init__(self, problems: list[str]) -> None:
        self.problems = problems
        super().__init__("invalid configuration:\n" + "\n".join(f"  {p}" for p in problems))


class RoleEnded(PaysyncError):
    """A role's main task ended (returned or was cancelled) while the process was running:
    the process exits non-zero, so that its orchestrator restarts it."""


class StartupError(PaysyncError):
    """What stops a process at start-up, at once: a port in use, an unreadable TLS file."""


class TopologyMissing(StartupError):
    """An exchange or queue of the topology does not exist: ``paysync migrate`` first."""


class TopologyMismatch(StartupError):
    """RabbitMQ refused to declare the topology as configured (permanent until fixed)."""


class Permanent(PaysyncError):
    """Retrying cannot help."""


class AuthenticationError(Permanent):
    """A request failed its provider's authentication scheme.

    ``reason`` is a stable, secret-free code (``bad_signature``, ``stale_timestamp``,
    ``missing_header``, ``foreign_app_id`` ...) used in the HTTP body and as a metric label.
    """

    def __init__(self, reason: str, detail: str = "") -> None:
        self.reason = reason
        self.detail = detail
        super().__init__(f"{reason}: {detail}" if detail else reason)


class UnknownAccount(Permanent):
    """The provider or account named by a request or message is not configured."""

    def __init__(self, provider: str, account: str) -> None:
        self.provider = provider
        self.account = account
        super().__init__(f"unknown provider account {provider}/{account}")


class MalformedMessage(Permanent):
    """An authenticated payload or an envelope cannot be understood."""


class ProviderRefused(Permanent):
    """A provider's status API answered in a way retrying cannot fix (a secret-free reason)."""


class CheckoutRejected(Permanent):
    """A provider refused to create an order (bad field, duplicate id, currency not enabled).

    ``provider_code`` is the provider's own error code or HTTP status, passed on to the
    merchant; the message is secret-free."""

    def __init__(self, message: str, *, provider_code: str) -> None:
        super().__init__(message)
        self.provider_code = provider_code


class Transient(PaysyncError):
    """A dependency is unavailable; the same work may succeed later."""


class BrokerUnavailable(Transient):
    """RabbitMQ is unreachable or did not confirm a publish in time."""


class DatabaseUnavailable(Transient):
    """Postgres is unreachable, or a transaction hit a serialization/lock conflict."""


class ProviderUnavailable(Transient):
    """A provider's status API is rate-limiting, failing (5xx) or not answering in time."""
