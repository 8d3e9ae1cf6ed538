"""``paysync ingest`` with ``ingest.processes = 2``: a supervisor and two ingest processes
on one port. Every callback is answered, /metrics counts all of them whichever process
served it, a killed process is replaced, and SIGTERM stops the whole group in time."""

from __future__ import annotations

import os
import signal
import socket
import time
import uuid
from dataclasses import replace
from decimal import Decimal
from pathlib import Path

import aiohttp
import pytest

from bench.cpu import children_of
from simulator.ccpayment import signed, webhook_body
from tests.support.config import ACCOUNT, APP_ID, RunConfig, write_config
from tests.support.metrics import count
from tests.support.process import Process, run_paysync, running
from tests.support.waiting import eventually

pytestmark = pytest.mark.e2e

SHUTDOWN_SECONDS = 4.0


def _alive(pid: int) -> bool:
    return Path(f"/proc/{pid}").exists()


async def _twochildren_of(process: Process) -> list[int]:
    async def two() -> list[int] | None:
        found = children_of(process.proc.pid)
        return found if len(found) == 2 else None

    return await eventually(two, what="two ingest processes")


async def _send(config: RunConfig, count_: int, tag: str) -> list[int]:
    """``count_`` callbacks, each on a connection of its own (the kernel spreads new
    connections over the processes: all of 40 on one of two is a 2^-39 chance)."""
    statuses = []
    url = f"{config.url}/webhooks/ccpayment/{ACCOUNT}"
    connector = aiohttp.TCPConnector(force_close=True)
    async with aiohttp.ClientSession(connector=connector) as session:
        for i in range(count_):
            ref = f"procs-{tag}-{i}"
            body = webhook_body(
                merchant_ref=ref,
                record_id=ref,
                order_id=ref,
                order_amount=Decimal("5.00"),
                paid_amount=Decimal("5.00"),
            )
            headers = signed(APP_ID, config.secret, body, int(time.time()))
            async with session.post(url, data=body, headers=headers) as resp:
                statuses.append(resp.status)
    return statuses


async def _accepted(config: RunConfig) -> float:
    async with aiohttp.ClientSession() as session, session.get(f"{config.url}/metrics") as resp:
        assert resp.status == 200
        return count(await resp.text(), "paysync_callbacks_total", outcome="accepted")


def _with_processes(config: RunConfig) -> RunConfig:
    return replace(
        config,
        env={
            **config.env,
            "PAYSYNC_INGEST__PROCESSES": "2",
            "PAYSYNC_INGEST__SHUTDOWN_TIMEOUT_SECONDS": str(SHUTDOWN_SECONDS),
        },
    )


async def test_two_ingest_processes_share_the_port_and_their_metrics(config: RunConfig) -> None:
    config = _with_processes(config)
    async with running(config, "ingest", log_name="ingest.log") as process:
        children = await _twochildren_of(process)
        assert await _send(config, 40, "a") == [200] * 40
        # Every /metrics answer (from either process) counts both processes' callbacks.
        for _ in range(6):
            assert await _accepted(config) == 40

        os.kill(children[0], signal.SIGKILL)

        async def replaced() -> list[int] | None:
            now = children_of(process.proc.pid)
            return now if len(now) == 2 and children[0] not in now else None

        await eventually(replaced, what="the killed ingest process replaced")
        assert "ingest_process_restarted" in process.log

        async def answered() -> bool:
            try:
                return await _send(config, 10, "b") == [200] * 10
            except aiohttp.ClientError:
                return False

        await eventually(answered, what="callbacks answered after the restart")
        # The killed process's 40-or-fewer are kept: counters never go backwards.
        assert await _accepted(config) >= 50

        group = [process.proc.pid, *children_of(process.proc.pid)]
        began = time.monotonic()
        code = await process.stop(timeout=SHUTDOWN_SECONDS + 5)
        assert code == 0
        assert time.monotonic() - began < SHUTDOWN_SECONDS + 1
        assert not [pid for pid in group if _alive(pid)]


async def test_a_taken_port_stops_the_supervisor_at_start_up(config: RunConfig) -> None:
    config = _with_processes(config)
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", config.port))
        taken.listen()
        code, _, err = await run_paysync(config, "ingest", timeout=30)
    assert code == 1
    assert f"ingest cannot listen on 127.0.0.1:{config.port}" in err


async def test_children_failing_at_start_up_stop_the_supervisor(
    tmp_path: Path, db_url: str
) -> None:
    # A broker prefix with no topology: every child refuses to start (run paysync migrate).
    bare = write_config(tmp_path / "bare", database_url=db_url, prefix=f"{uuid.uuid4().hex}.")
    config = _with_processes(bare)
    code, _, err = await run_paysync(config, "ingest", timeout=60)
    assert code == 1
    assert "ingest processes keep failing at start-up" in err
    assert "paysync migrate" in err


async def test_a_killed_supervisor_takes_its_ingest_processes_with_it(config: RunConfig) -> None:
    # SIGKILL cannot be caught: the kernel must end the children (parent-death signal), or
    # they keep the port and serve on with nobody to restart or stop them.
    config = _with_processes(config)
    async with running(config, "ingest", log_name="ingest.log") as process:
        children = await _twochildren_of(process)
        os.kill(process.proc.pid, signal.SIGKILL)

        async def gone() -> bool:
            return not [pid for pid in children if _alive(pid)]

        await eventually(gone, what="the ingest processes ended with their supervisor")
