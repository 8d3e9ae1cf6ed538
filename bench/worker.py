"""Pair 2: paysync's worker applying a pre-filled queue vs raw asyncpg doing the same writes.

- **paysync**: ``paysync worker`` (consumer + store + outbox relay, as in production, its
  default ``worker.batch_size``) in a child process, started on ``paysync.inbound``
  pre-filled with distinct CCPayment envelopes, exactly as ingest publishes them. Each one
  is a new payment's full credit: one inbox row, one transition to ``paid``, one event.
- **per-message**: the same worker with ``worker.batch_size = 1``: one transaction per
  message, the worker before batching.
- **baseline**: ``python -m bench.sqlloop`` (see there): the same writes, one transaction
  per message, on as many connections as the worker's pool.
- **batched**: ``python -m bench.sqlloop --batch`` with the worker's batch size: the same
  writes, one transaction per batch of messages.

Both sides are timed the same way, from outside: the benchmark polls the number of inbox
rows; the window starts ``worker_warmup`` s after the first row (start-up excluded) and
lasts ``duration`` s, or ends when every message is applied. Sides alternate, and every
run starts from empty tables and queues.
"""

from __future__ import annotations

import asyncio
import sys
import time
from collections.abc import Callable, Mapping
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import asyncpg

from bench import rabbit, roles
from bench.context import Context
from bench.cpu import CpuReader, process_readers
from bench.load import ccpayment_envelopes, median
from bench.servers import PROJECT_ROOT
from bench.targets import Target, at_least, num, pct, ratio
from paysync.settings import Settings

NAME = "worker"
SIDES = ("paysync", "per-message", "baseline", "batched")
TARGET_RATIO = 0.7  # paysync msg/s >= 0.7 x raw asyncpg, batched as the worker is
TARGET_SPEEDUP = 3.0  # paysync (batched) msg/s >= 3 x the per-message worker
BATCH_SIZE: int = Settings.model_fields["worker"].default.batch_size
PER_MESSAGE = "\n[worker]\nbatch_size = 1\n"
POLL_SECONDS = 0.05
FIRST_ROW_TIMEOUT_SECONDS = 60.0
POOL_SIZE: int = Settings.model_fields["database_pool_size"].default
METRICS = ("messages_per_second", "cpu_us_per_message")

clock = time.perf_counter


@dataclass(frozen=True, slots=True)
class Run:
    messages_per_second: float | None
    applied: int  # inbox rows written in the window
    window_seconds: float
    drained: bool  # every message was applied before the window's end
    cpu_percent: dict[str, float | None]  # process, broker, postgres; 100 = one core
    cpu_us_per_message: float | None  # the side's own process
    relay_lag: int | None  # paysync: applied but not yet published at the window's end


@dataclass(frozen=True, slots=True)
class Result:
    runs: dict[str, list[Run]]

    def medians(self) -> dict[str, dict[str, float | None]]:
        return {
            side: {m: median([getattr(r, m) for r in self.runs[side]]) for m in METRICS}
            for side in SIDES
        }

    def ratio(self, over: str = "batched") -> float | None:
        """paysync's msg/s over another side's (medians)."""
        m = self.medians()
        return ratio(m["paysync"]["messages_per_second"], m[over]["messages_per_second"])

    def targets(self) -> list[Target]:
        speedup, value = self.ratio("per-message"), self.ratio()
        return [
            Target(
                label=f"worker msg/s >= {TARGET_SPEEDUP:g} x the per-message worker (batch_size 1)",
                figure=num(speedup, ".2f"),
                met=at_least(speedup, TARGET_SPEEDUP),
            ),
            Target(
                label=f"worker msg/s >= {TARGET_RATIO:g} x raw asyncpg,"
                f" {BATCH_SIZE} per transaction",
                figure=num(value, ".2f"),
                met=at_least(value, TARGET_RATIO),
            ),
        ]

    def as_json(self) -> dict[str, Any]:
        return {
            "runs": {side: [asdict(r) for r in self.runs[side]] for side in SIDES},
            "medians": self.medians(),
            "ratio_paysync_over_per_message": self.ratio("per-message"),
            "ratio_paysync_over_batched": self.ratio(),
            "ratio_paysync_over_baseline": self.ratio("baseline"),
            "targets": [t.as_json() for t in self.targets()],
        }


async def run_pair(ctx: Context) -> Result:
    configs = {
        "paysync": ctx.config("worker-pair2"),
        "per-message": ctx.config("worker-pair2-single", extra=PER_MESSAGE),
    }
    runs: dict[str, list[Run]] = {side: [] for side in SIDES}
    for n in range(1, ctx.params.runs + 1):
        for side in SIDES:
            if side in configs:
                run = await paysync_run(ctx, configs[side], side)
            else:
                run = await baseline_run(ctx, BATCH_SIZE if side == "batched" else 1)
            runs[side].append(run)
            progress(f"worker run {n}/{ctx.params.runs} {side}", run)
    return Result(runs=runs)


async def paysync_run(ctx: Context, config: Path, side: str) -> Run:
    count = ctx.params.worker_messages
    await _fresh(ctx)
    await rabbit.publish_envelopes(ctx.spec.amqp_url, ctx.spec.prefix, ccpayment_envelopes(count))
    await asyncio.sleep(ctx.params.settle_seconds)
    label = f"worker-pair2-{side}"
    role = await roles.start("worker", config, ctx.secrets, ctx.spec.log_dir, label=label)
    try:
        conn = await ctx.db.connect()
        try:
            readers = process_readers({"process": role.pid}, ctx.spec.broker_pid)
            run = await _window(ctx, conn, readers, role.check_alive)
            published = await conn.fetchval(ctx.db.queries["count_published"])
            applied = await conn.fetchval(ctx.db.queries["count_inbox"])
        finally:
            await conn.close()
        if side == "paysync":
            ctx.recorder.note("worker", "paysync", role.pid, "pair 2")
    finally:
        await role.stop()
    return Run(**{**asdict(run), "relay_lag": applied - published})


async def baseline_run(ctx: Context, batch: int) -> Run:
    await _fresh(ctx)
    log_path = ctx.spec.log_dir / "sqlloop.log"
    with log_path.open("ab") as log_file:
        proc = await asyncio.create_subprocess_exec(
            sys.executable,
            "-m",
            "bench.sqlloop",
            "--dsn",
            ctx.db.url,
            "--count",
            str(ctx.params.worker_messages),
            "--connections",
            str(POOL_SIZE),
            "--batch",
            str(batch),
            cwd=PROJECT_ROOT,
            stdin=asyncio.subprocess.DEVNULL,
            stdout=log_file,
            stderr=asyncio.subprocess.STDOUT,
        )

    def check_alive() -> None:
        if proc.returncode is not None:
            tail = log_path.read_text(encoding="utf-8", errors="replace")[-2000:]
            raise RuntimeError(f"bench.sqlloop exited with {proc.returncode}:\n{tail}")

    try:
        conn = await ctx.db.connect()
        try:
            readers = process_readers({"process": proc.pid}, ctx.spec.broker_pid)
            run = await _window(ctx, conn, readers, check_alive)
        finally:
            await conn.close()
    finally:
        if proc.returncode is None:
            proc.terminate()
        await proc.wait()
    return run


async def _fresh(ctx: Context) -> None:
    await ctx.db.reset()
    await rabbit.purge(ctx.spec.amqp_url, ctx.spec.prefix)


async def _window(
    ctx: Context,
    conn: asyncpg.Connection,
    cpu: Mapping[str, CpuReader],
    check_alive: Callable[[], None],
) -> Run:
    """Time the inbox growing: from ``worker_warmup`` after the first row, for ``duration``."""
    total = ctx.params.worker_messages

    async def applied() -> int:
        check_alive()
        count: int = await conn.fetchval(ctx.db.queries["count_inbox"])
        return count

    deadline = clock() + FIRST_ROW_TIMEOUT_SECONDS
    while await applied() == 0:
        if clock() > deadline:
            raise RuntimeError(f"no message applied within {FIRST_ROW_TIMEOUT_SECONDS:g} s")
        await asyncio.sleep(POLL_SECONDS)
    await asyncio.sleep(ctx.params.worker_warmup)
    before = {name: read() for name, read in cpu.items()}
    c0, t0 = await applied(), clock()
    c1, t1 = c0, t0
    while c1 < total and t1 < t0 + ctx.params.duration:
        await asyncio.sleep(POLL_SECONDS)
        c1, t1 = await applied(), clock()
    after = {name: read() for name, read in cpu.items()}
    seconds = t1 - t0
    used = {n: _delta(before[n], after[n]) for n in cpu}
    process = used.get("process")
    return Run(
        messages_per_second=(c1 - c0) / seconds if seconds > 0 else None,
        applied=c1 - c0,
        window_seconds=seconds,
        drained=c1 >= total,
        cpu_percent={
            n: None if v is None or seconds <= 0 else 100 * v / seconds for n, v in used.items()
        },
        cpu_us_per_message=None if process is None or c1 == c0 else 1e6 * process / (c1 - c0),
        relay_lag=None,
    )


def _delta(before: float | None, after: float | None) -> float | None:
    return None if before is None or after is None else after - before


def render(result: Result) -> list[str]:
    lines = [
        "worker vs raw asyncpg: pre-filled CCPayment credits; paysync and batched"
        f" {BATCH_SIZE} messages per transaction, per-message and baseline one;"
        f" {POOL_SIZE} connections",
        f"{'run':<4}{'side':<12}{'msg/s':>9}{'applied':>9}{'window s':>10}{'CPU us/msg':>12}"
        f"{'CPU: process':>14}{'postgres':>10}{'broker':>8}{'relay lag':>11}",
    ]
    for i in range(len(result.runs[SIDES[0]])):
        for side in SIDES:
            r = result.runs[side][i]
            drained = "  (drained)" if r.drained else ""
            lines.append(
                f"{i + 1:<4}{side:<12}{num(r.messages_per_second):>9}{r.applied:>9}"
                f"{r.window_seconds:>10.2f}{num(r.cpu_us_per_message, '.0f'):>12}"
                f"{pct(r.cpu_percent.get('process')):>14}{pct(r.cpu_percent.get('postgres')):>10}"
                f"{pct(r.cpu_percent.get('broker')):>8}"
                f"{'-' if r.relay_lag is None else r.relay_lag:>11}{drained}"
            )
    m = result.medians()
    lines.append(f"{'median':<12}" + "".join(f"{side:>13}" for side in SIDES))
    for metric, label in (("messages_per_second", "msg/s"), ("cpu_us_per_message", "CPU us/msg")):
        lines.append(f"{label:<12}" + "".join(f"{num(m[side][metric]):>13}" for side in SIDES))
    lines.append(
        "paysync over: "
        + ", ".join(f"{side} {num(result.ratio(side), '.2f')}" for side in SIDES[1:])
    )
    return lines


def progress(label: str, run: Run) -> None:
    print(
        f"# {label}: {num(run.messages_per_second, '.0f')} msg/s over {run.window_seconds:.1f} s"
        f"{' (drained)' if run.drained else ''}",
        file=sys.stderr,
        flush=True,
    )
