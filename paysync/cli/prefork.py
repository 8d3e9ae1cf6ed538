"""``paysync ingest`` with ``ingest.processes`` > 1: a supervisor of ingest processes that
share one port (``SO_REUSEPORT``; the kernel spreads new connections over them).

The supervisor serves nothing itself. It reserves the port (a bound ``SO_REUSEPORT``
socket that never listens: a port held by another program fails here, at start-up, and
port 0 becomes one concrete port for every child), then runs each child as ``python -m
paysync.cli <the same arguments>`` with, in its environment, ``ingest.processes = 1``,
``ingest.reuse_port = true``, that port, a shutdown budget 90 % of its own, and
``PROMETHEUS_MULTIPROC_DIR`` (a private directory: each child's counters go to files
there and every child's ``/metrics`` renders the sum over all of them, dead children's
included, so no counter goes backwards when one is replaced).

- A child that exits is started again (``ingest_process_restarted``). One that fails
  within ``FAST_FAILURE_SECONDS`` of its start ``FAST_FAILURES`` times in a row (a
  configuration, topology or TLS problem that every child would hit) stops the
  supervisor with exit status 1, so the orchestrator sees a failing process.
- Each child answers ``/healthz`` and ``/readyz`` for itself, exactly as a single ingest
  process does.
- SIGTERM/SIGINT: every child gets SIGTERM and drains; whatever is still running at
  ``ingest.shutdown_timeout_seconds`` is killed, so the whole group stops within it.
- A supervisor killed with SIGKILL leaves its children serving until they are stopped (in
  a container they die with it); its metrics directory under the temporary directory then
  stays behind.
"""

from __future__ import annotations

import asyncio
import ctypes
import os
import shutil
import signal
import socket
import sys
import tempfile
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field

from prometheus_client import multiprocess

from paysync.errors import StartupError
from paysync.logging import get_logger
from paysync.settings import IngestSettings

log = get_logger(__name__)

MULTIPROC_ENV = "PROMETHEUS_MULTIPROC_DIR"
FAST_FAILURE_SECONDS = 5.0
FAST_FAILURES = 3
RESTART_PAUSE_SECONDS = 0.5
CHILD_SHUTDOWN_SHARE = 0.9


@dataclass(slots=True)
class _Slot:
    """One child's place: its process and how often it has just failed at start."""

    number: int
    proc: asyncio.subprocess.Process | None = None
    started: float = 0.0
    fast_failures: int = 0
    waiter: asyncio.Task[int] | None = field(default=None, repr=False)


def reserve_port(host: str, port: int) -> socket.socket:
    """A bound, never-listening ``SO_REUSEPORT`` socket on ``host:port``."""
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_STREAM)
    try:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEPORT, 1)
        sock.bind((host, port))
    except OSError as exc:
        sock.close()
        reason = os.strerror(exc.errno) if exc.errno else str(exc)
        raise StartupError(f"ingest cannot listen on {host}:{port}: {reason}") from None
    return sock


def child_command(argv: Sequence[str]) -> list[str]:
    """The command of a child: this interpreter running the CLI with ``argv``."""
    return [sys.executable, "-m", "paysync.cli", *argv]


def child_environment(
    base: Mapping[str, str], settings: IngestSettings, port: int, metrics_dir: str
) -> dict[str, str]:
    return {
        **base,
        "PAYSYNC_INGEST__PROCESSES": "1",
        "PAYSYNC_INGEST__REUSE_PORT": "true",
        "PAYSYNC_INGEST__PORT": str(port),
        "PAYSYNC_INGEST__SHUTDOWN_TIMEOUT_SECONDS": str(
            CHILD_SHUTDOWN_SHARE * settings.shutdown_timeout_seconds
        ),
        MULTIPROC_ENV: metrics_dir,
    }


class Supervisor:
    """Runs ``count`` ingest children until stopped; see the module docstring."""

    def __init__(self, settings: IngestSettings, count: int, argv: Sequence[str]) -> None:
        self._settings = settings
        self._command = child_command(argv)
        self._slots = [_Slot(number=n) for n in range(count)]
        self._env: dict[str, str] = {}
        self._metrics_dir = ""
        self._stop = asyncio.Event()

    def stop(self) -> None:
        self._stop.set()

    async def run(self) -> None:
        """Raises ``StartupError`` when the port is taken or children keep failing."""
        sock = reserve_port(self._settings.host, self._settings.port)
        self._metrics_dir = tempfile.mkdtemp(prefix="paysync-ingest-metrics-")
        try:
            port = sock.getsockname()[1]
            self._env = child_environment(os.environ, self._settings, port, self._metrics_dir)
            for slot in self._slots:
                await self._start(slot)
            log.info("ingest_processes_started", processes=len(self._slots), port=port)
            await self._watch()
        finally:
            await self._stop_all()
            sock.close()
            shutil.rmtree(self._metrics_dir, ignore_errors=True)

    def child_pids(self) -> list[int]:
        return [s.proc.pid for s in self._slots if s.proc is not None]

    async def _start(self, slot: _Slot) -> None:
        slot.proc = await asyncio.create_subprocess_exec(
            *self._command,
            env=self._env,
            stdin=asyncio.subprocess.DEVNULL,
            preexec_fn=_die_with_parent(os.getpid()),
        )
        slot.started = asyncio.get_running_loop().time()
        slot.waiter = asyncio.create_task(slot.proc.wait(), name=f"ingest-{slot.number}")

    async def _watch(self) -> None:
        stopper = asyncio.create_task(self._stop.wait())
        try:
            while not self._stop.is_set():
                waiters = {s.waiter: s for s in self._slots if s.waiter is not None}
                done, _ = await asyncio.wait(
                    [stopper, *waiters], return_when=asyncio.FIRST_COMPLETED
                )
                for task in done:
                    if task in waiters and not self._stop.is_set():
                        await self._replace(waiters[task], task.result())
        finally:
            stopper.cancel()

    async def _replace(self, slot: _Slot, code: int) -> None:
        assert slot.proc is not None
        pid, ran = slot.proc.pid, asyncio.get_running_loop().time() - slot.started
        multiprocess.mark_process_dead(pid, self._metrics_dir)  # type: ignore[no-untyped-call]
        fast = code != 0 and ran < FAST_FAILURE_SECONDS
        slot.fast_failures = slot.fast_failures + 1 if fast else 0
        log.warning("ingest_process_exited", pid=pid, code=code, seconds=round(ran, 1))
        if slot.fast_failures >= FAST_FAILURES:
            raise StartupError(
                f"ingest processes keep failing at start-up (exit status {code},"
                f" {FAST_FAILURES} times within {FAST_FAILURE_SECONDS:g} s): see the log"
            )
        if slot.fast_failures:
            await asyncio.sleep(RESTART_PAUSE_SECONDS * 2 ** (slot.fast_failures - 1))
        await self._start(slot)
        assert slot.proc is not None
        log.info("ingest_process_restarted", old_pid=pid, pid=slot.proc.pid)

    async def _stop_all(self) -> None:
        """SIGTERM to every child; SIGKILL to what still runs at the shutdown deadline."""
        running = [s for s in self._slots if s.proc is not None and s.proc.returncode is None]
        for slot in running:
            assert slot.proc is not None
            slot.proc.send_signal(signal.SIGTERM)
        waits = [s.waiter for s in running if s.waiter is not None]
        if not waits:
            return
        _, late = await asyncio.wait(waits, timeout=self._settings.shutdown_timeout_seconds)
        for slot in running:
            if slot.waiter in late and slot.proc is not None:
                log.warning("ingest_process_killed", pid=slot.proc.pid)
                slot.proc.kill()
        await asyncio.gather(*waits, return_exceptions=True)


async def supervise(settings: IngestSettings, count: int, argv: Sequence[str]) -> None:
    """Run the supervisor until SIGTERM/SIGINT."""
    supervisor = Supervisor(settings, count, argv)
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, supervisor.stop)
    await supervisor.run()
    log.info("service_stopped")


_PR_SET_PDEATHSIG = 1


def _die_with_parent(parent: int) -> Callable[[], None]:
    """Run in each child before it executes: the kernel sends it SIGTERM when the supervisor
    dies, however it dies (a SIGKILL or the OOM killer cannot be caught), so no ingest
    process serves on without a supervisor. Linux only; elsewhere a no-op."""

    def arm() -> None:
        if not sys.platform.startswith("linux"):
            return
        libc = ctypes.CDLL(None, use_errno=True)
        libc.prctl(_PR_SET_PDEATHSIG, signal.SIGTERM, 0, 0, 0)
        if os.getppid() != parent:  # the supervisor died before the signal was armed
            os._exit(1)

    return arm
