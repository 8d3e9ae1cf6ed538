"""Scheduled reconciliation: every interval, claim the payments whose check is due and
check them. Replicas claim with ``FOR UPDATE SKIP LOCKED`` and a lease, so any number can
run and no payment is polled twice in one round; a crashed replica's claims come due again
when their lease ends. Each round that found work is a ``reconcile_runs`` row."""

from __future__ import annotations

import asyncio
import contextlib
from collections import Counter
from collections.abc import Mapping
from pathlib import Path

import aiohttp
import asyncpg

from paysync.broker import Broker
from paysync.db import load_queries, translated_errors
from paysync.errors import DatabaseUnavailable
from paysync.logging import get_logger
from paysync.metrics import Metrics
from paysync.settings import Settings
from providers.registry import Provider
from reconciler.checker import Check, Checker, Due

QUERIES_PATH = Path(__file__).with_name("queries.sql")

log = get_logger(__name__)


class Rounds:
    def __init__(
        self,
        settings: Settings,
        registry: Mapping[str, Provider],
        pool: asyncpg.Pool,
        broker: Broker,
        metrics: Metrics,
        stop: asyncio.Event,
    ) -> None:
        self._settings = settings
        self._registry = registry
        self._pool = pool
        self._broker = broker
        self._metrics = metrics
        self._stop = stop
        self._q = load_queries(QUERIES_PATH)

    async def run(self) -> None:
        config = self._settings.reconciler
        if not await self._broker.wait_up(self._stop):
            return
        async with aiohttp.ClientSession() as session:
            checker = Checker(
                self._settings,
                self._registry,
                self._pool,
                self._broker,
                self._metrics,
                session,
                self._q,
            )
            log.info("reconciler_started", interval=config.interval_seconds)
            while not self._stop.is_set():
                try:
                    claimed = await self.round(checker)
                except DatabaseUnavailable as exc:
                    log.warning("reconcile_round_failed", error=str(exc))
                    claimed = 0
                if claimed < config.batch_size:
                    with contextlib.suppress(TimeoutError):
                        await asyncio.wait_for(self._stop.wait(), config.interval_seconds)
        log.info("reconciler_stopped")

    async def round(self, checker: Checker) -> int:
        """One round: claim due payments, check them, record the run; how many were claimed."""
        config = self._settings.reconciler
        async with translated_errors(), self._pool.acquire() as conn:
            rows = await conn.fetch(self._q["claim_due"], config.batch_size, config.lease_seconds)
            self._metrics.reconcile_due.set(await conn.fetchval(self._q["count_due"]))
            run_id = None
            if rows:
                run_id = await conn.fetchval(self._q["insert_run"], "schedule", {}, False)
        if not rows:
            return 0
        checks = await checker.check([Due.from_row(r) for r in rows])
        await record_run(self._pool, self._q, run_id, checks)
        return len(rows)


async def record_run(
    pool: asyncpg.Pool, queries: Mapping[str, str], run_id: int | None, checks: list[Check]
) -> Counter[str]:
    counts = Counter(c.outcome for c in checks)
    async with translated_errors(), pool.acquire() as conn:
        await conn.execute(
            queries["finish_run"],
            run_id,
            len(checks),
            counts["in_sync"],
            counts["drift"],
            counts["not_found"],
            counts["failed"],
        )
        if run_id is not None:
            await conn.executemany(queries["insert_check"], _drift_rows(run_id, checks))
    log.info("reconcile_run_finished", run_id=run_id, checked=len(checks), **dict(counts))
    return counts


def _drift_rows(run_id: int, checks: list[Check]) -> list[tuple[object, ...]]:
    """The run's drift table (``reconcile_checks``): every check that was not in sync."""
    return [
        (
            run_id,
            c.payment.id,
            c.payment.status.value if c.payment.status else None,
            c.provider_status,
            c.their_status.value if c.their_status else None,
            c.outcome,
            c.action,
            c.error,
        )
        for c in checks
        if c.outcome != "in_sync"
    ]
