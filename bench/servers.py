"""Benchmark servers as child processes: start, wait until ready, stop."""

from __future__ import annotations

import asyncio
import os
import signal
import sys
import time
from collections.abc import AsyncIterator, Sequence
from contextlib import AsyncExitStack, asynccontextmanager
from dataclasses import dataclass
from pathlib import Path

import aiohttp

from bench.config import CALLBACK_PATH, SECRET_ENV, free_port

PROJECT_ROOT = Path(__file__).resolve().parent.parent
READY_TIMEOUT_SECONDS = 30.0
STOP_TIMEOUT_SECONDS = 20.0


@dataclass(frozen=True, slots=True)
class ServerSpec:
    prefix: str
    amqp_url: str
    secret: str
    log_level: str
    log_dir: Path
    broker_pid: int | None  # a local RabbitMQ's, for its CPU share


@dataclass(slots=True)
class ServerProcess:
    kind: str
    port: int
    proc: asyncio.subprocess.Process
    log_path: Path

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def callback_url(self) -> str:
        return f"{self.base_url}{CALLBACK_PATH}"

    def log_tail(self, lines: int = 20) -> str:
        text = self.log_path.read_text(encoding="utf-8", errors="replace")
        return "\n".join(text.splitlines()[-lines:])

    async def wait_ready(self, timeout: float = READY_TIMEOUT_SECONDS) -> None:
        deadline = time.monotonic() + timeout
        async with aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=2)) as session:
            while time.monotonic() < deadline:
                if self.proc.returncode is not None:
                    break
                if await _answers_ready(session, f"{self.base_url}/readyz"):
                    return
                await asyncio.sleep(0.2)
        raise RuntimeError(f"{self.kind} server not ready:\n{self.log_tail()}")

    async def stop(self, timeout: float = STOP_TIMEOUT_SECONDS) -> int:
        """SIGTERM, wait for the exit; SIGKILL when it does not exit in time."""
        if self.proc.returncode is None:
            self.proc.send_signal(signal.SIGTERM)
        try:
            async with asyncio.timeout(timeout):
                return await self.proc.wait()
        except TimeoutError:
            self.proc.kill()
            return await self.proc.wait()


async def _answers_ready(session: aiohttp.ClientSession, url: str) -> bool:
    try:
        async with session.get(url) as resp:
            return resp.status == 200
    except (aiohttp.ClientError, TimeoutError):
        return False


async def start_server(kind: str, spec: ServerSpec) -> ServerProcess:
    port = free_port()
    log_path = spec.log_dir / f"{kind}.log"
    args = ["--port", str(port), "--prefix", spec.prefix, "--amqp-url", spec.amqp_url]
    args += ["--log-level", spec.log_level]
    with log_path.open("wb") as log_file:
        proc = await asyncio.create_subprocess_exec(
            sys.executable,
            "-m",
            "bench.serve",
            kind,
            *args,
            cwd=PROJECT_ROOT,
            env={**os.environ, SECRET_ENV: spec.secret},
            stdin=asyncio.subprocess.DEVNULL,
            stdout=log_file,
            stderr=asyncio.subprocess.STDOUT,
        )
    return ServerProcess(kind=kind, port=port, proc=proc, log_path=log_path)


@asynccontextmanager
async def running(
    kinds: Sequence[str], spec: ServerSpec
) -> AsyncIterator[dict[str, ServerProcess]]:
    """Start one server per kind, wait until all are ready, stop them all afterwards."""
    async with AsyncExitStack() as stack:
        servers: dict[str, ServerProcess] = {}
        for kind in kinds:
            server = await start_server(kind, spec)
            stack.push_async_callback(server.stop)
            servers[kind] = server
        for server in servers.values():
            await server.wait_ready()
        yield servers
