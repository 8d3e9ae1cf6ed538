"""Pair 1: paysync ingest for CCPayment versus the bare baseline receiver.

Both servers run in child processes of their own and are loaded alternately (paysync,
baseline, paysync, baseline, ...) by the closed-loop generator, so machine noise falls on
both sides. Then both are loaded open-loop, again alternately, at half of paysync's
median maximum throughput: paysync's p99 there is the target, the baseline's at the same
rate is the control that tells a broker or disk stall from one of paysync's own. The
broker queues are purged before every run.
"""

from __future__ import annotations

import asyncio
import math
import sys
from collections.abc import Awaitable, Callable
from dataclasses import dataclass

from bench import cpu, rabbit
from bench.config import Params
from bench.load import (
    Figures,
    ccpayment_requests,
    closed_loop,
    median,
    open_loop,
    summarise,
)
from bench.servers import ServerProcess, ServerSpec

NAME = "ingest_ccpayment"
SIDES = ("paysync", "baseline")
METRICS = ("requests_per_second", "p50_ms", "p99_ms", "server_cpu_us_per_request")
HALF = 0.5
TARGET_THROUGHPUT_RATIO = 0.9  # paysync req/s >= 0.9 x baseline req/s
TARGET_HALF_LOAD_P99_MS = 50.0  # paysync p99 < 50 ms at half of its maximum

Runs = dict[str, list[Figures]]
Table = dict[str, dict[str, float | None]]
Measure = Callable[[ServerProcess], Awaitable[Figures]]


@dataclass(frozen=True, slots=True)
class PairResult:
    runs: Runs  # closed loop, maximum throughput
    half_load_rate: float
    half_load: Runs  # open loop at half_load_rate


@dataclass(frozen=True, slots=True)
class Summary:
    medians: Table
    ratios: dict[str, float | None]
    half_load_medians: Table
    half_load_ratios: dict[str, float | None]
    throughput_target_met: bool | None
    half_load_target_met: bool | None


async def run_pair(
    params: Params, spec: ServerSpec, servers: dict[str, ServerProcess]
) -> PairResult:
    async def at_max(server: ServerProcess) -> Figures:
        return await measure_max(params, spec, server)

    runs = await alternate(params.runs, servers, at_max, "max")
    rate = HALF * (median([f.requests_per_second for f in runs["paysync"]]) or 0.0)
    if rate <= 0:
        return PairResult(runs=runs, half_load_rate=0.0, half_load={s: [] for s in SIDES})

    async def at_half(server: ServerProcess) -> Figures:
        return await measure_at_rate(params, spec, server, rate)

    half = await alternate(params.runs, servers, at_half, f"half load {rate:.0f} req/s")
    return PairResult(runs=runs, half_load_rate=rate, half_load=half)


async def alternate(
    rounds: int, servers: dict[str, ServerProcess], measure: Measure, label: str
) -> Runs:
    """paysync, baseline, paysync, baseline, ...: ``rounds`` runs per side."""
    runs: Runs = {side: [] for side in SIDES}
    for n in range(1, rounds + 1):
        for side in SIDES:
            figures = await measure(servers[side])
            runs[side].append(figures)
            progress(f"{label} run {n}/{rounds} {side}", figures)
    return runs


async def measure_max(params: Params, spec: ServerSpec, server: ServerProcess) -> Figures:
    """Closed loop at ``params.concurrency``: the side's maximum throughput."""
    requests = ccpayment_requests(params.max_requests, spec.secret)
    await settle(params, spec)
    window = await closed_loop(
        server.callback_url,
        requests,
        concurrency=params.concurrency,
        warmup=params.warmup,
        duration=params.duration,
        cpu=cpu.readers(server.proc.pid, spec.broker_pid),
    )
    return summarise(window)


async def measure_at_rate(
    params: Params, spec: ServerSpec, server: ServerProcess, rate: float
) -> Figures:
    """Open loop at ``rate`` requests per second."""
    count = math.ceil(rate * (params.warmup + params.half_load_duration)) + 1
    requests = ccpayment_requests(count, spec.secret)
    await settle(params, spec)
    window = await open_loop(
        server.callback_url,
        requests,
        rate=rate,
        warmup=params.warmup,
        duration=params.half_load_duration,
        cpu=cpu.readers(server.proc.pid, spec.broker_pid),
    )
    return summarise(window)


async def settle(params: Params, spec: ServerSpec) -> None:
    """Start every run with empty queues and a broker that has caught its breath."""
    await rabbit.purge(spec.amqp_url, spec.prefix)
    await asyncio.sleep(params.settle_seconds)


def summarise_pair(pair: PairResult) -> Summary:
    medians, ratios = medians_and_ratios(pair.runs)
    half_medians, half_ratios = medians_and_ratios(pair.half_load)
    throughput = ratios["requests_per_second"]
    half_p99 = half_medians["paysync"]["p99_ms"]
    return Summary(
        medians=medians,
        ratios=ratios,
        half_load_medians=half_medians,
        half_load_ratios=half_ratios,
        throughput_target_met=None if throughput is None else throughput >= TARGET_THROUGHPUT_RATIO,
        half_load_target_met=None if half_p99 is None else half_p99 < TARGET_HALF_LOAD_P99_MS,
    )


def medians_and_ratios(runs: Runs) -> tuple[Table, dict[str, float | None]]:
    """Per side, the median of each metric over its runs; then paysync / baseline."""
    medians = {
        side: {m: median([getattr(f, m) for f in runs[side]]) for m in METRICS} for side in SIDES
    }
    ratios = {m: _ratio(medians["paysync"][m], medians["baseline"][m]) for m in METRICS}
    return medians, ratios


def _ratio(numerator: float | None, denominator: float | None) -> float | None:
    if numerator is None or not denominator:
        return None
    return numerator / denominator


def progress(label: str, figures: Figures) -> None:
    def ms(value: float | None) -> str:
        return "-" if value is None else f"{value:.1f}"

    print(
        f"# {label}: {figures.requests_per_second:.0f} req/s, p50 {ms(figures.p50_ms)} ms,"
        f" p99 {ms(figures.p99_ms)} ms, max {ms(figures.max_ms)} ms, errors {figures.errors}",
        file=sys.stderr,
        flush=True,
    )
