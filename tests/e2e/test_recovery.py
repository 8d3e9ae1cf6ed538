"""Every role recovers from a fault on its own, without a restart, and says the truth on
``/readyz`` meanwhile; start-up failures end the process at once with one clear line.

Each test injects one fault into one process and never restarts that process: what must
come back is checked on the same pid.
"""

from __future__ import annotations

import asyncio
import signal
import socket
import time
import uuid
from decimal import Decimal
from pathlib import Path

import aiohttp
import asyncpg
import orjson
import pytest

from simulator.ccpayment import lifecycle
from tests.support import rabbitctl
from tests.support.config import ACCOUNT, APP_ID, RunConfig, write_config
from tests.support.process import Process, running, start
from tests.support.services import BrokerNames
from tests.support.tcpproxy import TcpProxy
from tests.support.waiting import eventually

pytestmark = pytest.mark.e2e

# Applied within this many seconds of being accepted once the fault is over (the issue's
# bound); generous next to the test configuration's 0.2-1 s reconnect backoff.
RECOVERY_SECONDS = 10.0


def _callback(config: RunConfig, ref: str) -> tuple[dict[str, str], bytes]:
    [made] = lifecycle(
        app_id=APP_ID,
        app_secret=config.secret,
        merchant_ref=ref,
        amount=Decimal("25.00"),
        parts=[Decimal("25.00")],
        timestamp=int(time.time()),
    )
    return made.headers, made.body


async def _send(config: RunConfig, refs: list[str]) -> None:
    """Deliver one signed callback per ref; each must be accepted (confirmed) now."""
    async with aiohttp.ClientSession() as session:
        for ref in refs:
            headers, body = _callback(config, ref)
            url = f"{config.url}/webhooks/ccpayment/{ACCOUNT}"
            async with session.post(url, data=body, headers=headers) as resp:
                assert resp.status == 200, await resp.text()


async def _applied(db: asyncpg.Connection, refs: list[str], timeout: float, what: str) -> None:
    async def done() -> bool:
        found = await db.fetchval(
            "SELECT count(*) FROM payments WHERE merchant_ref = ANY($1::text[])", refs
        )
        return bool(found == len(refs))

    await eventually(done, timeout=timeout, what=what)


def _refs(label: str, n: int) -> list[str]:
    return [f"{label}-{uuid.uuid4().hex[:8]}" for _ in range(n)]


def _probe_url(process: Process) -> str | None:
    for line in process.log.splitlines():
        if line.startswith("{") and (event := orjson.loads(line))["event"] == "probes_listening":
            return f"http://127.0.0.1:{event['port']}"
    return None


async def _status(url: str) -> int:
    try:
        async with aiohttp.ClientSession() as session, session.get(url) as resp:
            return resp.status
    except aiohttp.ClientError:
        return 0


async def _probes(process: Process) -> str:
    async def found() -> str | None:
        return _probe_url(process)

    return await eventually(found, what="the worker's probe port in its log")


def _alive(process: Process) -> None:
    assert process.proc.returncode is None, f"exited {process.proc.returncode}:\n{process.log}"


async def test_the_worker_consumes_again_after_its_broker_connection_is_closed(
    config: RunConfig, db: asyncpg.Connection
) -> None:
    async with (
        running(config, "ingest"),
        running(config, "worker", log_name="worker.log") as worker,
    ):
        first = _refs("before", 5)
        await _send(config, first)
        await _applied(db, first, 15, "callbacks applied before the fault")
        # Only the worker's own connections, found by its sockets; each names the worker.
        own = await rabbitctl.connections_of(worker.proc.pid)
        assert own, "the worker holds no broker connection"
        assert all(c.name and "worker" in c.name for c in own), own
        for connection in own:
            await rabbitctl.close(connection)
        await eventually(lambda: _gone(own), what="the closed connections gone from the broker")
        after = _refs("after", 20)
        await _send(config, after)
        await _applied(db, after, RECOVERY_SECONDS, "callbacks applied after the fault")
        _alive(worker)
    assert "consumer_lost" in worker.log


async def _gone(closed: list[rabbitctl.ClientConnection]) -> bool:
    pids = {c.pid for c in await rabbitctl.connections()}
    return not pids & {c.pid for c in closed}


@pytest.fixture
async def proxy():
    tcp_proxy = await TcpProxy("127.0.0.1", 5672).start()
    yield tcp_proxy
    await tcp_proxy.close()


def _configs(
    tmp_path: Path, db_url: str, names: BrokerNames, worker_amqp_url: str
) -> tuple[RunConfig, RunConfig]:
    """Ingest's configuration, and the worker's: the same but for its broker address."""
    config = write_config(tmp_path, database_url=db_url, prefix=names.prefix)
    worker = write_config(
        tmp_path / "w",
        database_url=db_url,
        prefix=names.prefix,
        secret=config.secret,
        amqp_url=worker_amqp_url,
    )
    return config, worker


async def test_the_worker_is_not_ready_while_it_has_no_consumer_and_recovers(
    tmp_path: Path, db_url: str, names: BrokerNames, db: asyncpg.Connection, proxy: TcpProxy
) -> None:
    config, proxied = _configs(
        tmp_path, db_url, names, f"amqp://guest:guest@127.0.0.1:{proxy.port}/"
    )
    async with (
        running(config, "ingest"),
        running(proxied, "worker", log_name="worker.log") as worker,
    ):
        probes = await _probes(worker)
        await eventually(lambda: _is(f"{probes}/readyz", 200), what="worker ready")
        proxy.cut()  # the worker's broker link is gone: no consumer
        await eventually(lambda: _is(f"{probes}/readyz", 503), what="worker not ready")
        assert await _status(f"{probes}/healthz") == 200  # alive: nothing to restart
        waiting = _refs("queued", 5)
        await _send(config, waiting)  # ingest has its own link: these wait on the queue
        proxy.restore()
        await eventually(lambda: _is(f"{probes}/readyz", 200), what="worker ready again")
        await _applied(db, waiting, RECOVERY_SECONDS, "queued callbacks applied")
        _alive(worker)


async def _is(url: str, status: int) -> bool:
    return await _status(url) == status


async def test_the_worker_resumes_after_being_frozen_past_its_heartbeat(
    tmp_path: Path, db_url: str, names: BrokerNames, db: asyncpg.Connection
) -> None:
    # Heartbeat 2 s: RabbitMQ drops a connection silent for two of them, so a 15 s freeze
    # costs the worker its link (the default heartbeat would hide that).
    config = write_config(tmp_path, database_url=db_url, prefix=names.prefix, heartbeat_seconds=2)
    async with (
        running(config, "ingest"),
        running(config, "worker", log_name="worker.log") as worker,
    ):
        probes = await _probes(worker)
        await eventually(lambda: _is(f"{probes}/readyz", 200), what="worker ready")
        worker.proc.send_signal(signal.SIGSTOP)
        try:
            frozen = _refs("frozen", 5)
            await _send(config, frozen)
            await asyncio.sleep(15)  # the fault itself: a process frozen for 15 s
        finally:
            worker.proc.send_signal(signal.SIGCONT)
        await _applied(db, frozen, RECOVERY_SECONDS, "callbacks applied after the freeze")
        after = _refs("thawed", 5)
        await _send(config, after)
        await _applied(db, after, RECOVERY_SECONDS, "callbacks applied after the thaw")
        _alive(worker)
    assert "broker_disconnected" in worker.log, "the freeze did not cost the link: no test"


async def test_a_busy_port_stops_ingest_at_once_naming_the_port(config: RunConfig) -> None:
    host, port = "127.0.0.1", config.settings.ingest.port
    with socket.socket() as squatter:
        squatter.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        squatter.bind((host, port))
        squatter.listen()
        process = await start(config, "ingest")
        async with asyncio.timeout(5):
            code = await process.proc.wait()
    assert code != 0
    lines = [line for line in process.log.splitlines() if line.startswith("paysync:")]
    assert lines == [f"paysync: ingest cannot listen on {host}:{port}: Address already in use"]
    assert "Traceback" not in process.log


async def test_sigterm_stops_a_worker_that_never_reached_its_broker(
    tmp_path: Path, db_url: str, names: BrokerNames
) -> None:
    with socket.socket() as closed:
        closed.bind(("127.0.0.1", 0))
        dead_port = closed.getsockname()[1]  # nothing listens here once closed
    config = write_config(
        tmp_path,
        database_url=db_url,
        prefix=names.prefix,
        amqp_url=f"amqp://guest:guest@127.0.0.1:{dead_port}/",
    )
    process = await start(config, "worker")

    async def trying() -> bool:
        return "broker_connect_failed" in process.log

    await eventually(trying, what="the worker trying to connect")
    process.proc.send_signal(signal.SIGTERM)
    async with asyncio.timeout(config.settings.ingest.shutdown_timeout_seconds + 2):
        assert await process.proc.wait() == 0


async def test_a_second_broker_address_takes_over_when_the_first_dies(
    tmp_path: Path, db_url: str, names: BrokerNames, db: asyncpg.Connection
) -> None:
    first = await TcpProxy("127.0.0.1", 5672).start()
    second = await TcpProxy("127.0.0.1", 5672).start()
    try:
        config, nodes = _configs(
            tmp_path,
            db_url,
            names,
            f"amqp://guest:guest@127.0.0.1:{first.port},127.0.0.1:{second.port}/",
        )
        async with (
            running(config, "ingest"),
            running(nodes, "worker", log_name="worker.log") as worker,
        ):
            refs = _refs("one", 3)
            await _send(config, refs)
            await _applied(db, refs, 15, "applied through the first node")
            first.cut()  # the first node dies and stays dead
            refs = _refs("two", 3)
            await _send(config, refs)
            await _applied(db, refs, RECOVERY_SECONDS, "applied through the second node")
            _alive(worker)
        connected = [
            orjson.loads(line)["node"]
            for line in worker.log.splitlines()
            if line.startswith("{") and '"broker_connected"' in line
        ]
        assert connected == [f"127.0.0.1:{first.port}", f"127.0.0.1:{second.port}"]
    finally:
        await first.close()
        await second.close()
