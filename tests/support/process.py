"""paysync roles as real child processes, started from the installed console script."""

from __future__ import annotations

import asyncio
import base64
import os
import signal
import sys
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path

import aiohttp

from tests.support.config import HDFC_USERNAME, RunConfig
from tests.support.waiting import eventually

PAYSYNC = str(Path(sys.executable).with_name("paysync"))


class Process:
    def __init__(self, proc: asyncio.subprocess.Process, log_path: Path) -> None:
        self.proc = proc
        self.log_path = log_path

    @property
    def log(self) -> str:
        return self.log_path.read_text(encoding="utf-8", errors="replace")

    async def stop(self, timeout: float = 30.0) -> int:
        """SIGTERM and wait for a clean exit; returns the exit code."""
        if self.proc.returncode is None:
            self.proc.send_signal(signal.SIGTERM)
        try:
            async with asyncio.timeout(timeout):
                return await self.proc.wait()
        except TimeoutError:
            self.proc.kill()
            await self.proc.wait()
            raise AssertionError(f"paysync did not stop within {timeout} s:\n{self.log}") from None


async def start(config: RunConfig, *args: str, log_name: str = "paysync.log") -> Process:
    log_path = config.path.parent / log_name
    env = {**os.environ, **config.env, "PAYSYNC_CONFIG": str(config.path)}
    with log_path.open("wb") as log_file:
        proc = await asyncio.create_subprocess_exec(
            PAYSYNC, *args, env=env, stdout=log_file, stderr=asyncio.subprocess.STDOUT
        )
    return Process(proc, log_path)


async def run_paysync(config: RunConfig, *args: str, timeout: float = 60.0) -> tuple[int, str, str]:
    """Run one ``paysync`` command to its end, as an operator does, in an environment of
    the test's configuration only: its exit code, stdout and stderr (log lines go to
    stderr; neither may show a secret)."""
    env = {**config.env, "PAYSYNC_CONFIG": str(config.path)}
    proc = await asyncio.create_subprocess_exec(
        PAYSYNC,
        *args,
        env=env,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )
    out, err = await asyncio.wait_for(proc.communicate(), timeout)
    assert_no_secret_in((out + err).decode(errors="replace"), config)
    assert proc.returncode is not None
    return proc.returncode, out.decode(errors="replace"), err.decode(errors="replace")


async def run_command(config: RunConfig, *args: str, timeout: float = 60.0) -> tuple[int, str]:
    """``run_paysync``'s exit code and stdout."""
    code, out, _ = await run_paysync(config, *args, timeout=timeout)
    return code, out


async def wait_ready(config: RunConfig, process: Process, timeout: float = 20.0) -> None:
    async with aiohttp.ClientSession() as session:

        async def ready() -> bool:
            if process.proc.returncode is not None:
                raise AssertionError(
                    f"paysync exited with {process.proc.returncode}:\n{process.log}"
                )
            try:
                async with session.get(f"{config.url}/readyz") as resp:
                    return resp.status == 200
            except aiohttp.ClientError:
                return False

        await eventually(ready, timeout=timeout, what="paysync /readyz")


@asynccontextmanager
async def running(
    config: RunConfig, *args: str, log_name: str = "paysync.log"
) -> AsyncIterator[Process]:
    """Start paysync, wait until ready when it serves HTTP, stop it afterwards."""
    process = await start(config, *args, log_name=log_name)
    try:
        if "ingest" in args or "all" in args:
            await wait_ready(config, process)
        yield process
    finally:
        if process.proc.returncode is None:
            await process.stop()
    # Every end-to-end run doubles as a secret scan of everything the process logged.
    assert_no_secret_in(process.log, config)


def secrets_of(config: RunConfig) -> dict[str, str]:
    """Every secret a run knows, by name, with the forms a careless log line could take."""
    found: dict[str, str] = {}
    for name, value in config.env.items():
        found[name] = value
        found[f"{name} (base64)"] = base64.b64encode(value.encode()).decode()
    for i, value in enumerate(config.settings.secret_values()):
        found[f"configured secret #{i}"] = value
    # Credentials that travel only as a whole: HTTP Basic of HDFC's webhooks.
    password = config.env.get("TEST_HDFC_PASSWORD")
    if password:
        basic = base64.b64encode(f"{HDFC_USERNAME}:{password}".encode()).decode()
        found["HDFC webhook Basic credentials"] = basic
    return {name: value for name, value in found.items() if len(value) >= 4}


def assert_no_secret_in(text: str, config: RunConfig) -> None:
    leaked = sorted(name for name, value in secrets_of(config).items() if value in text)
    assert not leaked, f"secrets in the log output: {leaked}"
