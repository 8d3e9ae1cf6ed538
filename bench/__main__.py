"""``python -m bench``: run the benchmark pairs, print a table, write bench/results/*.json.

Pair 1 (the only one so far): paysync ingest for CCPayment versus a bare aiohttp +
aio-pika receiver, see ``bench/README.md``. Needs RabbitMQ (``--amqp-url``, default
``$PAYSYNC_AMQP_URL`` or guest@127.0.0.1); deletes every queue and exchange it declared.
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
from datetime import UTC, datetime
from pathlib import Path

import aio_pika

from bench import cpu, ingest, rabbit, report, servers
from bench.config import QUICK, Params, new_prefix, new_secret

SHM = "/dev/shm"  # noqa: S108 - a tmpfs for the servers' logs, in a private temp dir


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="python -m bench", description=__doc__.split("\n\n")[0])
    parser.add_argument("--duration", type=float, help="measured window per run, s (10)")
    parser.add_argument("--concurrency", type=int, help="requests in flight, closed loop (32)")
    parser.add_argument("--runs", type=int, help="runs per side, alternating (3)")
    parser.add_argument("--warmup", type=float, help="discarded warm-up per run, s (3)")
    parser.add_argument("--max-requests", type=int, help="hard cap per run (80000)")
    parser.add_argument("--amqp-url", help="RabbitMQ (default: $PAYSYNC_AMQP_URL or local guest)")
    parser.add_argument("--log-level", help="paysync's log_level (info, its default)")
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
        "log_level": args.log_level,
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
    return problems


async def run(params: Params) -> int:
    _cancel_on_sigterm()
    started = datetime.now(UTC)
    version = await rabbit.server_version(params.amqp_url)  # fails fast when RabbitMQ is away
    pair = await measure(params)
    summary = ingest.summarise_pair(pair)
    doc = report.document(
        params=params,
        started=started,
        finished=datetime.now(UTC),
        env=report.environment(version),
        pair=pair,
        summary=summary,
    )
    path = report.write_json(doc, started)
    print(report.render(params, pair, summary))
    for line in report.errors_seen(pair):
        print(line, file=sys.stderr)
    print(f"\nresults: {path}")
    return 0


async def measure(params: Params) -> ingest.PairResult:
    """Start both servers, run the pair, stop them and delete the broker names."""
    with tempfile.TemporaryDirectory(prefix="paysync-bench-", dir=_log_parent()) as tmp:
        spec = servers.ServerSpec(
            prefix=new_prefix(),
            amqp_url=params.amqp_url,
            secret=new_secret(),
            log_level=params.log_level,
            log_dir=Path(tmp),
            broker_pid=cpu.find_broker_pid(),
        )
        try:
            async with servers.running(ingest.SIDES, spec) as procs:
                return await ingest.run_pair(params, spec, procs)
        finally:
            await rabbit.delete_all(spec.amqp_url, spec.prefix)


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
        return asyncio.run(run(params))
    except KeyboardInterrupt:
        return 130
    except asyncio.CancelledError:
        print("bench: stopped (SIGTERM)", file=sys.stderr)
        return 143
    except (RuntimeError, OSError, aio_pika.exceptions.AMQPError) as exc:
        # RabbitMQ away, or a server that did not start (its log tail is in the message).
        print(f"bench: {exc}", file=sys.stderr)
        return 1


if __name__ == "__main__":
    sys.exit(main())
