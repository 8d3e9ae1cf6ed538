"""``python -m bench``: run the benchmark pairs, print a table, write bench/results/*.json.

Pairs (see ``bench/README.md``): 1 ingest vs a bare receiver, 2 the worker vs raw asyncpg,
3 callback → event latency vs one bare confirmed hop, 4 the reconciler vs its limits'
bound, 5 peak RSS of each role. Needs RabbitMQ (``--amqp-url``) and, for pairs 2-4,
Postgres (``--pg-url``, an admin URL); deletes every queue, exchange and database it made.
"""

from __future__ import annotations

import argparse
import asyncio
import dataclasses
import os
import signal
import sys
import tempfile
from collections.abc import Sequence
from contextlib import AsyncExitStack
from datetime import UTC, datetime
from pathlib import Path

import aio_pika
import asyncpg

from bench import (
    cpu,
    database,
    e2e,
    ingest,
    pipeline,
    processes,
    rabbit,
    reconciler,
    report,
    servers,
    worker,
)
from bench.config import PAIRS, QUICK, Params, new_prefix, new_secret
from bench.context import Context, new_secrets
from bench.loop import same_loop

SHM = "/dev/shm"  # noqa: S108 - a tmpfs for the servers' logs, in a private temp dir


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="python -m bench", description=__doc__.split("\n\n")[0])
    parser.add_argument(
        "--duration", type=float, help="measured window per run of pairs 1-3, s (5)"
    )
    parser.add_argument("--concurrency", type=int, help="requests in flight, closed loop (32)")
    parser.add_argument("--runs", type=int, help="runs per side, alternating (3)")
    parser.add_argument("--warmup", type=float, help="discarded warm-up per run, s (1.5)")
    parser.add_argument("--max-requests", type=int, help="hard cap per run (80000)")
    parser.add_argument("--amqp-url", help="RabbitMQ (default: $PAYSYNC_AMQP_URL or local guest)")
    parser.add_argument(
        "--pg-url", help="Postgres admin URL (default: $PAYSYNC_BENCH_PG_URL or local)"
    )
    parser.add_argument("--log-level", help="paysync's log_level (info, its default)")
    parser.add_argument("--pairs", help=f"comma-separated subset of {','.join(PAIRS)} (all)")
    parser.add_argument("--worker-messages", type=int, help="pair 2 pre-fill per run (7000)")
    parser.add_argument("--quick", action="store_true", help="tiny values: a smoke run")
    return parser


def params_from(args: argparse.Namespace) -> Params:
    params = QUICK if args.quick else Params()
    given = {
        "duration": args.duration,
        "concurrency": args.concurrency,
        "runs": args.runs,
        "warmup": args.warmup,
        "max_requests": args.max_requests,
        "amqp_url": args.amqp_url,
        "pg_url": args.pg_url,
        "log_level": args.log_level,
        "worker_messages": args.worker_messages,
        "pairs": None if args.pairs is None else tuple(p.strip() for p in args.pairs.split(",")),
    }
    if args.duration is not None:
        given["half_load_duration"] = args.duration
    return dataclasses.replace(params, **{k: v for k, v in given.items() if v is not None})


def check(params: Params) -> list[str]:
    problems = []
    if params.duration <= 0 or params.warmup < 0:
        problems.append("--duration must be > 0 and --warmup >= 0")
    if params.concurrency < 1 or params.runs < 1 or params.max_requests < params.concurrency:
        problems.append("--concurrency and --runs must be >= 1, --max-requests >= concurrency")
    if unknown := set(params.pairs) - set(PAIRS):
        problems.append(
            f"--pairs: unknown {', '.join(sorted(unknown))} (known: {', '.join(PAIRS)})"
        )
    if params.worker_messages < 100:
        problems.append("--worker-messages must be >= 100")
    return problems


async def run(params: Params) -> int:
    _cancel_on_sigterm()
    started = datetime.now(UTC)
    # Both fail fast when a service is away.
    version = await rabbit.server_version(params.amqp_url)
    pg_version = await database.server_version(params.pg_url) if _needs_db(params) else None
    results = await measure(params)
    doc = report.document(
        params=params,
        started=started,
        finished=datetime.now(UTC),
        env=report.environment(version, pg_version),
        results=results,
    )
    path = report.write_json(doc, started)
    print(report.render(params, results))
    for line in report.errors_seen(results):
        print(line, file=sys.stderr)
    print(f"\nresults: {path}")
    return 0


def _needs_db(params: Params) -> bool:
    return bool({"worker", "e2e", "pipeline", "reconciler"} & set(params.pairs))


async def measure(params: Params) -> report.Results:
    """Run the pairs asked for; stop every child, delete the broker names and the database."""
    with tempfile.TemporaryDirectory(prefix="paysync-bench-", dir=_log_parent()) as tmp:
        spec = servers.ServerSpec(
            prefix=new_prefix(),
            amqp_url=params.amqp_url,
            secret=new_secret(),
            log_level=params.log_level,
            log_dir=Path(tmp),
            broker_pid=cpu.find_broker_pid(),
        )
        results = report.Results()
        try:
            # As `paysync migrate` would: the roles only check the topology passively.
            await rabbit.declare_topology(spec.amqp_url, spec.prefix)
            if "processes" in params.pairs:
                results.processes, peaks = await processes.run_pair(params, spec)
                for side, kib in peaks.items():
                    results.recorder.note_kib("ingest", f"paysync {side}", kib, "pair 1b")
            async with AsyncExitStack() as stack:
                ctx = None
                if _needs_db(params):
                    db = await stack.enter_async_context(database.created(params.pg_url))
                    ctx = Context(params, spec, db, new_secrets(spec.secret), results.recorder)
                    await rabbit.bind_events_queue(spec.amqp_url, spec.prefix)
                await _with_servers(params, spec, ctx, results)
                if ctx is not None and "reconciler" in params.pairs:
                    results.reconciler = await reconciler.run_pair(ctx)
        finally:
            await rabbit.delete_all(spec.amqp_url, spec.prefix)
    return results


async def _with_servers(
    params: Params, spec: servers.ServerSpec, ctx: Context | None, results: report.Results
) -> None:
    """Pairs 1-3: the ingest servers stay up for pair 3 (pair 2 runs between, idle for them)."""
    if not {"ingest", "e2e", "pipeline"} & set(params.pairs):
        if ctx is not None and "worker" in params.pairs:
            results.worker = await worker.run_pair(ctx)
        return
    async with servers.running(ingest.SIDES, spec) as procs:
        if "ingest" in params.pairs:
            pair = await ingest.run_pair(params, spec, procs)
            results.ingest = (pair, ingest.summarise_pair(pair))
        if ctx is not None and "worker" in params.pairs:
            results.worker = await worker.run_pair(ctx)
        if ctx is not None and "e2e" in params.pairs:
            half = await _half_of_ingest_max(params, spec, procs, results)
            worker_max = None
            if results.worker is not None:
                worker_max = results.worker.medians()["paysync"]["messages_per_second"]
            results.e2e = await e2e.run_pair(ctx, procs, half, worker_max)
        if ctx is not None and "pipeline" in params.pairs:
            results.pipeline = await pipeline.run_pair(ctx, procs["baseline"])
        for side, proc in procs.items():
            results.recorder.note("ingest", side, proc.proc.pid, _ingest_pairs(params))


async def _half_of_ingest_max(
    params: Params,
    spec: servers.ServerSpec,
    procs: dict[str, servers.ServerProcess],
    results: report.Results,
) -> float:
    """Pair 1's figure from this run, or one quick closed-loop run when pair 1 was skipped."""
    if results.ingest is not None and results.ingest[0].half_load_rate > 0:
        return results.ingest[0].half_load_rate
    figures = await ingest.measure_max(params, spec, procs["paysync"])
    return max(ingest.HALF * figures.requests_per_second, 1.0)


def _ingest_pairs(params: Params) -> str:
    found = [f"pair {n}" for n, p in ((1, "ingest"), (3, "e2e")) if p in params.pairs]
    return " + ".join([*found, *(["pipeline"] if "pipeline" in params.pairs else [])])


def _cancel_on_sigterm() -> None:
    """SIGTERM unwinds like Ctrl-C: servers stopped, broker names deleted."""
    task = asyncio.current_task()
    if task is not None:
        asyncio.get_running_loop().add_signal_handler(signal.SIGTERM, task.cancel)


def _log_parent() -> str | None:
    """Server logs go to memory when possible: not onto the disk RabbitMQ fsyncs to."""
    return SHM if os.path.isdir(SHM) and os.access(SHM, os.W_OK) else None


def main(argv: Sequence[str] | None = None) -> int:
    params = params_from(build_parser().parse_args(argv))
    if problems := check(params):
        print("\n".join(f"bench: {p}" for p in problems), file=sys.stderr)
        return 2
    try:
        return same_loop(run(params))
    except KeyboardInterrupt:
        return 130
    except asyncio.CancelledError:
        print("bench: stopped (SIGTERM)", file=sys.stderr)
        return 143
    except (RuntimeError, OSError, aio_pika.exceptions.AMQPError, asyncpg.PostgresError) as exc:
        # A service away, or a child that did not start (its log tail is in the message).
        print(f"bench: {exc}", file=sys.stderr)
        return 1


if __name__ == "__main__":
    sys.exit(main())
