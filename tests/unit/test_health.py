"""Health: readiness per role (every check must pass) and liveness (no main task died);
the probe handlers' answers; TLS files checked at start-up."""

from __future__ import annotations

import asyncio
import subprocess
from pathlib import Path

import orjson
import pytest
from aiohttp.test_utils import make_mocked_request

from paysync.amqp import broker_errors
from paysync.broker import _close_quietly
from paysync.cli.roles import _Deadline, _until_stopped
from paysync.errors import BrokerUnavailable, RoleEnded
from paysync.health import Health
from paysync.metrics import Metrics
from paysync.probes import build_probe_app, healthz, readyz
from paysync.tls import check_tls_files


async def _answer() -> bool:
    return True


def _boom() -> bool:
    raise RuntimeError("a check that fails to answer")


async def test_a_process_is_ready_only_when_every_role_is() -> None:
    health = Health()
    worker_ready = False
    health.add_check("ingest", _answer)
    health.add_check("worker", lambda: worker_ready)
    assert await health.readiness() == {"ingest": True, "worker": False}
    worker_ready = True
    assert await health.readiness() == {"ingest": True, "worker": True}
    health.add_check("relay", _boom)
    assert (await health.readiness())["relay"] is False


async def test_a_role_whose_task_ended_makes_the_process_dead_unless_stopping() -> None:
    health = Health()
    forever = asyncio.get_running_loop().create_future()
    alive = asyncio.ensure_future(forever)
    died = asyncio.ensure_future(asyncio.sleep(0))
    await died
    health.watch("worker", alive)
    health.watch("relay", died)
    assert health.dead() == ["relay"]
    health.stopping = True
    assert health.dead() == []
    alive.cancel()


async def _call(handler, health: Health) -> tuple[int, dict[str, object]]:
    app = build_probe_app(health, Metrics())
    response = await handler(make_mocked_request("GET", "/", app=app))
    return response.status, orjson.loads(response.body)


async def test_readyz_names_the_roles_that_are_not_ready() -> None:
    health = Health()
    health.add_check("worker", lambda: False)
    health.add_check("relay", lambda: True)
    assert await _call(readyz, health) == (
        503,
        {
            "status": "not_ready",
            "not_ready": ["worker"],
            "checks": {"worker": False, "relay": True},
        },
    )


async def test_healthz_fails_once_a_role_died() -> None:
    health = Health()
    assert await _call(healthz, health) == (200, {"status": "ok"})
    ended = asyncio.ensure_future(asyncio.sleep(0))
    await ended
    health.watch("reconciler", ended)
    assert await _call(healthz, health) == (503, {"status": "dead", "roles": ["reconciler"]})


def test_tls_files_that_are_fine_give_no_problem(tmp_path: Path) -> None:
    key, cert = tmp_path / "key.pem", tmp_path / "cert.pem"
    subprocess.run(
        [
            "openssl",
            "req",
            "-x509",
            "-newkey",
            "rsa:2048",
            "-nodes",
            "-subj",
            "/CN=t",
            "-keyout",
            str(key),
            "-out",
            str(cert),
            "-days",
            "1",
        ],
        check=True,
        capture_output=True,
    )
    db = f"postgresql://u@h/db?sslmode=verify-full&sslrootcert={cert}"
    amqp = f"amqps://u:p@h/?cafile={cert}&certfile={cert}&keyfile={key}"
    assert check_tls_files(db, [amqp]) == []


def test_a_missing_or_unusable_tls_file_is_one_line_naming_setting_and_file(
    tmp_path: Path,
) -> None:
    junk = tmp_path / "junk.pem"
    junk.write_text("not a certificate")
    db = f"postgresql://u:dbpass@h/db?sslrootcert={tmp_path}/absent.pem"
    amqp = f"amqps://u:brokerpass@h/?cafile={junk}"
    problems = check_tls_files(db, [amqp])
    assert problems == [
        f"database_url: sslrootcert {tmp_path}/absent.pem: No such file or directory",
        f"amqp_url: cafile {junk}: not a usable certificate or key (SSLError)",
    ]
    assert not any("pass" in p for p in problems)


@pytest.mark.parametrize("url", ["amqp://u:p@h/", "amqps://u:p@h/?heartbeat=5"])
def test_urls_without_tls_files_give_no_problem(url: str) -> None:
    assert check_tls_files("postgresql://u@h/db", [url]) == []


class _StuckConnection:
    """What aiormq hands back for a connection it found stuck: closing it re-raises the
    cancellation of its reader."""

    async def close(self) -> None:
        raise asyncio.CancelledError


async def test_closing_a_stuck_connection_does_not_end_the_supervisor() -> None:
    await _close_quietly(_StuckConnection(), timeout=1)  # type: ignore[arg-type]


async def test_the_supervisors_own_cancellation_still_propagates() -> None:
    class Slow:
        async def close(self) -> None:
            await asyncio.sleep(10)

    task = asyncio.create_task(_close_quietly(Slow(), timeout=30))  # type: ignore[arg-type]
    await asyncio.sleep(0)
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task


@pytest.mark.parametrize("how", ["returned", "cancelled"])
async def test_a_role_that_ends_while_running_fails_the_process(how: str) -> None:
    stop = asyncio.Event()

    async def role() -> None:
        if how == "cancelled":
            raise asyncio.CancelledError  # a library's cancellation leaking out

    async def waits() -> None:
        await stop.wait()

    tasks = {"reconciler": asyncio.create_task(role()), "worker": asyncio.create_task(waits())}
    health = Health()
    with pytest.raises(RoleEnded, match=f"{how}|was cancelled"):
        await _until_stopped(stop, tasks, health, _Deadline(5))
    assert health.stopping
    assert stop.is_set()


async def test_a_cancellation_leaking_out_of_the_client_is_a_broker_failure() -> None:
    async def stuck_publish() -> None:
        raise asyncio.CancelledError  # what awaiting a stuck aiormq connection raises

    with (
        pytest.raises(BrokerUnavailable, match="the connection was lost"),
        broker_errors("publish not confirmed"),
    ):
        await stuck_publish()
