"""Nothing lost: the fault drill (tests/support/faults.py) and a clean stop.

``make test`` runs a short drill; ``make faults`` the long one (``FAULT_DRILL_CALLBACKS``
callbacks, 6,000 by default)."""

from __future__ import annotations

import asyncio
import os
import signal
from pathlib import Path

import asyncpg
import orjson
import pytest

from simulator.chaos import Chaos, deliveries
from simulator.status import Faults, OrderBook
from tests.support.amqp import depth
from tests.support.faults import Drill, collect_events, dead_ids, event_gaps
from tests.support.process import assert_no_secret_in, running, start
from tests.support.scenario import (
    PROVIDERS,
    make_orders,
    reconcile,
    register,
    scenario_config,
    status_simulator,
    statuses,
)
from tests.support.services import BrokerNames
from tests.support.waiting import eventually

pytestmark = pytest.mark.e2e

CALLBACKS = int(os.environ.get("FAULT_DRILL_CALLBACKS", "700"))
# Within this after each fault, everything accepted is applied and the queue is empty.
RECOVERY_SECONDS = 60.0


def _json_lines(text: str) -> list[dict[str, object]]:
    return [orjson.loads(line) for line in text.splitlines() if line.startswith("{")]


def _logs_in(directory: Path) -> str:
    """Everything every process of the run logged (workers started by the drill included)."""
    return "".join(p.read_text(errors="replace") for p in sorted(directory.glob("*.log")))


@pytest.mark.timeout(max(120, CALLBACKS // 10))
async def test_fault_drill_loses_nothing(
    tmp_path: Path, db_url: str, names: BrokerNames, db: asyncpg.Connection
) -> None:
    book = OrderBook()
    async with status_simulator(book, Faults()) as (sim_url, _app):
        config = scenario_config(tmp_path, db_url, names, sim_url, book)
        # About 1.75 callbacks per order across the four providers.
        made = make_orders(config, book, int(CALLBACKS / 1.75) + 1, ref_prefix="drill")
        sent = deliveries(made, Chaos(drop=0.0, duplicate=0.0, seed=3))[:CALLBACKS]
        truth = {life.merchant_ref: (life.statuses[-1], life.amount) for _, life in made}
        events = await names.bind_events_queue()
        drill = Drill(config, names, db, db_url.rsplit("/", 1)[1], rate=max(100, CALLBACKS / 25))
        async with running(config, "ingest") as ingest:
            drill.ingest = ingest
            await register(config, made)
            await drill.start_worker(1)
            faults = {
                "broker connections closed": drill.close_broker_connections,
                "database backends terminated": drill.terminate_database_backends,
                "poison messages": drill.inject_poison,
                "relay stalled": drill.stall_relay,
                "worker killed": drill.kill_worker,
            }
            # One fault at a time, in the middle of its own stretch of callbacks; then
            # everything accepted so far must be applied and the queue empty again.
            stretch = len(sent) // len(faults) + 1
            for i, (name, fault) in enumerate(faults.items()):
                part = sent[i * stretch : (i + 1) * stretch]
                await drill.deliver(part, {len(part) // 2: fault})
                await drill.wait_recovered(name, timeout=RECOVERY_SECONDS)
            jobs = await asyncio.gather(*(reconcile(config, "--provider", p) for p in PROVIDERS))
            assert all(code == 0 for code, _ in jobs), [r["counts"] for _, r in jobs]

            async def true() -> bool:
                found = await statuses(db)
                return all(found.get(ref) == want for ref, want in truth.items())

            await eventually(true, timeout=60, what="every payment equal to the provider's truth")

            async def relayed() -> bool:
                return not await db.fetchval(
                    "SELECT count(*) FROM outbox WHERE published_at IS NULL"
                )

            await eventually(relayed, timeout=60, what="every event relayed")

            # The jobs published what they saw (in sync or not) onto paysync.inbound: the
            # worker must have taken all of it before it stops, since a clean stop drains
            # only the deliveries it holds. (Ready messages only: one it holds unacked is
            # still caught below, once it has stopped.)
            async def taken() -> bool:
                return await depth(names.topology.inbound_queue) == 0

            await eventually(taken, timeout=60, what="the jobs' observations taken")
            assert drill.worker is not None
            assert await drill.worker.stop() == 0
            assert await ingest.stop() == 0
        assert_no_secret_in(_logs_in(tmp_path), config)

    report = drill.report
    print(report.line())
    assert report.accepted == report.applied == len({r.body for _, r in sent})
    assert report.lost == 0
    # Nothing left unacked: with every consumer stopped, an unacked message would be ready.
    assert await depth(names.topology.inbound_queue) == 0
    assert sorted(await dead_ids(names)) == sorted(report.poison)
    outbox = {str(r["event_id"]) for r in await db.fetch("SELECT event_id FROM outbox")}
    bodies = await collect_events(events, outbox, timeout=60)
    assert event_gaps(bodies) == {}
    assert {orjson.loads(b)["payment"]["merchant_ref"] for b in bodies} == set(truth)


async def test_a_clean_stop_leaves_nothing_to_redeliver(
    tmp_path: Path, db_url: str, names: BrokerNames, db: asyncpg.Connection
) -> None:
    book = OrderBook()
    async with status_simulator(book, Faults()) as (sim_url, _app):
        config = scenario_config(tmp_path, db_url, names, sim_url, book)
        made = make_orders(config, book, 200, ref_prefix="drill")
        sent = deliveries(made, Chaos(drop=0.0, duplicate=0.0, seed=1))
        async with running(config, "ingest"):
            drill = Drill(config, names, db, db_url.rsplit("/", 1)[1], rate=400)
            # Everything waits on the queue first; then a worker starts and is stopped
            # in the middle of the backlog.
            await drill.deliver(sent, {})
            first = await start(config, "worker", log_name="worker-1.log")

            async def busy() -> bool:
                return bool(await db.fetchval("SELECT count(*) FROM inbox") >= 50)

            await eventually(busy, what="the worker under way")
            first.proc.send_signal(signal.SIGTERM)
            assert await first.proc.wait() == 0
            assert await depth(names.topology.inbound_queue) > 0, "stopped too late to tell"
            async with running(config, "worker", log_name="worker-2.log") as second:
                await drill.wait_applied(timeout=60)
        first_log, second_log = (_json_lines(p.log) for p in (first, second))
    # A quorum queue hands a consumer up to its prefetch ahead of time; on the cancel it takes
    # back the ones it had not sent yet, counted (and flagged) as delivered once. What a clean
    # stop must guarantee: nothing the stopped worker received comes back, and nothing is
    # applied twice.
    handled_by_first = {line["message_id"] for line in first_log if "message_id" in line}
    redelivered = {
        line["message_id"] for line in second_log if line["event"] == "message_redelivered"
    }
    assert handled_by_first, "the first worker applied nothing: the test proves nothing"
    assert not redelivered & handled_by_first
    receipts = await db.fetch(
        "SELECT message_id, count(*) FROM inbox GROUP BY 1 HAVING count(*) > 1"
    )
    assert [tuple(r) for r in receipts] == []
    assert drill.report.lost == 0
