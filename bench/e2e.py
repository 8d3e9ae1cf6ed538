"""Pair 3: callback → event latency through the whole of paysync, against the bare hop.

- **paysync**: pair 1's ingest server and a ``paysync worker`` child (consumer, store,
  outbox relay) on the benchmark database; the events arrive on a quorum queue bound to
  ``paysync.events``, consumed by the benchmark. Latency = the event's arrival -
  the callback's *scheduled* send time, matched by merchant ref.
- **baseline** (the control): pair 1's bare receiver, which publishes the body with a
  confirm to a quorum queue, consumed by the benchmark the same way: one confirmed,
  persistent hop with nothing added. There is no bare "same path" without paysync (no
  database, no fold, no outbox, no second hop), so this is the floor the broker sets.

Both sides get the same open-loop rate: half of paysync ingest's maximum (pair 1's median
from this run); and when the worker's maximum (pair 2) is below ingest's, also half of the
worker's: half of what the whole path can carry. Sides alternate; queues are purged
before every run. The measuring itself is ``bench/arrivals.py``.
"""

from __future__ import annotations

import asyncio
import math
import sys
import time
from collections.abc import Mapping
from dataclasses import asdict, dataclass, replace
from typing import Any

from bench import rabbit, roles
from bench.arrivals import STAGES, RefOf, Run, event_ref, measure, webhook_ref
from bench.config import baseline_name, events_queue
from bench.context import Context
from bench.cpu import process_readers
from bench.load import median
from bench.servers import ServerProcess
from bench.targets import Target, below, num, pct, ratio
from paysync.amqp import Topology

NAME = "end_to_end"
SIDES = ("paysync", "baseline")
TARGET_P99_MS = 100.0
CONSUMER_TIMEOUT_SECONDS = 60.0

clock = time.perf_counter


@dataclass(frozen=True, slots=True)
class Point:
    """One offered rate, measured on both sides."""

    label: str
    rate: float
    runs: dict[str, list[Run]]

    def medians(self) -> dict[str, dict[str, float | None]]:
        return {
            side: {
                m: median([getattr(r, m) for r in self.runs[side]]) for m in ("p50_ms", "p99_ms")
            }
            for side in SIDES
        }

    def target(self) -> Target:
        p99 = self.medians()["paysync"]["p99_ms"]
        return Target(
            label=f"end-to-end p99 < {TARGET_P99_MS:g} ms at {self.label}"
            f" ({self.rate:.0f} callbacks/s)",
            figure=f"{_ms(p99)} ms",
            met=below(p99, TARGET_P99_MS),
        )

    def as_json(self) -> dict[str, Any]:
        m = self.medians()
        return {
            "label": self.label,
            "offered_callbacks_per_second": self.rate,
            "runs": {side: [_finite(asdict(r)) for r in self.runs[side]] for side in SIDES},
            "medians": {side: _finite(m[side]) for side in SIDES},
            "ratio_p99_paysync_over_baseline": _finite_value(
                ratio(m["paysync"]["p99_ms"], m["baseline"]["p99_ms"])
            ),
            "target": self.target().as_json(),
        }


@dataclass(frozen=True, slots=True)
class Result:
    worker_max: float | None  # pair 2's paysync median, when it ran
    points: list[Point]

    def targets(self) -> list[Target]:
        return [p.target() for p in self.points]

    def as_json(self) -> dict[str, Any]:
        return {
            "worker_max_messages_per_second": self.worker_max,
            "points": [p.as_json() for p in self.points],
        }


def rates(ingest_half: float, worker_max: float | None) -> list[tuple[str, float]]:
    """Half of ingest's maximum (the issue's load); and, when the worker is the slower
    part, half of *its* maximum too: half of what the whole path can carry."""
    found = [("half of ingest's max", ingest_half)]
    if worker_max is not None and 0 < worker_max < 2 * ingest_half:
        found.append(("half of the worker's max", worker_max / 2))
    return found


async def run_pair(
    ctx: Context, servers: Mapping[str, ServerProcess], ingest_half: float, worker_max: float | None
) -> Result:
    await ctx.db.reset()
    await rabbit.purge(ctx.spec.amqp_url, ctx.spec.prefix)
    config = ctx.config("worker-pair3")
    worker = await roles.start(
        "worker", config, ctx.secrets, ctx.spec.log_dir, label="worker-pair3"
    )
    try:
        await _consuming(ctx, worker)
        sides: dict[str, tuple[str, RefOf, dict[str, int]]] = {
            "paysync": (
                events_queue(ctx.spec.prefix),
                event_ref,
                {"ingest": servers["paysync"].proc.pid, "worker": worker.pid},
            ),
            "baseline": (
                baseline_name(ctx.spec.prefix),
                webhook_ref,
                {"ingest": servers["baseline"].proc.pid},
            ),
        }
        points = []
        for label, rate in rates(ingest_half, worker_max):
            runs: dict[str, list[Run]] = {side: [] for side in SIDES}
            for n in range(1, ctx.params.runs + 1):
                for side in SIDES:
                    queue, ref_of, pids = sides[side]
                    worker.check_alive()
                    readers = process_readers(pids, ctx.spec.broker_pid)
                    readers["loadgen"] = time.process_time  # sender + event consumer
                    if side == "paysync":
                        await ctx.db.reset()
                    run = await measure(ctx, servers[side], queue, ref_of, rate, readers)
                    if side == "paysync":
                        run = replace(run, stages_ms=await _stages(ctx))
                    runs[side].append(run)
                    progress(f"end-to-end {rate:.0f}/s run {n}/{ctx.params.runs} {side}", run)
            points.append(Point(label=label, rate=rate, runs=runs))
        ctx.recorder.note("worker", "paysync", worker.pid, "pair 3")
    finally:
        await worker.stop()
    return Result(worker_max=worker_max, points=points)


async def _stages(ctx: Context) -> dict[str, float | None]:
    conn = await ctx.db.connect()
    try:
        queued = await conn.fetchval(ctx.db.queries["queue_wait"])
        relay = await conn.fetchval(ctx.db.queries["relay_wait"])
    finally:
        await conn.close()
    values = [*(queued or [None, None]), *(relay or [None, None])]
    return {k: None if v is None else 1000 * v for k, v in zip(STAGES, values, strict=True)}


async def _consuming(ctx: Context, worker: roles.Role) -> None:
    """Wait until the worker consumes ``paysync.inbound``."""
    inbound = Topology(prefix=ctx.spec.prefix).inbound_queue
    deadline = clock() + CONSUMER_TIMEOUT_SECONDS
    while await rabbit.consumer_count(ctx.spec.amqp_url, inbound) < 1:
        worker.check_alive()
        if clock() > deadline:
            raise RuntimeError(f"the worker did not consume within {CONSUMER_TIMEOUT_SECONDS} s")
        await asyncio.sleep(0.2)


def _ms(value: float | None) -> str:
    if value is not None and math.isinf(value):
        return "lost"
    return num(value)


def _finite_value(value: float | None) -> float | None:
    return None if value is None or math.isinf(value) else value


def _finite(doc: dict[str, Any]) -> dict[str, Any]:
    return {k: _finite_value(v) if isinstance(v, float) else v for k, v in doc.items()}


def render(result: Result) -> list[str]:
    lines = [
        "end to end: callback -> event (open loop, same rate for both sides); baseline: bare"
        " receiver -> quorum queue -> consumer"
    ]
    for point in result.points:
        lines += ["", *_render_point(point)]
    worker_max = result.worker_max
    if worker_max is not None and any(p.rate > worker_max for p in result.points):
        lines.append(
            f"note: an offered rate above the worker's measured maximum ({worker_max:.0f} msg/s,"
            " pair 2) makes the queue grow for the whole window: the latency there measures"
            " that backlog"
        )
    return lines


def _render_point(point: Point) -> list[str]:
    lines = [
        f"at {point.label}: {point.rate:.1f} callbacks/s",
        f"{'run':<4}{'side':<10}{'sent':>7}{'200':>7}{'arrived':>9}{'errors':>8}{'p50 ms':>9}"
        f"{'p99 ms':>9}{'max ms':>9}{'CPU: ingest':>13}{'worker':>8}{'postgres':>10}{'broker':>8}"
        f"{'loadgen':>9}",
    ]
    for i in range(len(point.runs[SIDES[0]])):
        for side in SIDES:
            r = point.runs[side][i]
            c = r.cpu_percent
            lines.append(
                f"{i + 1:<4}{side:<10}{r.sent:>7}{r.answered:>7}{r.delivered:>9}{r.errors:>8}"
                f"{_ms(r.p50_ms):>9}{_ms(r.p99_ms):>9}{_ms(r.max_ms):>9}"
                f"{pct(c.get('ingest')):>13}{pct(c.get('worker')):>8}"
                f"{pct(c.get('postgres')):>10}{pct(c.get('broker')):>8}{pct(c.get('loadgen')):>9}"
            )
    m = point.medians()
    lines.append(f"{'median':<12}{'paysync':>10}{'baseline':>10}{'paysync/baseline':>18}")
    for metric, label in (("p50_ms", "p50 ms"), ("p99_ms", "p99 ms")):
        p, b = m["paysync"][metric], m["baseline"][metric]
        times = _finite_value(ratio(p, b))
        lines.append(f"{label:<12}{_ms(p):>10}{_ms(b):>10}{num(times, '.2f'):>18}")
    stage = {k: median([r.stages_ms.get(k) for r in point.runs["paysync"]]) for k in STAGES}
    lines.append(
        f"paysync stages (median of runs): queued (ingest -> worker) p50 {num(stage['queued_p50'])}"
        f" / p99 {num(stage['queued_p99'])} ms; relay (outbox row -> relay) p50"
        f" {num(stage['relay_p50'])} / p99 {num(stage['relay_p99'])} ms"
    )
    return lines


def progress(label: str, run: Run) -> None:
    print(
        f"# {label}: p50 {_ms(run.p50_ms)} ms, p99 {_ms(run.p99_ms)} ms,"
        f" {run.delivered}/{run.answered} arrived, errors {run.errors}",
        file=sys.stderr,
        flush=True,
    )
