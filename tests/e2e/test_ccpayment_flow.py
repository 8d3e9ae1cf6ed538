"""A signed CCPayment callback travels from HTTP to paysync.events through real processes,
RabbitMQ and Postgres."""

from __future__ import annotations

import asyncio
import time
import uuid
from decimal import Decimal
from pathlib import Path

import aiohttp
import asyncpg
import orjson
import pytest

from simulator.ccpayment import lifecycle, signed
from tests.support.amqp import depth, take
from tests.support.config import ACCOUNT, APP_ID, RunConfig, write_config
from tests.support.db import one
from tests.support.event_schemas import validate_event
from tests.support.metrics import count, sample
from tests.support.process import running, start
from tests.support.services import BrokerNames
from tests.support.waiting import eventually

pytestmark = pytest.mark.e2e


def _callbacks(
    config: RunConfig, merchant_ref: str, parts: list[str]
) -> list[tuple[dict[str, str], bytes]]:
    made = lifecycle(
        app_id=APP_ID,
        app_secret=config.secret,
        merchant_ref=merchant_ref,
        amount=Decimal("25.00"),
        parts=[Decimal(p) for p in parts],
        timestamp=int(time.time()),
    )
    return [(c.headers, c.body) for c in made]


async def _post(config: RunConfig, headers: dict[str, str], body: bytes) -> tuple[int, str]:
    async with aiohttp.ClientSession() as session:
        url = f"{config.url}/webhooks/ccpayment/{ACCOUNT}"
        async with session.post(url, data=body, headers=headers) as resp:
            return resp.status, await resp.text()


async def _metrics(config: RunConfig) -> str:
    async with aiohttp.ClientSession() as session, session.get(f"{config.url}/metrics") as resp:
        assert resp.status == 200
        return await resp.text()


async def test_signed_callback_becomes_a_paid_event(
    config: RunConfig, names: BrokerNames, db: asyncpg.Connection
) -> None:
    events = await names.bind_events_queue()
    [(headers, body)] = _callbacks(config, "order-1001", ["25.00"])
    async with running(config, "all"):
        assert await _post(config, headers, body) == (200, "success")
        [message] = await take(events, 1)

    event = orjson.loads(message.body)
    validate_event(event)
    assert message.routing_key == "payment.paid"
    assert message.message_id == event["event_id"]
    assert message.content_type == "application/json"
    assert event["type"] == "payment.status_changed"
    assert event["source"] == "callback"
    assert event["payment"] | {"provider_ref": None} == {
        "provider": "ccpayment",
        "account": ACCOUNT,
        "merchant_ref": "order-1001",
        "provider_ref": None,
        "status": "paid",
        "previous_status": None,
        "amount": "25.00",
        "amount_paid": "25.00",
        "currency": "USD",
        "late": False,
        "anomaly": [],
        "seq": 1,
        "metadata": {},
    }
    payment = await one(db, "SELECT * FROM payments WHERE merchant_ref = 'order-1001'")
    assert payment["status"] == "paid"
    assert payment["amount_paid"] == Decimal("25.00")
    transitions = await db.fetch("SELECT * FROM transitions WHERE payment_id = $1", payment["id"])
    assert [(t["seq"], t["from_status"], t["to_status"]) for t in transitions] == [
        (1, None, "paid")
    ]


async def test_a_callback_sent_five_times_gives_one_transition_and_one_event(
    config: RunConfig, names: BrokerNames, db: asyncpg.Connection
) -> None:
    events = await names.bind_events_queue()
    [(headers, body)] = _callbacks(config, "order-5x", ["25.00"])
    async with running(config, "all") as process:
        for _ in range(5):
            assert await _post(config, headers, body) == (200, "success")
        forged = {**headers, "Sign": "0" * 64}
        assert await _post(config, forged, body) == (401, '{"error": "bad_signature"}')
        await take(events, 1)

        async def worker_counted() -> str | None:
            text = await _metrics(config)
            seen = count(text, "paysync_observations_total", outcome="duplicate") + count(
                text, "paysync_observations_total", outcome="applied"
            )
            return text if seen == 5 else None

        metrics = await eventually(worker_counted, what="all five observations counted")
        # A clean stop drains: every accepted message is applied and acked first.
        assert await process.stop() == 0

    assert await depth(names.topology.inbound_queue) == 0
    assert await depth(events) == 0, "a duplicate callback produced a second event"
    counts = await one(
        db,
        "SELECT (SELECT count(*) FROM transitions) AS t, (SELECT count(*) FROM outbox) AS outbox,"
        " (SELECT count(*) FROM outbox WHERE published_at IS NOT NULL) AS published",
    )
    assert dict(counts) == {"t": 1, "outbox": 1, "published": 1}
    # Every receipt is in the inbox: the first applied, the four retries as duplicates.
    receipts = await db.fetch("SELECT outcome, count(*) FROM inbox GROUP BY 1 ORDER BY 1")
    assert [tuple(r) for r in receipts] == [("applied", 1), ("duplicate", 4)]
    ours = {"provider": "ccpayment", "account": ACCOUNT}
    assert sample(metrics, "paysync_callbacks_total", **ours, outcome="accepted") == 5
    assert sample(metrics, "paysync_callbacks_total", **ours, reason="bad_signature") == 1
    assert sample(metrics, "paysync_observations_total", outcome="duplicate") == 4
    assert sample(metrics, "paysync_transitions_total", to_status="paid", source="callback") == 1


async def test_two_partial_credits_give_underpaid_then_paid_in_seq_order(
    config: RunConfig, names: BrokerNames, db: asyncpg.Connection
) -> None:
    events = await names.bind_events_queue()
    first, second = _callbacks(config, "order-2p", ["10.00", "15.00"])
    async with running(config, "all"):
        assert await _post(config, *first) == (200, "success")
        [underpaid] = await take(events, 1)
        assert await _post(config, *second) == (200, "success")
        [paid] = await take(events, 1)

    payments = [orjson.loads(m.body)["payment"] for m in (underpaid, paid)]
    assert [(p["seq"], p["previous_status"], p["status"], p["amount_paid"]) for p in payments] == [
        (1, None, "underpaid", "10.00"),
        (2, "underpaid", "paid", "25.00"),
    ]
    assert [m.routing_key for m in (underpaid, paid)] == ["payment.underpaid", "payment.paid"]
    assert (
        await db.fetchval("SELECT status FROM payments WHERE merchant_ref = 'order-2p'") == "paid"
    )


async def test_a_conflicting_currency_report_on_a_paid_order_emits_one_flagged_event(
    config: RunConfig, names: BrokerNames, db: asyncpg.Connection
) -> None:
    events = await names.bind_events_queue()
    [(headers, body)] = _callbacks(config, "order-fx", ["25.00"])
    # The same transfer reported again, priced in another currency: the status stays paid.
    other = orjson.dumps({**orjson.loads(body), "denominated_currency": "EUR"})
    other_headers = signed(APP_ID, config.secret, other, int(time.time()))
    async with running(config, "all") as process:
        assert await _post(config, headers, body) == (200, "success")
        [paid] = await take(events, 1)
        assert await _post(config, other_headers, other) == (200, "success")
        [flag] = await take(events, 1)
        assert await process.stop() == 0

    assert await depth(events) == 0, "more than one event for the conflicting report"
    first, second = (orjson.loads(m.body) for m in (paid, flag))
    for event in (first, second):
        validate_event(event)
    assert (paid.routing_key, first["type"]) == ("payment.paid", "payment.status_changed")
    assert first["payment"]["anomaly"] == []
    assert (flag.routing_key, second["type"]) == ("payment.flagged", "payment.flagged")
    assert flag.message_id == second["event_id"]
    payment = second["payment"]
    assert (payment["status"], payment["previous_status"], payment["seq"]) == ("paid", "paid", 2)
    assert payment["anomaly"] == ["currency_conflict"]
    row = await one(db, "SELECT id, status, anomaly, seq FROM payments")
    assert (row["status"], row["anomaly"], row["seq"]) == ("paid", "currency_conflict", 2)
    assert await db.fetchval("SELECT count(*) FROM transitions") == 1
    assert await db.fetchval("SELECT count(*) FROM outbox") == 2
    outcomes = await db.fetch("SELECT outcome FROM inbox ORDER BY id")
    assert [r["outcome"] for r in outcomes] == ["applied", "anomaly"]


async def test_sigterm_stops_every_role_cleanly(config: RunConfig) -> None:
    async with running(config, "all") as process:
        assert await process.stop() == 0
    lines = [orjson.loads(line) for line in process.log.splitlines() if line.startswith("{")]
    stopped = [line["event"] for line in lines if line["event"].endswith("_stopped")]
    assert sorted(stopped) == [
        "consumer_stopped",
        "reconciler_stopped",
        "relay_stopped",
        "service_stopped",
    ]
    assert stopped[-1] == "service_stopped"
    assert not [line for line in lines if line["level"] in ("error", "critical")]


async def test_ingest_and_worker_run_as_separate_processes(
    config: RunConfig, names: BrokerNames, db: asyncpg.Connection
) -> None:
    events = await names.bind_events_queue()
    [(headers, body)] = _callbacks(config, "order-split", ["25.00"])
    async with running(config, "ingest") as ingest:
        # The worker is not running yet: the callback waits safely on paysync.inbound.
        assert await _post(config, headers, body) == (200, "success")
        assert await depth(names.topology.inbound_queue) == 1
        async with running(config, "worker") as worker:
            [message] = await take(events, 1)
            assert await worker.stop() == 0
        assert await ingest.stop() == 0
    assert orjson.loads(message.body)["payment"]["status"] == "paid"
    assert (
        await db.fetchval("SELECT status FROM payments WHERE merchant_ref = 'order-split'")
        == "paid"
    )


async def test_a_role_whose_topology_is_missing_stops_saying_to_migrate(
    tmp_path: Path, db_url: str
) -> None:
    # A prefix nothing declared: the roles only check the topology, `paysync migrate`
    # declares it.
    config = write_config(tmp_path, database_url=db_url, prefix=f"t{uuid.uuid4().hex[:10]}.")
    process = await start(config, "all")
    async with asyncio.timeout(30):
        code = await process.proc.wait()
    assert code == 1
    [line] = [line for line in process.log.splitlines() if line.startswith("paysync:")]
    assert "paysync.inbound" in line
    assert "run `paysync migrate`" in line
    assert "Traceback" not in process.log
