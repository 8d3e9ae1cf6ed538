"""Pair 1's part of the output: its tables, its JSON and its targets."""

from __future__ import annotations

import dataclasses
from typing import Any

from bench.config import Params
from bench.ingest import (
    METRICS,
    SIDES,
    TARGET_HALF_LOAD_P99_MS,
    TARGET_THROUGHPUT_RATIO,
    PairResult,
    Runs,
    Summary,
    Table,
)
from bench.load import Figures
from bench.targets import Target, num, pct

LABELS = {
    "requests_per_second": "req/s",
    "p50_ms": "p50 ms",
    "p99_ms": "p99 ms",
    "server_cpu_us_per_request": "CPU us/req",
}


def as_json(pair: PairResult, summary: Summary) -> dict[str, Any]:
    return {
        "runs": _raw(pair.runs),
        "medians": summary.medians,
        "ratios_paysync_over_baseline": summary.ratios,
        "half_load": {
            "offered_requests_per_second": pair.half_load_rate,
            "runs": _raw(pair.half_load),
            "medians": summary.half_load_medians,
            "ratios_paysync_over_baseline": summary.half_load_ratios,
        },
        "targets": {
            "throughput_ratio_min": TARGET_THROUGHPUT_RATIO,
            "throughput_met": summary.throughput_target_met,
            "half_load_p99_ms_max": TARGET_HALF_LOAD_P99_MS,
            "half_load_met": summary.half_load_target_met,
        },
    }


def _raw(runs: Runs) -> dict[str, list[dict[str, Any]]]:
    return {side: [dataclasses.asdict(f) for f in runs[side]] for side in SIDES}


def render(params: Params, pair: PairResult, summary: Summary) -> list[str]:
    return [
        "paysync ingest vs baseline: signed CCPayment callbacks, confirmed quorum publish",
        "",
        f"maximum throughput: closed loop, concurrency {params.concurrency},"
        f" warm-up {params.warmup:g} s, window {params.duration:g} s,"
        f" {params.runs} runs per side, alternating",
        *_runs_table(pair.runs),
        "",
        *_medians_table(summary.medians, summary.ratios),
        "",
        f"half load: open loop at {pair.half_load_rate:.1f} req/s (0.5 x paysync's median"
        f" max) for both sides, window {params.half_load_duration:g} s",
        *_runs_table(pair.half_load),
        "",
        *_medians_table(summary.half_load_medians, summary.half_load_ratios),
    ]


def _runs_table(runs: Runs) -> list[str]:
    lines = [
        f"{'run':<4}{'side':<10}{'req/s':>9}{'p50 ms':>9}{'p99 ms':>9}{'max ms':>9}{'ok':>8}"
        f"{'errors':>8}{'CPU us/req':>12}{'CPU: server':>13}{'broker':>8}{'loadgen':>9}"
    ]
    for i in range(len(runs[SIDES[0]])):
        for side in SIDES:
            lines.append(f"{i + 1:<4}{side:<10}{_figures_row(runs[side][i])}")
    return lines


def _figures_row(f: Figures) -> str:
    capped = "  (capped)" if f.capped else ""
    return (
        f"{f.requests_per_second:>9.1f}{num(f.p50_ms):>9}{num(f.p99_ms):>9}"
        f"{num(f.max_ms):>9}{f.ok:>8}{f.errors:>8}"
        f"{num(f.server_cpu_us_per_request, '.0f'):>12}"
        f"{pct(f.cpu_percent.get('server')):>13}"
        f"{pct(f.cpu_percent.get('broker')):>8}{pct(f.cpu_percent.get('loadgen')):>9}{capped}"
    )


def _medians_table(medians: Table, ratios: dict[str, float | None]) -> list[str]:
    lines = [f"{'median':<12}{'paysync':>10}{'baseline':>10}{'paysync/baseline':>18}"]
    for metric in METRICS:
        p, b = medians["paysync"][metric], medians["baseline"][metric]
        lines.append(
            f"{LABELS[metric]:<12}{num(p):>10}{num(b):>10}{num(ratios[metric], '.2f'):>18}"
        )
    return lines


def targets(summary: Summary) -> list[Target]:
    ratio = summary.ratios["requests_per_second"]
    p99 = summary.half_load_medians["paysync"]["p99_ms"]
    return [
        Target(
            label=f"ingest max req/s >= {TARGET_THROUGHPUT_RATIO:g} x baseline's",
            figure=num(ratio, ".2f"),
            met=summary.throughput_target_met,
        ),
        Target(
            label=f"ingest p99 < {TARGET_HALF_LOAD_P99_MS:g} ms at half of its max",
            figure=f"{num(p99)} ms",
            met=summary.half_load_target_met,
        ),
    ]


def errors_seen(pair: PairResult) -> list[str]:
    """One line per run that had non-200 answers or transport errors (status 0)."""
    phases = {"max": pair.runs, "half load": pair.half_load}
    return [
        f"warning: {phase} run {i + 1} {side}: {f.errors} errors {f.error_statuses}"
        for phase, runs in phases.items()
        for side in SIDES
        for i, f in enumerate(runs[side])
        if f.errors
    ]
