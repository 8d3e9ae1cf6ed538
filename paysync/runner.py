"""The composition root of the long-running roles: builds every object once, runs, drains.

``run_roles`` starts the requested roles (``ingest``, ``worker``, ``reconciler``) on one
broker link and one lazy pool (the worker's store and relay; ingest's ``/v1`` API; the
reconciler's claims), waits for
SIGTERM/SIGINT (or for a role to fail), then shuts down in order: ingest stops accepting
and finishes in-flight requests, the consumer finishes and acks its messages, the relay
finishes its batch; then the pool and the broker close.
"""

from __future__ import annotations

import asyncio
import signal
from collections.abc import Callable, Coroutine, Mapping
from contextlib import AsyncExitStack

from aiohttp import web

from ingest.app import build_app
from ingest.server import ingest_runner
from paysync.amqp import Broker, Topology
from paysync.db import create_pool
from paysync.logging import get_logger
from paysync.metrics import Metrics
from paysync.probes import build_probe_app
from paysync.settings import Settings
from providers import MAPPINGS
from providers.base import ProviderAdapter
from reconciler.rounds import Rounds
from worker.consumer import Consumer
from worker.relay import Relay
from worker.store import Store

log = get_logger(__name__)

ROLES = ("ingest", "worker", "reconciler")

Extra = Callable[[Broker, asyncio.Event], Coroutine[None, None, None]]


def topology_of(settings: Settings) -> Topology:
    return Topology(
        prefix=settings.broker.name_prefix, delivery_limit=settings.broker.delivery_limit
    )


def broker_of(settings: Settings) -> Broker:
    """The broker link a process gets from its settings (not yet started)."""
    return Broker(
        settings.amqp_url,
        topology_of(settings),
        reconnect_seconds=settings.broker.reconnect_seconds,
    )


async def run_roles(
    settings: Settings,
    registry: Mapping[str, ProviderAdapter],
    roles: set[str],
    extra: Extra | None = None,
) -> None:
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    broker = broker_of(settings)
    broker.start()
    metrics = Metrics()
    tasks: list[asyncio.Task[None]] = []
    async with AsyncExitStack() as stack:
        stack.push_async_callback(broker.close)
        # Both roles use the pool (ingest only for /v1, never on its callback path). It is
        # lazy (min_size=0): a database outage does not stop ingest from starting.
        pool = await create_pool(settings.database_url, max_size=settings.database_pool_size)
        stack.push_async_callback(pool.close)
        if "worker" in roles:
            consumer = Consumer(
                broker, Store(pool, MAPPINGS), registry, settings.worker, metrics, stop
            )
            relay = Relay(pool, broker, settings.worker, metrics, stop)
            tasks += [
                asyncio.create_task(consumer.run(), name="consumer"),
                asyncio.create_task(relay.run(), name="relay"),
            ]
        if "reconciler" in roles:
            rounds = Rounds(settings, registry, pool, broker, metrics, stop)
            tasks.append(asyncio.create_task(rounds.run(), name="reconciler"))
        if "ingest" in roles:
            app = build_app(settings, broker, registry, metrics, pool=pool)
            runner = ingest_runner(app, settings.ingest)
            await runner.setup()
            stack.push_async_callback(runner.cleanup)
            await web.TCPSite(runner, settings.ingest.host, settings.ingest.port).start()
            log.info("ingest_listening", host=settings.ingest.host, port=settings.ingest.port)
        if "ingest" not in roles:
            await _serve_probes(settings, broker, metrics, stack)
        if extra is not None:
            tasks.append(asyncio.create_task(extra(broker, stop), name="extra"))
        tasks.append(asyncio.create_task(_broker_guard(broker, stop), name="broker"))
        log.info("service_started", roles=sorted(roles))
        await _until_stopped(stop, tasks)
    log.info("service_stopped")


async def _serve_probes(
    settings: Settings, broker: Broker, metrics: Metrics, stack: AsyncExitStack
) -> None:
    """/metrics, /healthz and /readyz for a process that has no ingest port."""
    runner = web.AppRunner(build_probe_app(broker, metrics), access_log=None, handle_signals=False)
    await runner.setup()
    stack.push_async_callback(runner.cleanup)
    await web.TCPSite(runner, settings.metrics.host, settings.metrics.port).start()
    host, port = runner.addresses[0][:2]
    log.info("probes_listening", host=host, port=port)


async def _broker_guard(broker: Broker, stop: asyncio.Event) -> None:
    """Fail the process when the broker link gives up for good (e.g. the topology was
    refused), instead of every role waiting forever."""
    await broker.wait_connected()
    await stop.wait()


async def _until_stopped(stop: asyncio.Event, tasks: list[asyncio.Task[None]]) -> None:
    """Wait for the stop signal or a failed role; then let every role drain."""
    stopper = asyncio.create_task(stop.wait())
    await asyncio.wait([stopper, *tasks], return_when=asyncio.FIRST_COMPLETED)
    stop.set()
    results = await asyncio.gather(*tasks, return_exceptions=True)
    failures = [r for r in results if isinstance(r, BaseException)]
    for failure in failures:
        log.error("role_failed", error=repr(failure))
    if failures:
        raise failures[0]
