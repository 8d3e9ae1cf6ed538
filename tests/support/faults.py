"""The fault drill: paysync's ingest and worker as real processes against real RabbitMQ and
Postgres, callbacks of all four providers at a steady rate, and faults in the middle.

Faults, one at a time, each in the middle of its own stretch of callbacks; after each, the
drill waits until every accepted callback is applied and ``paysync.inbound`` is empty again,
on the same processes (only the fault that kills the worker starts a new one):
- the RabbitMQ connections of paysync's own processes force-closed (found by their
  connection names; nobody else's);
- every Postgres backend of the test database terminated (``pg_terminate_backend``);
- poison messages published straight onto ``paysync.inbound``;
- the outbox relay stalled (the drill holds the relay's advisory lock for a while);
- the worker SIGKILLed in the middle of its work, then started again.

The driver retries a refused callback the way a provider does (``503`` → again later), so
every callback is eventually answered ``2xx``. Afterwards one reconcile run per provider,
then the invariants: every callback answered 2xx is in the inbox; every payment equals the
simulator's truth; each payment's events carry ``seq`` 1..n; nothing is left unacked;
``paysync.dead`` holds exactly the poison messages.
"""

from __future__ import annotations

import asyncio
import signal
import time
import uuid
from collections import defaultdict
from collections.abc import Callable, Coroutine
from dataclasses import dataclass, field
from datetime import UTC, datetime

import aio_pika
import aiohttp
import asyncpg
import orjson

from paysync.amqp import INBOUND_ROUTING_KEY
from schemas.envelope import Envelope, EnvelopeKind
from simulator import SIMULATORS
from simulator.base import Request
from simulator.sender import send_request
from tests.support import rabbitctl
from tests.support.amqp import depth
from tests.support.config import ACCOUNT, RunConfig
from tests.support.process import Process, start
from tests.support.services import AMQP_URL, BrokerNames
from tests.support.waiting import eventually
from worker.relay import LOCK_KEY

PROVIDERS = sorted(SIMULATORS)
POISON = 5


@dataclass(slots=True)
class Report:
    callbacks: int = 0
    accepted: int = 0
    applied: int = 0
    refused_then_retried: int = 0
    faults: list[str] = field(default_factory=list)
    poison: list[str] = field(default_factory=list)
    recovery: dict[str, float] = field(default_factory=dict)

    @property
    def lost(self) -> int:
        return self.accepted - self.applied

    def line(self) -> str:
        return (
            f"fault drill: {self.callbacks} callbacks, {self.accepted} accepted, "
            f"{self.applied} applied, {self.lost} lost "
            f"({self.refused_then_retried} refusals retried; faults: {', '.join(self.faults)}; "
            "recovered in "
            + ", ".join(f"{name} {s:.1f} s" for name, s in self.recovery.items())
            + ")"
        )


class Drill:
    def __init__(
        self,
        config: RunConfig,
        names: BrokerNames,
        db: asyncpg.Connection,
        database: str,
        *,
        rate: float,
    ) -> None:
        self.config = config
        self.names = names
        self.db = db
        self.database = database
        self.rate = rate
        self.report = Report()
        self.accepted_bodies: set[bytes] = set()
        self.worker: Process | None = None
        self.ingest: Process | None = None
        self.fault_started = 0.0

    # --- processes -----------------------------------------------------------------------

    async def start_worker(self, n: int) -> None:
        self.worker = await start(self.config, "worker", log_name=f"worker-{n}.log")

    # --- driving -------------------------------------------------------------------------

    async def deliver(
        self,
        requests: list[tuple[str, Request]],
        faults: dict[int, Callable[[], Coroutine[None, None, None]]],
    ) -> None:
        """Send at a steady rate; at request index ``i`` in ``faults``, inject that fault.
        A refused callback is sent again until it is answered 2xx, as providers do."""
        self.report.callbacks += len(requests)
        interval = 1.0 / self.rate
        pending: set[asyncio.Task[None]] = set()
        async with aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=10)) as session:
            started = time.monotonic()
            for i, (provider, request) in enumerate(requests):
                if i in faults:
                    self.fault_started = time.monotonic()
                    pending.add(asyncio.create_task(faults[i]()))
                delay = started + i * interval - time.monotonic()
                if delay > 0:
                    await asyncio.sleep(delay)
                pending.add(asyncio.create_task(self._until_accepted(session, provider, request)))
            await asyncio.gather(*pending)

    async def _until_accepted(
        self, session: aiohttp.ClientSession, provider: str, request: Request
    ) -> None:
        for attempt in range(200):
            try:
                answer = await send_request(session, self.config.url, provider, ACCOUNT, request)
                status = answer.status
            except (aiohttp.ClientError, TimeoutError):
                status = 0
            if 200 <= status < 300:
                self.accepted_bodies.add(request.body)
                return
            assert status in (0, 503), f"{provider} callback refused with {status}"
            self.report.refused_then_retried += 1
            await asyncio.sleep(min(2.0, 0.05 * 2**attempt))
        raise AssertionError("a callback was never accepted")

    # --- faults --------------------------------------------------------------------------

    async def close_broker_connections(self) -> None:
        pids = [p.proc.pid for p in (self.ingest, self.worker) if p is not None]

        async def one_each() -> list[rabbitctl.ClientConnection] | None:
            found = [
                c
                for c in await rabbitctl.connections()
                if c.name and any(c.name.endswith(f" pid {pid}") for pid in pids)
            ]
            return found if len(found) == len(pids) else None

        ours = await eventually(one_each, what="one broker connection per paysync process")
        for connection in ours:
            await rabbitctl.close(connection, "paysync fault drill")
        self.report.faults.append(f"{len(ours)} broker connections closed")

    async def terminate_database_backends(self) -> None:
        killed = await self.db.fetchval(
            "SELECT count(pg_terminate_backend(pid)) FROM pg_stat_activity"
            " WHERE datname = $1 AND pid <> pg_backend_pid()",
            self.database,
        )
        self.report.faults.append(f"{killed} database backends terminated")

    async def kill_worker(self) -> None:
        assert self.worker is not None
        code = self.worker.proc.returncode
        assert code is None, f"the worker died by itself (exit {code}):\n{self.worker.log[-4000:]}"
        self.worker.proc.send_signal(signal.SIGKILL)
        await self.worker.proc.wait()
        self.report.faults.append("worker SIGKILLed")
        await asyncio.sleep(0.5)
        await self.start_worker(2)

    async def stall_relay(self, seconds: float = 3.0) -> None:
        await self.db.execute("SELECT pg_advisory_lock($1)", LOCK_KEY)
        try:
            await asyncio.sleep(seconds)
        finally:
            await self.db.execute("SELECT pg_advisory_unlock($1)", LOCK_KEY)
        self.report.faults.append(f"relay stalled {seconds:g} s")

    async def inject_poison(self) -> None:
        connection = await aio_pika.connect(AMQP_URL)
        async with connection:
            channel = await connection.channel(publisher_confirms=True)
            exchange = await channel.get_exchange(self.names.topology.inbound_exchange)
            for _ in range(POISON):
                envelope = Envelope(
                    message_id=str(uuid.uuid4()),
                    kind=EnvelopeKind.CALLBACK,
                    provider="ccpayment",
                    account=ACCOUNT,
                    received_at=datetime.now(UTC),
                    body=b'{"pay_status":"success"}',
                    content_type="application/json",
                    verified_by="env:FAULT_DRILL",
                )
                message = aio_pika.Message(
                    envelope.body,
                    headers=envelope.amqp_headers(),
                    message_id=envelope.message_id,
                    delivery_mode=aio_pika.DeliveryMode.PERSISTENT,
                )
                await exchange.publish(message, INBOUND_ROUTING_KEY)
                self.report.poison.append(envelope.message_id)
        self.report.faults.append(f"{POISON} poison messages")

    # --- invariants ----------------------------------------------------------------------

    async def applied(self) -> int:
        raws = await self.db.fetch("SELECT DISTINCT raw FROM inbox")
        stored = {bytes(r["raw"]) for r in raws}
        return len(self.accepted_bodies & stored)

    async def wait_applied(self, timeout: float) -> None:
        async def done() -> bool:
            self.report.accepted = len(self.accepted_bodies)
            self.report.applied = await self.applied()
            return self.report.applied == self.report.accepted

        await eventually(done, timeout=timeout, what="every accepted callback in the inbox")

    async def wait_recovered(self, fault: str, timeout: float) -> float:
        """After one fault: every accepted callback applied and ``paysync.inbound`` empty,
        by the processes that were running (none may have died); seconds since the fault."""
        for process in (self.ingest, self.worker):
            assert process is not None
            code = process.proc.returncode
            assert code is None, f"exited {code} after {fault}:\n{process.log[-4000:]}"
        await self.wait_applied(timeout)

        async def drained() -> bool:
            return await depth(self.names.topology.inbound_queue) == 0

        await eventually(drained, timeout=timeout, what=f"the backlog empty after {fault}")
        took = time.monotonic() - self.fault_started
        self.report.recovery[fault] = took
        return took


def event_gaps(bodies: list[bytes]) -> dict[str, list[int]]:
    """Payments whose distinct events do not carry seq 1..n, with the seqs seen."""
    seqs: dict[str, list[int]] = defaultdict(list)
    seen: set[str] = set()
    for body in bodies:
        event = orjson.loads(body)
        if event["event_id"] in seen:
            continue
        seen.add(event["event_id"])
        seqs[event["payment"]["merchant_ref"]].append(event["payment"]["seq"])
    return {ref: got for ref, got in seqs.items() if sorted(got) != list(range(1, len(got) + 1))}


async def dead_ids(names: BrokerNames) -> list[str]:
    connection = await aio_pika.connect(AMQP_URL)
    found: list[str] = []
    async with connection:
        channel = await connection.channel()
        queue = await channel.get_queue(names.topology.dead_queue, ensure=False)
        while (message := await queue.get(no_ack=False, fail=False)) is not None:
            found.append(message.message_id or "")
            await message.ack()
    return found


async def collect_events(
    queue_name: str, expected: set[str], timeout: float, amqp_url: str = AMQP_URL
) -> list[bytes]:
    """Bodies from the test's events queue until every expected event_id arrived (duplicates
    included: the relay is at-least-once, and a copy may come before a missing one)."""
    bodies: list[bytes] = []
    seen: set[str] = set()
    connection = await aio_pika.connect(amqp_url)
    async with connection:
        channel = await connection.channel()
        queue = await channel.get_queue(queue_name, ensure=False)
        async with queue.iterator(timeout=timeout) as iterator:
            async for message in iterator:
                await message.ack()
                bodies.append(message.body)
                seen.add(orjson.loads(message.body)["event_id"])
                if expected <= seen:
                    break
    return bodies
