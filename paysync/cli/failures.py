"""What the command line says when something expected goes wrong: one line on stderr and an
exit code, never a traceback (a traceback is left for our own bugs).

- ``UsageError``: the command names something that is not configured (exit 2);
- ``explain``: a service down or not migrated, an ingest not answering (exit 1);
- ``demo_environment``: from the checkout, the demo's generated secrets (``.run/demo.env``
  beside the config file) fill the environment variables it lacks, so read-only commands
  work in a fresh terminal; without that file, ``demo_hint`` says in one line what to run.
"""

from __future__ import annotations

import os
import re
from collections.abc import Mapping
from pathlib import Path

import aio_pika
import aiohttp
import asyncpg

from paysync.errors import PaysyncError
from paysync.settings import CONFIG_ENV, DEFAULT_CONFIG_PATH, ProviderAccount, Settings

DEMO_ENV = Path(".run") / "demo.env"
# What only the checkout has beside its paysync.toml: the script that writes DEMO_ENV.
DEMO_SECRETS_SCRIPT = Path("deploy") / "demo-secrets.sh"


class UsageError(PaysyncError):
    """The command names something the configuration does not have (exit 2)."""


def configured_account(
    settings: Settings, provider: str, name: str | None, command: str
) -> tuple[str, ProviderAccount]:
    """The named account of ``provider`` (the first one when ``name`` is None)."""
    accounts = settings.accounts.get(provider, {})
    chosen = name if name is not None else next(iter(accounts), None)
    account = accounts.get(chosen or "")
    if chosen is None or account is None:
        named = ", ".join(sorted(accounts)) or "none"
        what = f"account {name!r}" if name is not None else "account"
        raise UsageError(f"{command}: no {provider} {what} is configured (configured: {named})")
    return chosen, account


def explain(exc: BaseException) -> str | None:
    """One line for an expected failure; None for anything else (a bug: let it show)."""
    if isinstance(exc, asyncpg.UndefinedTableError | asyncpg.UndefinedColumnError):
        return f"the database is not migrated ({exc}): run paysync migrate"
    if isinstance(exc, asyncpg.InvalidCatalogNameError):
        return f"{exc}: run paysync migrate (it creates the database)"
    if isinstance(exc, aiohttp.ClientConnectorError):
        return (
            f"ingest not reachable at {exc.host}:{exc.port} ({_why(exc)}):"
            " is paysync running? (make run, or paysync ingest)"
        )
    if isinstance(exc, aio_pika.exceptions.AMQPConnectionError):
        return f"RabbitMQ not reachable ({_why(exc)}): check amqp_url / PAYSYNC_AMQP_URL"
    return None


def _why(exc: BaseException) -> str:
    inner = getattr(exc, "os_error", None) or exc.__cause__ or exc
    errno = getattr(inner, "errno", None)
    if isinstance(errno, int):
        return os.strerror(errno)
    return str(inner) or type(inner).__name__


def config_path(given: str | None, env: Mapping[str, str]) -> Path:
    """The file ``load_settings`` reads."""
    return Path(given or env.get(CONFIG_ENV) or DEFAULT_CONFIG_PATH)


def demo_environment(path: Path, env: Mapping[str, str]) -> dict[str, str]:
    """``env`` plus the demo's secrets, when ``path`` is a config with ``.run/demo.env``
    beside it; variables already set win."""
    found = dict(env)
    secrets_file = path.parent / DEMO_ENV
    if not secrets_file.is_file():
        return found
    for line in secrets_file.read_text(encoding="utf-8").splitlines():
        name, sep, value = line.strip().removeprefix("export ").partition("=")
        if sep and name and not name.startswith("#"):
            found.setdefault(name, value.strip().strip("'\""))
    return found


_UNSET = re.compile(r"environment variable (\w+) is not set")


def demo_hint(path: Path, problems: list[str]) -> str | None:
    """One line instead of ``problems`` when all they say is that the checkout's demo
    config lacks its generated secrets (``make run`` has not run yet)."""
    unset = [m[1] for p in problems if (m := _UNSET.search(p))]
    beside = path.parent
    if not unset or len(unset) < len(problems):
        return None
    if not (beside / DEMO_SECRETS_SCRIPT).is_file() or (beside / DEMO_ENV).is_file():
        return None
    return (
        f"the demo's secrets are not set ({len(unset)} variables: {unset[0]}, ...):"
        f" `make run` generates them into {beside / DEMO_ENV} (or run"
        " deploy/demo-secrets.sh), and paysync then reads that file by itself"
    )
