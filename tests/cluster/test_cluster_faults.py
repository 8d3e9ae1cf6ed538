"""``make faults-cluster``: paysync on a 3-node RabbitMQ cluster and a Postgres server of its
own (tests/support/cluster.py), callbacks of all four providers at a steady rate, and one
fault at a time in the middle of the stream:

1. the node leading ``paysync.inbound`` (its quorum queue) is SIGKILLed;
2. the node the worker is connected to is SIGKILLed;
3. the node ingest is connected to is paused (SIGSTOP) for 15 s;
4. the Postgres postmaster is SIGKILLed (restarted by the test after 5 s).

After each fault: every callback answered 2xx applied, ``paysync.inbound`` empty, every
event relayed, and ingest, worker and reconciler still the same processes: none is ever
restarted. A killed node is started again only after that, so the next fault meets a full
cluster. Not part of ``make test`` (about 3 minutes, three extra Erlang VMs).
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import shutil
import time
from collections.abc import Callable, Coroutine
from dataclasses import dataclass, field
from pathlib import Path

import aio_pika
import asyncpg
import orjson
import pytest

from paysync.amqp import Topology
from simulator.chaos import Chaos, deliveries
from simulator.status import Faults, OrderBook
from tests.support.cluster import Node, RabbitCluster, servers
from tests.support.faults import Drill, collect_events, event_gaps
from tests.support.process import Process, assert_no_secret_in, running, start
from tests.support.scenario import (
    Order,
    make_orders,
    register,
    scenario_config,
    status_simulator,
)
from tests.support.services import BrokerNames
from tests.support.waiting import eventually

pytestmark = pytest.mark.cluster

CALLBACKS_PER_FAULT = int(os.environ.get("FAULTS_CLUSTER_CALLBACKS", "1000"))
RATE = 80.0  # callbacks per second
RECOVERY_SECONDS = 120.0
TOPOLOGY = Topology()


@dataclass(slots=True)
class Figures:
    fault: str
    accepted: int = 0
    applied: int = 0
    events: int = 0
    stuck: int = 0
    refusals: int = 0
    recovered_seconds: float = 0.0
    detail: list[str] = field(default_factory=list)

    @property
    def lost(self) -> int:
        return self.accepted - self.applied

    def line(self) -> str:
        return (
            f"{self.fault}: {self.accepted} accepted, {self.applied} applied, {self.lost} lost, "
            f"{self.stuck} stuck, {self.events} events relayed, {self.refusals} refusals "
            f"retried, recovered {self.recovered_seconds:.1f} s after the fault "
            f"({'; '.join(self.detail)})"
        )


def _logs_in(directory: Path) -> str:
    return "".join(p.read_text(errors="replace") for p in sorted(directory.glob("*.log")))


def _keep_logs(directory: Path) -> None:
    """The processes' logs of the last run, for reading after the test (.run is ignored)."""
    kept = Path(__file__).parents[2] / ".run" / "faults-cluster"
    shutil.rmtree(kept, ignore_errors=True)
    kept.mkdir(parents=True)
    for log in directory.glob("*.log"):
        shutil.copy(log, kept / log.name)
    print(f"logs kept in {kept}", flush=True)


def _node_of(process: Process, rabbit: RabbitCluster) -> Node:
    """The node a paysync process is connected to now (its last ``broker_connected``)."""
    nodes = [
        orjson.loads(line)["node"]
        for line in process.log.splitlines()
        if line.startswith("{") and '"broker_connected"' in line
    ]
    assert nodes, f"{process.log_path.name}: never connected"
    return rabbit.node_on(int(nodes[-1].rsplit(":", 1)[1]))


async def _bind_events(rabbit: RabbitCluster) -> str:
    name = "faults-cluster.events"
    connection = await aio_pika.connect(rabbit.urls[0])
    async with connection:
        channel = await connection.channel()
        queue = await channel.declare_queue(
            name, durable=True, arguments={"x-queue-type": "quorum"}
        )
        await queue.bind(TOPOLOGY.events_exchange, routing_key="payment.#")
    return name


@pytest.mark.timeout(2400)
async def test_cluster_faults_lose_nothing_and_every_role_recovers_by_itself(
    tmp_path: Path,
) -> None:
    try:
        await _drill(tmp_path)
    finally:
        _keep_logs(tmp_path)


async def _drill(tmp_path: Path) -> None:
    book = OrderBook()
    async with servers() as (rabbit, postgres), status_simulator(book, Faults()) as (sim, _):
        names = BrokerNames(prefix="")  # the cluster is the test's own: no prefix
        config = scenario_config(
            tmp_path,
            postgres.url("paysync"),
            names,
            sim,
            book,
            amqp_url=",".join(rabbit.urls),
            heartbeat_seconds=2,
        )
        migrate = await start(config, "migrate", log_name="migrate.log")
        assert await migrate.proc.wait() == 0, migrate.log
        events = await _bind_events(rabbit)
        made: list[Order] = []
        db = await asyncpg.connect(postgres.url("paysync"))
        async with (
            running(config, "ingest") as ingest,
            running(config, "worker", log_name="worker.log") as worker,
            running(config, "reconciler", log_name="reconciler.log") as reconciler,
        ):
            processes = {"ingest": ingest, "worker": worker, "reconciler": reconciler}
            pids = {name: p.proc.pid for name, p in processes.items()}
            drill = Drill(config, names, db, "paysync", rate=RATE)
            drill.ingest, drill.worker = ingest, worker
            killed: list[Node] = []

            async def kill_leader() -> None:
                leader = str((await rabbit.queue_info(TOPOLOGY.inbound_queue))["leader"])
                node = next(n for n in rabbit.nodes if n.name == leader)
                await rabbit.kill(node)
                killed.append(node)

            async def kill_workers_node() -> None:
                node = _node_of(worker, rabbit)
                await rabbit.kill(node)
                killed.append(node)

            async def pause_ingests_node() -> None:
                node = _node_of(ingest, rabbit)
                rabbit.pause(node)
                try:
                    await asyncio.sleep(15)  # the fault itself
                finally:
                    rabbit.resume(node)

            async def kill_postmaster() -> None:
                await postgres.kill_postmaster()
                await asyncio.sleep(5)  # the outage
                await postgres.boot()

            faults: list[tuple[str, Callable[[], Coroutine[None, None, None]]]] = [
                ("queue leader killed", kill_leader),
                ("worker's node killed", kill_workers_node),
                ("ingest's node paused 15 s", pause_ingests_node),
                ("postgres postmaster killed", kill_postmaster),
            ]
            report: list[Figures] = []
            for i, (name, fault) in enumerate(faults):
                figures = Figures(name)
                before = drill.report.refused_then_retried
                # Orders made (and signed) just before their stretch: Plural refuses a
                # signature older than 5 minutes, and the whole run takes longer.
                orders = make_orders(
                    config, book, int(CALLBACKS_PER_FAULT / 1.75) + 1, ref_prefix=f"f{i}"
                )
                await register(config, orders)
                made += orders
                part = deliveries(orders, Chaos(drop=0.0, duplicate=0.0, seed=i))
                await drill.deliver(part, {len(part) // 2: fault})
                await _recovered(drill, postgres.url("paysync"), rabbit, figures)
                figures.refusals = drill.report.refused_then_retried - before
                figures.detail.append(
                    "nodes now "
                    + ", ".join(
                        f"{p}: {_node_of(proc, rabbit).amqp_port}" for p, proc in processes.items()
                    )
                )
                for p, proc in processes.items():
                    assert proc.proc.returncode is None, f"{p} died after {name}:\n{proc.log}"
                    assert proc.proc.pid == pids[p]
                report.append(figures)
                print(figures.line(), flush=True)
                while killed:  # restore the cluster for the next fault
                    await rabbit.boot(killed.pop())
                    await rabbit.wait_members(3)
            rows = await drill.db.fetch("SELECT event_id FROM outbox")
            outbox = {str(r["event_id"]) for r in rows}
            for proc in processes.values():
                assert await proc.stop() == 0
            truth = {life.merchant_ref: life.statuses[-1] for _, life in made}
            found = {
                r["merchant_ref"]: r["status"]
                for r in await drill.db.fetch("SELECT merchant_ref, status FROM payments")
            }
            assert found == truth, "a payment differs from the provider's truth"
        bodies = await collect_events(events, outbox, timeout=120, amqp_url=rabbit.urls[0])
        await drill.db.close()
        assert event_gaps(bodies) == {}
        assert_no_secret_in(_logs_in(tmp_path), config)
    assert all(f.lost == 0 and f.stuck == 0 for f in report), [f.line() for f in report]


async def _recovered(drill: Drill, url: str, rabbit: RabbitCluster, figures: Figures) -> None:
    """Every accepted callback applied, the inbound queue empty, every event relayed;
    fills ``figures`` (time counted from the fault's start)."""

    async def done() -> bool:
        figures.accepted = len(drill.accepted_bodies)
        try:
            if drill.db.is_closed():
                drill.db = await asyncpg.connect(url)  # ours died with the postmaster
            figures.applied = await drill.applied()
            unpublished = await drill.db.fetchval(
                "SELECT count(*) FROM outbox WHERE published_at IS NULL"
            )
            figures.events = await drill.db.fetchval(
                "SELECT count(*) FROM outbox WHERE published_at IS NOT NULL"
            )
        except (OSError, asyncpg.PostgresError, asyncpg.InterfaceError):
            with contextlib.suppress(Exception):
                await drill.db.close()
            return False
        figures.stuck = int(str((await rabbit.queue_info(TOPOLOGY.inbound_queue))["messages"]))
        return figures.applied == figures.accepted and figures.stuck == 0 and unpublished == 0

    try:
        await eventually(done, timeout=RECOVERY_SECONDS, interval=0.5, what=figures.fault)
    except AssertionError as exc:
        raise AssertionError(f"{exc}: {figures.line()}") from None
    finally:
        figures.recovered_seconds = time.monotonic() - drill.fault_started
