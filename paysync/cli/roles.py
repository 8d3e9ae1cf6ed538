"""The long-running roles (``paysync ingest | worker | reconciler | all``): builds every
object once, runs, drains.

``run_roles`` checks what can only be wrong at start-up (TLS files, ports: a failure stops
the process at once, with one line naming the cause), then starts the requested roles
(``ingest``, ``worker``, ``reconciler``) on one broker link and one lazy pool, registers
each role's readiness check and main task with the process's ``Health``, and waits for
SIGTERM/SIGINT (or for a role to fail). Then it drains, all within
``ingest.shutdown_timeout_seconds``: ingest stops accepting and finishes in-flight
requests while the consumer finishes and acks its messages and the relay its batch; then
the pool and the broker close. Whatever has not finished by the deadline is cancelled
(the broker redelivers unacked messages), so SIGTERM always ends the process.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import signal
from collections.abc import Awaitable, Callable, Coroutine, Mapping
from contextlib import AsyncExitStack

from aiohttp import web

from ingest.app import build_app
from ingest.server import ingest_runner
from paysync.broker import Broker
from paysync.cli.prefork import MULTIPROC_ENV
from paysync.connections import broker_of
from paysync.db import create_pool
from paysync.errors import RoleEnded, StartupError
from paysync.health import Health
from paysync.logging import get_logger
from paysync.metrics import Metrics
from paysync.probes import build_probe_app
from paysync.settings import Settings
from paysync.tls import check_tls_files
from providers import MAPPINGS
from providers.registry import Provider
from reconciler.rounds import Rounds
from worker.consumer import Consumer
from worker.relay import Relay
from worker.store import Store

log = get_logger(__name__)

ROLES = ("ingest", "worker", "reconciler")

Extra = Callable[[Broker, asyncio.Event], Coroutine[None, None, None]]


async def run_roles(
    settings: Settings,
    registry: Mapping[str, Provider],
    roles: set[str],
    extra: Extra | None = None,
) -> None:
    problems = check_tls_files(settings.database_url, settings.amqp_url)
    if problems:
        raise StartupError("; ".join(problems))
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    broker = broker_of(settings, "+".join(r for r in ROLES if r in roles))
    metrics = Metrics(multiprocess_dir=os.environ.get(MULTIPROC_ENV))
    health = Health()
    deadline = _Deadline(settings.ingest.shutdown_timeout_seconds)
    tasks: dict[str, asyncio.Task[None]] = {}
    async with AsyncExitStack() as stack:
        stack.push_async_callback(lambda: deadline.bounded(broker.close()))
        # Both roles use the pool (ingest only for /v1, never on its callback path). It is
        # lazy (min_size=0): a database outage does not stop ingest from starting.
        pool = await create_pool(settings.database_url, max_size=settings.database_pool_size)
        stack.push_async_callback(lambda: deadline.bounded(pool.close(), pool.terminate))
        # Ports first: a port in use ends the process before anything else has started.
        # One of several processes on a shared port (its supervisor checked the port)
        # joins it once its broker link is up, so that the kernel does not hand new
        # connections to a process that could only answer 503 while others are ready.
        if settings.ingest.reuse_port and "ingest" in roles:
            broker.start()
            await _broker_or_timeout(broker, settings.broker.connect_timeout_seconds)
        if "ingest" in roles:
            app = build_app(settings, broker, registry, metrics, pool=pool, health=health)
            ingest = ingest_runner(app, settings.ingest)
            site = await _listen(
                ingest,
                settings.ingest.host,
                settings.ingest.port,
                "ingest",
                reuse_port=settings.ingest.reuse_port,
            )
            log.info("ingest_listening", host=settings.ingest.host, port=settings.ingest.port)
        else:
            probes = web.AppRunner(
                build_probe_app(health, metrics),
                access_log=None,
                handle_signals=False,
                shutdown_timeout=settings.ingest.shutdown_timeout_seconds,
            )
            site = await _listen(probes, settings.metrics.host, settings.metrics.port, "probes")
            host, port = site.addresses[0][:2]
            log.info("probes_listening", host=host, port=port)
        stack.push_async_callback(lambda: deadline.bounded(site.cleanup()))
        if not (settings.ingest.reuse_port and "ingest" in roles):
            broker.start()
        tasks["broker"] = broker.task
        if "worker" in roles:
            consumer = Consumer(
                broker, Store(pool, MAPPINGS), registry, settings.worker, metrics, stop
            )
            relay = Relay(pool, broker, settings.worker, metrics, stop)
            health.add_check("worker", lambda: consumer.ready)
            health.add_check("relay", lambda: relay.ready)
            tasks["worker"] = asyncio.create_task(consumer.run(), name="consumer")
            tasks["relay"] = asyncio.create_task(relay.run(), name="relay")
        if "reconciler" in roles:
            rounds = Rounds(settings, registry, pool, broker, metrics, stop)
            health.add_check("reconciler", lambda: broker.ready)
            tasks["reconciler"] = asyncio.create_task(rounds.run(), name="reconciler")
        if extra is not None:
            tasks["extra"] = asyncio.create_task(extra(broker, stop), name="extra")
        for name, task in tasks.items():
            health.watch(name, task)
        log.info("service_started", roles=sorted(roles))
        await _until_stopped(stop, tasks, health, deadline)
    log.info("service_stopped")


async def _broker_or_timeout(broker: Broker, seconds: float) -> None:
    """Wait for the broker link up to ``seconds`` (then go on: the probes must answer
    during an outage); a failure the link gives up on (a missing topology) ends here."""
    with contextlib.suppress(TimeoutError):
        await broker.wait_connected(seconds)


async def _listen(
    runner: web.AppRunner, host: str, port: int, what: str, *, reuse_port: bool = False
) -> web.AppRunner:
    await runner.setup()
    try:
        await web.TCPSite(runner, host, port, reuse_port=reuse_port or None).start()
    except OSError as exc:
        await runner.cleanup()
        reason = os.strerror(exc.errno) if exc.errno else str(exc)
        raise StartupError(f"{what} cannot listen on {host}:{port}: {reason}") from None
    return runner


class _Deadline:
    """The shutdown budget: starts at the stop signal; every step gets what is left."""

    def __init__(self, seconds: float) -> None:
        self._seconds = seconds
        self._at: float | None = None

    def begin(self) -> None:
        if self._at is None:
            self._at = asyncio.get_running_loop().time() + self._seconds

    def left(self) -> float:
        self.begin()
        assert self._at is not None
        return max(0.05, self._at - asyncio.get_running_loop().time())

    async def bounded(
        self, step: Awaitable[object], on_timeout: Callable[[], object] | None = None
    ) -> None:
        try:
            async with asyncio.timeout(self.left()):
                await step
        except TimeoutError:
            log.warning("shutdown_step_timed_out")
            if on_timeout is not None:
                on_timeout()


async def _until_stopped(
    stop: asyncio.Event,
    tasks: Mapping[str, asyncio.Task[None]],
    health: Health,
    deadline: _Deadline,
) -> None:
    """Wait for the stop signal or a failed role; then let every role drain, cancelling
    what has not finished within the shutdown budget."""
    stopper = asyncio.create_task(stop.wait())
    await asyncio.wait([stopper, *tasks.values()], return_when=asyncio.FIRST_COMPLETED)
    # A main task that ended while nobody asked it to is a failure, whatever its way out
    # (returned, raised, or cancelled from inside a library): the process must not exit 0.
    ended = [name for name, task in tasks.items() if task.done() and not stop.is_set()]
    health.stopping = True
    stop.set()
    deadline.begin()
    roles = {name: task for name, task in tasks.items() if name != "broker"}
    if roles:
        _, late = await asyncio.wait(roles.values(), timeout=deadline.left())
        for task in late:
            log.warning("role_drain_timed_out", role=task.get_name())
            task.cancel()
        await asyncio.gather(*roles.values(), return_exceptions=True)
    failures: list[tuple[str, BaseException]] = [
        (name, _why_ended(task))
        for name, task in tasks.items()
        if name in ended or (task.done() and not task.cancelled() and task.exception())
    ]
    for name, failure in failures:
        log.error("role_failed", role=name, error=repr(failure))
    if failures:
        raise failures[0][1]


def _why_ended(task: asyncio.Task[None]) -> BaseException:
    if not task.cancelled() and task.exception() is not None:
        return task.exception()  # type: ignore[return-value]
    how = "was cancelled" if task.cancelled() else "returned"
    return RoleEnded(f"{task.get_name()} {how} while the process was running")
