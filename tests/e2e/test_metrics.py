"""Every role's /metrics during an end-to-end run, each role a process of its own: the
documented metrics move as they should."""

from __future__ import annotations

import time
from pathlib import Path

import aiohttp
import asyncpg
import orjson
import pytest

from paysync.settings import Secret
from simulator import SIMULATORS
from simulator.sender import send_request
from simulator.status import Faults, OrderBook
from tests.support.config import ACCOUNT, RunConfig
from tests.support.metrics import count, sample
from tests.support.process import Process, running
from tests.support.scenario import make_orders, register, scenario_config, status_simulator
from tests.support.services import BrokerNames
from tests.support.waiting import eventually

pytestmark = pytest.mark.e2e


def _probe_url(process: Process) -> str:
    for line in process.log.splitlines():
        if line.startswith("{") and (event := orjson.loads(line))["event"] == "probes_listening":
            return f"http://127.0.0.1:{event['port']}"
    raise AssertionError(f"no probes_listening in the log:\n{process.log}")


async def _get(url: str) -> tuple[int, str]:
    async with aiohttp.ClientSession() as session, session.get(url) as resp:
        return resp.status, await resp.text()


async def _exposition(base: str) -> str:
    status, text = await _get(f"{base}/metrics")
    assert status == 200
    return text


async def _metric(base: str, name: str, **labels: str) -> float:
    return sample(await _exposition(base), name, **labels)


async def _moved(base: str, name: str, **labels: str) -> float:
    """For polls: 0 while a declared counter has not been counted with these labels."""
    return count(await _exposition(base), name, **labels)


async def _probes_up(config: RunConfig, process: Process) -> str:
    async def found() -> str | None:
        try:
            return _probe_url(process)
        except AssertionError:
            return None

    base = await eventually(found, what="the probe port in the log")
    for path in ("/healthz", "/readyz"):

        async def ok(path: str = path) -> bool:
            return (await _get(f"{base}{path}"))[0] == 200

        await eventually(ok, what=f"{path} 200")
    return base


async def test_every_roles_metrics_move_as_documented(
    tmp_path: Path, db_url: str, names: BrokerNames, db: asyncpg.Connection
) -> None:
    book = OrderBook()
    async with status_simulator(book, Faults()) as (sim_url, _app):
        config = scenario_config(tmp_path, db_url, names, sim_url, book)
        orders = make_orders(config, book, 4)
        hdfc = next(life for provider, life in orders if provider == "hdfc")
        plural = next(life for provider, life in orders if provider == "plural")
        account = config.settings.account("hdfc", ACCOUNT)
        assert account is not None
        async with (
            running(config, "ingest") as _ingest,
            running(config, "worker", log_name="worker.log") as worker,
        ):
            worker_url = await _probes_up(config, worker)
            # A forged callback: counted by reason at ingest, nothing else moves.
            body = SIMULATORS["hdfc"].callback_body("forged-1", now=int(time.time()))
            forged = account.model_copy(update={"secrets": [Secret("env:FORGED", "wrong")]})
            headers = SIMULATORS["hdfc"].sign_callback(forged, body, now=int(time.time()))
            async with aiohttp.ClientSession() as session:
                bad = await session.post(
                    f"{config.url}/webhooks/hdfc/{ACCOUNT}", data=body, headers=headers
                )
                assert bad.status == 401
                # A genuine callback: accepted, applied, a transition, an event.
                answer = await send_request(session, config.url, "hdfc", ACCOUNT, hdfc.callbacks[0])
                assert answer.status == 200
            rejected = await _metric(
                config.url, "paysync_callbacks_total", provider="hdfc", reason="bad_credentials"
            )
            assert rejected == 1

            async def applied() -> bool:
                moved = await _moved(
                    worker_url,
                    "paysync_transitions_total",
                    provider="hdfc",
                    to_status="paid",
                    source="callback",
                )
                relayed = await _moved(worker_url, "paysync_events_published_total")
                return moved == 1 and relayed == 1

            await eventually(applied, what="the worker's transition and event counters")
            assert await _metric(worker_url, "paysync_observations_total", outcome="applied") == 1
            assert await _metric(worker_url, "paysync_outbox_backlog") == 0

            # A payment whose callback never came: the reconciler's counters move.
            await register(config, [("plural", plural)])

            async def registered() -> bool:
                count = await db.fetchval("SELECT count(*) FROM payments WHERE provider = 'plural'")
                return bool(count == 1)

            await eventually(registered, what="the registration applied")
            await db.execute("UPDATE payments SET next_check_at = now()")
            async with running(config, "reconciler", log_name="reconciler.log") as reconciler:
                reconciler_url = await _probes_up(config, reconciler)

                async def checked() -> bool:
                    checks = await _moved(
                        reconciler_url, "paysync_reconcile_checks_total", provider="plural"
                    )
                    calls = await _moved(
                        reconciler_url,
                        "paysync_provider_api_calls_total",
                        provider="plural",
                        code="200",
                    )
                    repaired = await _moved(
                        worker_url,
                        "paysync_transitions_total",
                        provider="plural",
                        source="reconciler",
                    )
                    return checks >= 1 and calls >= 1 and repaired >= 1

                await eventually(checked, timeout=30, what="checks, API calls and repairs counted")
