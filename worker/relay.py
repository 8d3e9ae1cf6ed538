"""Outbox relay: publishes committed outbox rows to ``paysync.events`` and marks them.

One relay works at a time (a transaction-scoped advisory lock), so rows leave in id
order. Within a batch, rows are published together in waves that hold at most one
row per payment, so a payment's events are confirmed in ``seq`` order. A crash between
publish and mark re-publishes: delivery is at-least-once, consumers dedup on event_id.
The relay wakes on ``NOTIFY paysync_outbox`` and polls as a fallback.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING

import asyncpg

from paysync.broker import Broker, OutgoingEvent
from paysync.db import load_queries, translated_errors
from paysync.errors import BrokerUnavailable, Transient
from paysync.logging import get_logger
from paysync.metrics import Metrics
from paysync.retry import Backoff
from paysync.settings import WorkerSettings
from worker.store import QUERIES_PATH

if TYPE_CHECKING:
    from paysync.db import Conn

log = get_logger(__name__)

CHANNEL = "paysync_outbox"
LOCK_KEY = 0x6F7574626F78  # "outbox"; per database (a fault drill holds it to stall the relay)


class Relay:
    def __init__(
        self,
        pool: asyncpg.Pool,
        broker: Broker,
        settings: WorkerSettings,
        metrics: Metrics,
        stop: asyncio.Event,
        queries: Mapping[str, str] | None = None,
    ) -> None:
        self._pool = pool
        self._metrics = metrics
        self._broker = broker
        self._settings = settings
        self._stop = stop
        self._q = queries or load_queries(QUERIES_PATH)
        self._wake = asyncio.Event()
        self._publish_failing = False
        self._backoff = Backoff(
            initial=settings.retry_initial_seconds, maximum=settings.retry_max_seconds
        )

    async def run(self) -> None:
        """Relay until ``stop``; the batch in hand is finished before returning."""
        listener: Conn | None = None
        failures = 0
        log.info("relay_started")
        while not self._stop.is_set():
            if not await self._broker.wait_up(self._stop):
                break
            listener = await self._ensure_listener(listener)
            # Cleared before reading, so a NOTIFY that lands mid-batch wakes the next round.
            self._wake.clear()
            try:
                published = await self.relay_once()
                failures = 0
                self._publish_failing = False
            except BrokerUnavailable as exc:
                failures += 1
                self._publish_failing = True
                log.warning("relay_retried", error=str(exc), attempt=failures)
                await self._pause(self._backoff.delay(failures))
                continue
            except Transient as exc:
                failures += 1
                log.warning("relay_retried", error=str(exc), attempt=failures)
                await self._pause(self._backoff.delay(failures))
                continue
            if published < self._settings.relay_batch_size:
                with contextlib.suppress(Transient):
                    await self.sample_backlog()
                await self._pause(self._settings.relay_poll_seconds)
        if listener is not None:
            await self._release(listener)
        log.info("relay_stopped")

    @property
    def ready(self) -> bool:
        """True while events can be published: a broker link, and no failed publish since
        the last confirmed batch."""
        return self._broker.ready and not self._publish_failing

    async def relay_once(self) -> int:
        """Publish one batch; return how many rows were published."""
        async with translated_errors(), self._pool.acquire() as conn, conn.transaction():
            if not await conn.fetchval(self._q["relay_try_lock"], LOCK_KEY):
                return 0
            rows = await conn.fetch(self._q["relay_batch"], self._settings.relay_batch_size)
            if not rows:
                return 0
            started = time.monotonic()
            for wave in _waves(rows):
                await self._publish(wave)
            await conn.execute(self._q["relay_mark_published"], [r["id"] for r in rows])
        waited = time.monotonic() - started
        for row in rows:
            self._metrics.relay_latency.observe(row["age"] + waited)
        return len(rows)

    async def sample_backlog(self) -> None:
        """Outbox backlog and oldest age, for the metrics (best effort)."""
        async with translated_errors(), self._pool.acquire() as conn:
            row = await conn.fetchrow(self._q["outbox_backlog"])
        assert row is not None
        self._metrics.outbox_backlog.set(row["backlog"])
        self._metrics.outbox_oldest_age.set(row["oldest_age"])

    async def _publish(self, wave: Sequence[asyncpg.Record]) -> None:
        events = [
            OutgoingEvent(row["body"].encode(), row["event_id"], row["routing_key"]) for row in wave
        ]
        routed = await self._broker.publish_events(
            events, timeout=self._settings.publish_timeout_seconds
        )
        for row, ok in zip(wave, routed, strict=True):
            self._metrics.events_published.labels("true" if ok else "false").inc()
            if not ok:
                log.warning(
                    "event_unroutable", event_id=row["event_id"], routing_key=row["routing_key"]
                )

    async def _pause(self, seconds: float) -> None:
        waits = [asyncio.ensure_future(self._wake.wait()), asyncio.ensure_future(self._stop.wait())]
        _, pending = await asyncio.wait(waits, timeout=seconds, return_when=asyncio.FIRST_COMPLETED)
        for task in pending:
            task.cancel()

    async def _ensure_listener(self, conn: Conn | None) -> Conn | None:
        if conn is not None and _alive(conn):
            return conn
        if conn is not None:
            await self._release(conn)
        try:
            async with translated_errors():
                fresh = await self._pool.acquire()
                await fresh.add_listener(CHANNEL, self._notified)
        except Transient:
            return None  # polling still works; the listener is retried next round
        return fresh

    async def _release(self, conn: Conn) -> None:
        with contextlib.suppress(Exception):
            await conn.remove_listener(CHANNEL, self._notified)
        with contextlib.suppress(Exception):
            await self._pool.release(conn)  # type: ignore[arg-type]

    def _notified(self, *_args: object) -> None:
        self._wake.set()


def _alive(conn: Conn) -> bool:
    try:
        return not conn.is_closed()
    except asyncpg.InterfaceError:
        # The backend was terminated and asyncpg has already handed the connection back to
        # the pool: this proxy is dead (found by the fault drill).
        return False


def _waves(rows: Sequence[asyncpg.Record]) -> list[list[asyncpg.Record]]:
    """Split rows (in id order) into waves holding at most one row per payment."""
    waves: list[list[asyncpg.Record]] = []
    depth: dict[int, int] = {}
    for row in rows:
        level = depth.get(row["payment_id"], 0)
        depth[row["payment_id"]] = level + 1
        if level == len(waves):
            waves.append([])
        waves[level].append(row)
    return waves
