"""Event replay against real Postgres and RabbitMQ: `paysync events replay`, the replay
module and POST /v1/events/replay publish published outbox events again, each with its
original event_id and body bytes, in seq order per payment, with confirms."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta

import aiohttp
import asyncpg
import orjson
import pytest

from paysync.broker import Broker
from paysync.connections import broker_of
from paysync.db import create_pool, load_queries
from paysync.replay import QUERIES_PATH, ReplaySelection, payment_selection, replay_events
from tests.integration.test_worker import apply, credit
from tests.support.amqp import depth, take
from tests.support.config import ACCOUNT, TOKEN_ENV, RunConfig
from tests.support.ingest import serving
from tests.support.process import run_command
from tests.support.services import BrokerNames
from worker.store import Store

pytestmark = pytest.mark.integration


@pytest.fixture
async def pool(db_url: str) -> AsyncIterator[asyncpg.Pool]:
    pool = await create_pool(db_url, max_size=4)
    yield pool
    await pool.close()


@pytest.fixture
async def broker(api_config: RunConfig) -> AsyncIterator[Broker]:
    link = broker_of(api_config.settings, "test")
    link.start()
    await link.wait_connected(10)
    yield link
    await link.close()


async def make_events(store: Store, db: asyncpg.Connection) -> list[asyncpg.Record]:
    """Two payments with two events each (underpaid, paid), marked published; one more
    event left unpublished. Returns the published outbox rows in id order."""
    for ref in ("rp-a", "rp-b"):
        await apply(store, credit(ref, f"{ref}-1", "10"))
    for ref in ("rp-a", "rp-b"):
        await apply(store, credit(ref, f"{ref}-2", "15"))
    await db.execute("UPDATE outbox SET published_at = now()")
    await apply(store, credit("rp-c", "rp-c-1", "25"))
    return await db.fetch(
        "SELECT o.event_id::text AS event_id, o.body::text AS body, o.seq, p.merchant_ref"
        " FROM outbox o JOIN payments p ON p.id = o.payment_id"
        " WHERE published_at IS NOT NULL ORDER BY o.id"
    )


async def test_replay_publishes_the_original_events_in_seq_order(
    store: Store, db, pool, broker: Broker, names: BrokerNames
) -> None:
    rows = await make_events(store, db)
    assert len(rows) == 4
    queue = await names.bind_events_queue()
    queries = load_queries(QUERIES_PATH)
    since = ReplaySelection(since=datetime.now(UTC) - timedelta(hours=1))
    report = await replay_events(pool, queries, broker, since, rate=1000)
    assert report.ok
    assert report.replayed == 4
    assert report.unroutable == 0
    got = await take(queue, 4)
    assert [m.message_id for m in got] == [r["event_id"] for r in rows]
    assert [m.body for m in got] == [r["body"].encode() for r in rows]
    assert all(m.content_type == "application/json" and m.delivery_mode == 2 for m in got)
    one = payment_selection(f"ccpayment/{ACCOUNT}/rp-b")
    report = await replay_events(pool, queries, broker, one, rate=1000)
    got = await take(queue, 2)
    seqs = [orjson.loads(m.body)["payment"]["seq"] for m in got]
    assert seqs == [1, 2]
    assert {orjson.loads(m.body)["payment"]["merchant_ref"] for m in got} == {"rp-b"}
    # The unpublished event is the relay's: never replayed.
    assert "rp-c" not in {e.payment.rsplit("/", 1)[1] for e in report.selected}


async def test_replay_is_rate_limited(store: Store, db, pool, broker: Broker, names) -> None:
    await make_events(store, db)
    await names.bind_events_queue()
    loop = asyncio.get_running_loop()
    started = loop.time()
    since = ReplaySelection(since=datetime.now(UTC) - timedelta(hours=1))
    await replay_events(pool, load_queries(QUERIES_PATH), broker, since, rate=10)
    # Four starts spaced at least 1/10 s apart: three intervals.
    assert loop.time() - started >= 0.3


async def test_the_cli_replays_and_its_dry_run_publishes_nothing(
    api_config: RunConfig, store: Store, db, names: BrokerNames
) -> None:
    rows = await make_events(store, db)
    queue = await names.bind_events_queue()
    code, out = await run_command(
        api_config,
        "events",
        "replay",
        "--payment",
        f"ccpayment/{ACCOUNT}/rp-a",
        "--dry-run",
        "--json",
    )
    assert code == 0
    doc = orjson.loads(out)
    assert doc["dry_run"]
    assert doc["replayed"] == 0
    assert [e["seq"] for e in doc["events"]] == [1, 2]
    assert await depth(queue) == 0
    code, out = await run_command(
        api_config,
        "events",
        "replay",
        "--since",
        "1h",
        "--provider",
        "ccpayment",
        "--status",
        "paid",
    )
    assert code == 0
    got = await take(queue, 2)
    paid = [r["event_id"] for r in rows if orjson.loads(r["body"])["payment"]["status"] == "paid"]
    assert [m.message_id for m in got] == paid
    code, _ = await run_command(api_config, "events", "replay", "--since", "soon")
    assert code == 2


async def test_the_api_replays_for_a_consumer_and_refuses_bad_requests(
    api_config: RunConfig, store: Store, db, names: BrokerNames
) -> None:
    rows = await make_events(store, db)
    queue = await names.bind_events_queue()
    headers = {"Authorization": f"Bearer {api_config.env[TOKEN_ENV]}"}
    async with serving(api_config.settings) as (url, link), aiohttp.ClientSession() as session:
        await link.wait_connected(10)
        body = {"provider": "ccpayment", "account": ACCOUNT, "merchant_ref": "rp-a"}
        async with session.post(f"{url}/v1/events/replay", json=body, headers=headers) as r:
            assert r.status == 200
            doc = await r.json()
        assert doc["replayed"] == 2
        assert doc["error"] is None
        got = await take(queue, 2)
        wanted = [r["event_id"] for r in rows if r["merchant_ref"] == "rp-a"]
        assert [m.message_id for m in got] == wanted
        bad = [
            ({"since": "yesterday"}, "since"),
            ({"merchant_ref": "rp-a"}, "body"),
            ({"since": "2026-11-21T10:00:00Z", "status": "gone"}, "status"),
            ({"since": "2026-11-21T10:00:00Z", "colour": "red"}, "colour"),
            ({}, "body"),
        ]
        for request, field in bad:
            async with session.post(f"{url}/v1/events/replay", json=request, headers=headers) as r:
                assert r.status == 400, request
                assert field in (await r.json())["fields"], request
        async with session.post(
            f"{url}/v1/events/replay", data=b"x", headers=headers | {"Content-Type": "text/plain"}
        ) as r:
            assert r.status == 415
        async with session.post(
            f"{url}/v1/events/replay", json={"since": "2026-11-21T10:00:00Z"}
        ) as r:
            assert r.status == 401
    assert await depth(queue) == 0
