"""Pair 1b: ``paysync ingest`` with ``ingest.processes = N`` (2) against one process.

Both sides are the real console script (``paysync --config FILE ingest``; the callback
path never opens its lazy database pool), loaded closed loop like pair 1's maximum
throughput, alternately. The figure is the ratio of median req/s, N processes over one:
what the extra processes buy on this machine, where the load generator and RabbitMQ share
its cores with them.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from contextlib import AsyncExitStack, asynccontextmanager
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from bench import cpu, roles, rss
from bench.config import SECRET_ENV, UNUSED_DATABASE_URL, Params, free_port
from bench.ingest import measure_max, progress
from bench.load import Figures, median
from bench.servers import ServerProcess, ServerSpec
from bench.targets import Target, at_least, num, pct, ratio

NAME = "ingest_processes"
TARGET_RATIO = 1.6  # N processes >= 1.6 x one, for N = 2


def ingest_config(spec: ServerSpec, path: Path, *, port: int, processes: int) -> Path:
    """A configuration for ``paysync ingest`` on ``port`` with ``processes``."""
    return roles.write_config(
        path,
        database_url=UNUSED_DATABASE_URL,
        prefix=spec.prefix,
        amqp_url=spec.amqp_url,
        log_level=spec.log_level,
        extra=f'\n[ingest]\nhost = "127.0.0.1"\nport = {port}\nprocesses = {processes}\n',
    )


@asynccontextmanager
async def paysync_ingest(
    spec: ServerSpec, label: str, processes: int
) -> AsyncIterator[ServerProcess]:
    """``paysync ingest`` as a child, ready (every one of its processes, when several)."""
    port = free_port()
    config = ingest_config(spec, spec.log_dir / f"{label}.toml", port=port, processes=processes)
    role = await roles.start("ingest", config, {SECRET_ENV: spec.secret}, spec.log_dir, label=label)
    server = ServerProcess(kind=label, port=port, proc=role.proc, log_path=role.log_path)
    try:
        await server.wait_ready()
        if processes > 1:
            await _all_children(server, processes)
        yield server
    finally:
        await role.stop()


async def _all_children(server: ServerProcess, processes: int) -> None:
    """Wait until the supervisor runs every child. Each joins the port once its broker
    link is up (within the warm-up of the first run: the first child was ready)."""
    for _ in range(100):
        if len(cpu.children_of(server.proc.pid)) >= processes:
            return
        await asyncio.sleep(0.1)
    raise RuntimeError(f"{server.kind}: fewer than {processes} ingest processes")


@dataclass(frozen=True, slots=True)
class Result:
    processes: int
    runs: dict[str, list[Figures]]

    def medians(self) -> dict[str, float | None]:
        return {
            side: median([f.requests_per_second for f in runs]) for side, runs in self.runs.items()
        }

    def ratio(self) -> float | None:
        m = self.medians()
        return ratio(m[f"x{self.processes}"], m["x1"])

    def targets(self) -> list[Target]:
        value = self.ratio()
        return [
            Target(
                label=f"ingest with {self.processes} processes >= {TARGET_RATIO:g} x one"
                " (req/s, paysync ingest)",
                figure=f"{num(value, '.2f')} x",
                met=at_least(value, TARGET_RATIO),
            )
        ]

    def as_json(self) -> dict[str, Any]:
        return {
            "processes": self.processes,
            "runs": {side: [asdict(f) for f in runs] for side, runs in self.runs.items()},
            "medians_requests_per_second": self.medians(),
            "ratio": self.ratio(),
            "targets": [t.as_json() for t in self.targets()],
        }


async def run_pair(params: Params, spec: ServerSpec) -> tuple[Result, dict[str, int]]:
    """The result, and the peak RSS (KiB) of the one ingest process and the children."""
    n = params.ingest_processes
    sides = {"x1": 1, f"x{n}": n}
    runs: dict[str, list[Figures]] = {side: [] for side in sides}
    async with AsyncExitStack() as stack:
        servers = {
            side: await stack.enter_async_context(paysync_ingest(spec, f"ingest-{side}", count))
            for side, count in sides.items()
        }
        for k in range(1, params.runs + 1):
            for side, server in servers.items():
                figures = await measure_max(params, spec, server)
                runs[side].append(figures)
                progress(f"ingest processes run {k}/{params.runs} {side}", figures)
        peaks = _peaks(servers)
    return Result(processes=n, runs=runs), peaks


def _peaks(servers: dict[str, ServerProcess]) -> dict[str, int]:
    found: dict[str, int] = {}
    for side, server in servers.items():
        pids = [server.proc.pid, *cpu.children_of(server.proc.pid)]
        found[side] = max((rss.vm_hwm_kib(pid) or 0) for pid in pids)
    return found


def render(result: Result) -> list[str]:
    lines = [
        f"ingest processes: paysync ingest with ingest.processes = {result.processes} vs 1"
        " (closed loop, as pair 1's maximum)",
        f"{'run':<4}{'side':<6}{'req/s':>9}{'p50 ms':>9}{'p99 ms':>9}{'errors':>8}"
        f"{'CPU: server':>13}{'broker':>8}{'loadgen':>9}",
    ]
    sides = list(result.runs)
    for i in range(len(result.runs[sides[0]])):
        for side in sides:
            f = result.runs[side][i]
            c = f.cpu_percent
            lines.append(
                f"{i + 1:<4}{side:<6}{f.requests_per_second:>9.1f}{num(f.p50_ms):>9}"
                f"{num(f.p99_ms):>9}{f.errors:>8}{pct(c.get('server')):>13}"
                f"{pct(c.get('broker')):>8}{pct(c.get('loadgen')):>9}"
            )
    m = result.medians()
    lines.append(
        "median req/s: "
        + ", ".join(f"{side} {num(v)}" for side, v in m.items())
        + f"; ratio {num(result.ratio(), '.2f')}"
    )
    return lines
