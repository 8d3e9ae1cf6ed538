"""The whole-pipeline pair, and pair 3 at half of the pipeline's sustained maximum.

- **paysync**: ``paysync ingest`` and ``paysync worker`` (consumer, store, outbox relay),
  the real console script as configured, on the benchmark database; events arrive on the
  quorum queue bound to ``paysync.events``.
- **naive**: the bare receiver (``bench/baseline.py``) and ``bench/naive.py``'s consumer:
  one transaction per event, the event published with a confirm after the commit.

**Sustained events/s**: the highest open-loop callback rate whose callback → event p99
stays under ``pipeline_p99_ms`` (1 s) with no error and no event lost, found by a search
per run (up by 1.5 x while it holds, then halving the bracket geometrically; later runs
start from the side's last result). Sides alternate; every step starts from purged
queues and empty tables. **CPU seconds per 1,000 events** are read at each run's highest
holding rate: the pipeline's own processes, and everything (plus Postgres and RabbitMQ).
Then both sides are loaded at half of paysync's median sustained rate, alternately: the
end-to-end latency target (p99 < 100 ms).
"""

from __future__ import annotations

import asyncio
import dataclasses
import math
import sys
import time
from collections.abc import Awaitable, Callable
from contextlib import AsyncExitStack
from dataclasses import dataclass, field
from typing import Any

import asyncpg
import orjson

from bench import rabbit, roles
from bench.arrivals import RefOf, Run, event_ref, measure
from bench.config import baseline_name, events_queue, naive_events
from bench.context import Context
from bench.cpu import process_readers
from bench.load import median
from bench.naive import QUERIES_PATH
from bench.processes import paysync_ingest
from bench.servers import PROJECT_ROOT, ServerProcess
from bench.targets import Target, at_least, below, num, ratio
from paysync.amqp import Topology
from paysync.db import load_queries

NAME = "pipeline"
SIDES = ("paysync", "naive")
TARGET_RATIO = 1.8  # paysync sustained events/s >= 1.8 x naive
TARGET_HALF_P99_MS = 100.0
GROWTH = 1.5
STEP_DRAIN_SECONDS = 2.0  # an event later than this already failed the p99 < 1 s test
CONSUMER_TIMEOUT_SECONDS = 60.0
RESET_ATTEMPTS = 10
PIPELINE_CPU = {"paysync": ("ingest", "worker"), "naive": ("receiver", "consumer")}


@dataclass(frozen=True, slots=True)
class Search:
    """One run's search: the highest holding rate, its run, every rate tried."""

    rate: float | None
    run: Run | None
    tried: list[tuple[float, float | None, bool]] = field(default_factory=list)

    def cpu_per_thousand(self, names: tuple[str, ...] | None, seconds: float) -> float | None:
        """CPU seconds per 1,000 events at the holding rate: of ``names`` (None: all)."""
        if self.run is None or not self.run.answered:
            return None
        shares = self.run.cpu_percent
        picked = [
            v
            for k, v in shares.items()
            if (names is None and k != "loadgen") or (names and k in names)
        ]
        if not picked or any(v is None for v in picked):
            return None
        used = sum(v for v in picked if v is not None) / 100 * seconds
        return 1000 * used / self.run.answered


@dataclass(frozen=True, slots=True)
class Result:
    duration: float
    searches: dict[str, list[Search]]
    half_rate: float
    half: dict[str, list[Run]]

    def sustained(self) -> dict[str, float | None]:
        return {side: median([s.rate for s in self.searches[side]]) for side in SIDES}

    def cpu(self, everything: bool) -> dict[str, float | None]:
        return {
            side: median(
                [
                    s.cpu_per_thousand(None if everything else PIPELINE_CPU[side], self.duration)
                    for s in self.searches[side]
                ]
            )
            for side in SIDES
        }

    def half_p99(self) -> dict[str, float | None]:
        return {side: median([r.p99_ms for r in self.half[side]]) for side in SIDES}

    def targets(self) -> list[Target]:
        rates, cpu, p99 = self.sustained(), self.cpu(everything=True), self.half_p99()
        times = ratio(rates["paysync"], rates["naive"])
        fewer = None
        if cpu["paysync"] is not None and cpu["naive"] is not None:
            fewer = cpu["paysync"] < cpu["naive"]
        return [
            Target(
                label=f"pipeline sustained events/s (p99 < 1 s) >= {TARGET_RATIO:g} x naive",
                figure=f"{num(times, '.2f')} x ({num(rates['paysync'])} vs {num(rates['naive'])})",
                met=at_least(times, TARGET_RATIO),
            ),
            Target(
                label="pipeline CPU s per 1,000 events (all processes) < naive's",
                figure=f"{num(cpu['paysync'], '.2f')} vs {num(cpu['naive'], '.2f')}",
                met=fewer,
            ),
            Target(
                label=f"end-to-end p99 < {TARGET_HALF_P99_MS:g} ms at half the pipeline's"
                f" sustained max ({self.half_rate:.0f} callbacks/s)",
                figure=f"{_ms(p99['paysync'])} ms",
                met=below(p99["paysync"], TARGET_HALF_P99_MS),
            ),
        ]

    def as_json(self) -> dict[str, Any]:
        def search_json(s: Search) -> dict[str, Any]:
            return {
                "rate": s.rate,
                "run": None if s.run is None else _finite(dataclasses.asdict(s.run)),
                "tried": [
                    {"rate": r, "p99_ms": _finite_value(p), "held": ok} for r, p, ok in s.tried
                ],
            }

        return {
            "searches": {side: [search_json(s) for s in self.searches[side]] for side in SIDES},
            "sustained_events_per_second": self.sustained(),
            "cpu_seconds_per_1000_events_pipeline": self.cpu(everything=False),
            "cpu_seconds_per_1000_events_all": self.cpu(everything=True),
            "half_load": {
                "offered_callbacks_per_second": self.half_rate,
                "runs": {s: [_finite(dataclasses.asdict(r)) for r in self.half[s]] for s in SIDES},
                "p99_ms": {s: _finite_value(v) for s, v in self.half_p99().items()},
            },
            "targets": [t.as_json() for t in self.targets()],
        }


Measure = Callable[[float, bool], Awaitable[Run]]


def naive_ref(body: bytes) -> str:
    ref: str = orjson.loads(body)["merchant_ref"]
    return ref


def holds(run: Run, p99_ms: float) -> bool:
    return run.errors == 0 and run.p99_ms is not None and run.p99_ms < p99_ms


async def search(measure_at: Measure, start: float, steps: int, p99_ms: float) -> Search:
    held: tuple[float, Run] | None = None
    failed: float | None = None
    rate = start
    tried: list[tuple[float, float | None, bool]] = []
    for _ in range(steps):
        run = await measure_at(rate, True)
        ok = holds(run, p99_ms)
        tried.append((rate, run.p99_ms, ok))
        if ok:
            held = (rate, run)
            rate = rate * GROWTH if failed is None else math.sqrt(rate * failed)
        else:
            failed = rate
            rate = rate / GROWTH if held is None else math.sqrt(held[0] * rate)
    return Search(rate=held[0] if held else None, run=held[1] if held else None, tried=tried)


async def run_pair(ctx: Context, baseline: ServerProcess) -> Result:
    naive_queries = load_queries(QUERIES_PATH)
    async with AsyncExitStack() as stack:
        ingest = await stack.enter_async_context(paysync_ingest(ctx.spec, "ingest-pipeline", 1))
        worker = await roles.start(
            "worker",
            ctx.config("worker-pipeline"),
            ctx.secrets,
            ctx.spec.log_dir,
            label="worker-pipeline",
        )
        stack.push_async_callback(worker.stop)
        consumer = await _start_naive(ctx)
        stack.push_async_callback(consumer.stop)
        await _consuming(ctx, Topology(prefix=ctx.spec.prefix).inbound_queue, worker)
        await _consuming(ctx, baseline_name(ctx.spec.prefix), consumer)
        sides: dict[str, tuple[ServerProcess, str, RefOf, dict[str, int]]] = {
            "paysync": (
                ingest,
                events_queue(ctx.spec.prefix),
                event_ref,
                {"ingest": ingest.proc.pid, "worker": worker.pid},
            ),
            "naive": (
                baseline,
                naive_events(ctx.spec.prefix),
                naive_ref,
                {"receiver": baseline.proc.pid, "consumer": consumer.pid},
            ),
        }

        def measurer(side: str) -> Measure:
            server, queue, ref_of, pids = sides[side]

            async def at(rate: float, step: bool) -> Run:
                worker.check_alive()
                consumer.check_alive()
                await _reset(ctx, naive_queries["reset"])
                readers = process_readers(pids, ctx.spec.broker_pid)
                readers["loadgen"] = time.process_time
                drain = STEP_DRAIN_SECONDS if step else ctx.params.e2e_drain_seconds
                here = dataclasses.replace(
                    ctx, params=dataclasses.replace(ctx.params, e2e_drain_seconds=drain)
                )
                return await measure(here, server, queue, ref_of, rate, readers)

            return at

        p = ctx.params
        searches: dict[str, list[Search]] = {side: [] for side in SIDES}
        for n in range(1, p.runs + 1):
            for side in SIDES:
                last = searches[side][-1].rate if searches[side] else None
                found = await search(
                    measurer(side),
                    last or p.pipeline_start_rate,
                    p.pipeline_steps,
                    p.pipeline_p99_ms,
                )
                searches[side].append(found)
                _progress(f"pipeline search run {n}/{p.runs} {side}", found)
        rates = [s.rate for s in searches["paysync"]]
        half_rate = max(0.5 * (median(list(rates)) or 0.0), 1.0)
        half: dict[str, list[Run]] = {side: [] for side in SIDES}
        for n in range(1, p.runs + 1):
            for side in SIDES:
                run = await measurer(side)(half_rate, False)
                half[side].append(run)
                print(
                    f"# pipeline half load {half_rate:.0f}/s run {n}/{p.runs} {side}:"
                    f" p50 {_ms(run.p50_ms)} ms, p99 {_ms(run.p99_ms)} ms,"
                    f" {run.delivered}/{run.answered} arrived",
                    file=sys.stderr,
                    flush=True,
                )
        for role, side, pid in (
            ("ingest", "paysync", ingest.proc.pid),
            ("worker", "paysync", worker.pid),
            ("consumer", "naive", consumer.pid),
        ):
            ctx.recorder.note(role, side, pid, "pipeline")
    return Result(duration=p.duration, searches=searches, half_rate=half_rate, half=half)


async def _reset(ctx: Context, naive_reset: str) -> None:
    """Empty the queues, then both sides' tables. A worker still applying the messages
    it had prefetched (after a rate that did not hold) may deadlock with the TRUNCATE:
    Postgres aborts one of the two; the worker retries its own, this retries the reset."""
    await rabbit.purge(ctx.spec.amqp_url, ctx.spec.prefix)
    for attempt in range(RESET_ATTEMPTS):
        try:
            await ctx.db.reset()
            conn = await ctx.db.connect()
            try:
                await conn.execute(naive_reset)
            finally:
                await conn.close()
            return
        except asyncpg.DeadlockDetectedError:
            if attempt == RESET_ATTEMPTS - 1:
                raise
            await asyncio.sleep(0.5)


async def _start_naive(ctx: Context) -> roles.Role:
    log_path = ctx.spec.log_dir / "naive-consumer.log"
    argv = [sys.executable, "-m", "bench.naive", "--prefix", ctx.spec.prefix]
    argv += ["--amqp-url", ctx.spec.amqp_url, "--database-url", ctx.db.url]
    with log_path.open("ab") as log_file:
        proc = await asyncio.create_subprocess_exec(
            *argv,
            cwd=PROJECT_ROOT,
            stdin=asyncio.subprocess.DEVNULL,
            stdout=log_file,
            stderr=asyncio.subprocess.STDOUT,
        )
    return roles.Role(name="naive consumer", proc=proc, log_path=log_path)


async def _consuming(ctx: Context, queue: str, role: roles.Role) -> None:
    deadline = time.monotonic() + CONSUMER_TIMEOUT_SECONDS
    while await rabbit.consumer_count(ctx.spec.amqp_url, queue) < 1:
        role.check_alive()
        if time.monotonic() > deadline:
            raise RuntimeError(f"{role.name} did not consume {queue} in time")
        await asyncio.sleep(0.2)


def _ms(value: float | None) -> str:
    return "lost" if value is not None and math.isinf(value) else num(value)


def _finite_value(value: float | None) -> float | None:
    return None if value is None or math.isinf(value) else value


def _finite(doc: dict[str, Any]) -> dict[str, Any]:
    return {k: _finite_value(v) if isinstance(v, float) else v for k, v in doc.items()}


def _progress(label: str, found: Search) -> None:
    steps = ", ".join(f"{r:.0f}/s {'ok' if ok else 'no'} ({_ms(p)} ms)" for r, p, ok in found.tried)
    print(f"# {label}: {num(found.rate)} events/s [{steps}]", file=sys.stderr, flush=True)


def render(result: Result) -> list[str]:
    rates, pipe, everything = result.sustained(), result.cpu(False), result.cpu(True)
    lines = [
        "whole pipeline: paysync (ingest + worker + relay) vs naive (bare receiver -> queue ->"
        " consumer, one transaction per event, publish after commit)",
        f"{'run':<4}{'side':<9}{'events/s':>10}{'p99 ms':>9}{'CPU s/1k: pipeline':>20}{'all':>7}"
        "  rates tried",
    ]
    for i in range(len(result.searches[SIDES[0]])):
        for side in SIDES:
            s = result.searches[side][i]
            tried = " ".join(f"{r:.0f}{'+' if ok else '-'}" for r, _, ok in s.tried)
            p99 = None if s.run is None else s.run.p99_ms
            lines.append(
                f"{i + 1:<4}{side:<9}{num(s.rate):>10}{_ms(p99):>9}"
                f"{num(s.cpu_per_thousand(PIPELINE_CPU[side], result.duration), '.2f'):>20}"
                f"{num(s.cpu_per_thousand(None, result.duration), '.2f'):>7}  {tried}"
            )
    lines.append(
        f"median sustained events/s: paysync {num(rates['paysync'])}, naive {num(rates['naive'])}"
        f" ({num(ratio(rates['paysync'], rates['naive']), '.2f')} x); CPU s per 1,000 events:"
        f" pipeline {num(pipe['paysync'], '.2f')} vs {num(pipe['naive'], '.2f')}, all"
        f" {num(everything['paysync'], '.2f')} vs {num(everything['naive'], '.2f')}"
    )
    half = result.half_p99()
    lines.append(
        f"at half of paysync's sustained max ({result.half_rate:.0f} callbacks/s): p99"
        f" paysync {_ms(half['paysync'])} ms, naive {_ms(half['naive'])} ms (runs: "
        + ", ".join(f"{_ms(r.p99_ms)}" for r in result.half["paysync"])
        + ")"
    )
    return lines
