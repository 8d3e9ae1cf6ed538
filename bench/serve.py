"""One benchmark server in a process of its own: ``python -m bench.serve paysync|baseline``.

``paysync`` loads settings from a temporary TOML file (a CCPayment account whose secret is
read from ``$BENCH_CCPAYMENT_SECRET``) and wires ``build_app`` + ``Broker`` exactly as
``paysync/cli/roles.py`` does for the ingest role, without the worker (nor its imports).
``baseline`` serves ``bench/baseline.py``. Either listens on 127.0.0.1:PORT until
SIGTERM/SIGINT, or until the parent process goes away (so an interrupted benchmark leaves
no server behind)."""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
from collections.abc import Sequence
from pathlib import Path

from aiohttp import web

from bench import baseline
from bench.config import DEFAULT_AMQP_URL, SECRET_ENV, write_paysync_config
from bench.lifetime import wait_for_stop
from bench.loop import same_loop
from ingest.app import build_app
from ingest.server import ingest_runner
from paysync.connections import broker_of
from paysync.logging import configure_logging
from paysync.metrics import Metrics
from paysync.settings import Settings, load_settings
from providers import REGISTRY, account_models

HOST = "127.0.0.1"
SHUTDOWN_TIMEOUT_SECONDS = 10.0


def parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python -m bench.serve", description=__doc__)
    parser.add_argument("kind", choices=("paysync", "baseline"))
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--prefix", required=True, help="broker name prefix of this run")
    parser.add_argument("--amqp-url", default=DEFAULT_AMQP_URL)
    parser.add_argument("--log-level", default="info", help="paysync's log_level")
    return parser.parse_args(argv)


def paysync_settings(args: argparse.Namespace) -> Settings:
    with tempfile.TemporaryDirectory(prefix="bench-paysync-") as tmp:
        path = write_paysync_config(
            Path(tmp),
            port=args.port,
            prefix=args.prefix,
            amqp_url=args.amqp_url,
            log_level=args.log_level,
        )
        # Only the secret comes from the environment: stray PAYSYNC_* variables must not
        # move the port or the prefix under the benchmark.
        return load_settings(account_models(), path=path, env={SECRET_ENV: os.environ[SECRET_ENV]})


async def serve_paysync(args: argparse.Namespace) -> None:
    settings = paysync_settings(args)
    configure_logging(settings.log_level, secrets=settings.secret_values())
    broker = broker_of(settings)
    broker.start()
    try:
        app = build_app(settings, broker, REGISTRY, Metrics())
        await serve_until_stopped(ingest_runner(app, settings.ingest), settings.ingest.port)
    finally:
        await broker.close()


async def serve_baseline(args: argparse.Namespace) -> None:
    connection, exchange = await baseline.connect(args.amqp_url, args.prefix)
    try:
        runner = web.AppRunner(
            baseline.build_app(exchange),
            access_log=None,
            handle_signals=False,
            shutdown_timeout=SHUTDOWN_TIMEOUT_SECONDS,
        )
        await serve_until_stopped(runner, args.port)
    finally:
        await connection.close()


async def serve_until_stopped(runner: web.AppRunner, port: int) -> None:
    await runner.setup()
    try:
        await web.TCPSite(runner, HOST, port).start()
        await wait_for_stop()
    finally:
        await runner.cleanup()


def main(argv: Sequence[str] | None = None) -> int:
    args = parse_args(argv)
    serve = serve_paysync if args.kind == "paysync" else serve_baseline
    same_loop(serve(args))
    return 0


if __name__ == "__main__":
    sys.exit(main())
