"""The operator's job: ``paysync reconcile`` checks every payment of a provider matching the
filters now, whatever its schedule, prints the drift and records a ``reconcile_runs`` row.
A dry run asks the providers and reports, but publishes nothing and reschedules nothing
(and records its run with ``dry_run = true``)."""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

import aiohttp
import asyncpg

from paysync.broker import Broker
from paysync.db import load_queries, translated_errors
from paysync.metrics import Metrics
from paysync.settings import Settings
from providers.registry import Provider
from reconciler.checker import Check, Checker, Due
from reconciler.rounds import QUERIES_PATH, record_run

_DURATION = re.compile(r"^(\d+)([smhd])$")
_UNITS = {"s": 1, "m": 60, "h": 3600, "d": 86400}


def parse_duration(text: str) -> timedelta:
    """``90s``, ``30m``, ``24h``, ``7d``."""
    match = _DURATION.match(text.strip())
    if not match:
        raise ValueError(f"{text!r} is not a duration such as 30m, 24h or 7d")
    return timedelta(seconds=int(match[1]) * _UNITS[match[2]])


@dataclass(frozen=True, slots=True, kw_only=True)
class Filters:
    provider: str
    account: str | None = None
    since: timedelta = timedelta(hours=24)
    refs: tuple[str, ...] = ()

    def as_json(self) -> dict[str, object]:
        return {
            "provider": self.provider,
            "account": self.account,
            "since_seconds": int(self.since.total_seconds()),
            "refs": list(self.refs),
        }


@dataclass(frozen=True, slots=True, kw_only=True)
class JobReport:
    run_id: int
    checks: list[Check]


async def run_job(
    settings: Settings,
    registry: Mapping[str, Provider],
    pool: asyncpg.Pool,
    broker: Broker | None,
    filters: Filters,
    *,
    dry_run: bool,
    on_selected: Callable[[int], None] = lambda _n: None,
    on_checked: Callable[[Check], None] = lambda _c: None,
) -> JobReport:
    """Select, check, record. ``broker`` may be None only for a dry run."""
    queries = load_queries(QUERIES_PATH)
    since = datetime.now(UTC) - filters.since
    async with translated_errors(), pool.acquire() as conn:
        rows = await conn.fetch(
            queries["select_for_job"],
            filters.provider,
            filters.account,
            since,
            list(filters.refs) or None,
        )
        run_id = await conn.fetchval(queries["insert_run"], "operator", filters.as_json(), dry_run)
    on_selected(len(rows))
    async with aiohttp.ClientSession() as session:
        checker = Checker(settings, registry, pool, broker, Metrics(), session, queries)
        checks = await checker.check(
            [Due.from_row(r) for r in rows], dry_run=dry_run, on_checked=on_checked
        )
    await record_run(pool, queries, run_id, checks)
    return JobReport(run_id=run_id, checks=checks)
