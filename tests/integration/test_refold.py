"""``paysync payment refold`` on real Postgres: rows written before the store folded every
receipt are found, reported, and (without ``--dry-run``) rewritten as any receipt would
rewrite them; a second run finds nothing.

The old data is made as the old store made it: the first reports through the store, a
later report of the same fact recorded in the inbox as ``duplicate`` and never folded.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from decimal import Decimal
from typing import Any

import asyncpg
import orjson
import pytest

from paysync.db import create_pool, load_queries
from paysync.state.decision import ReceiptOutcome
from paysync.state.fold import Policy, fold
from providers import MAPPINGS
from schemas.envelope import Envelope
from schemas.observation import Observation
from tests.support.config import RunConfig
from tests.support.event_schemas import validate_event
from tests.support.late_payment import callback, deliver, parsed, poll, registration
from tests.support.process import run_command
from worker.store import QUERIES_PATH, Store, record_receipt

pytestmark = pytest.mark.integration

POLICY = Policy(failure_is_final=MAPPINGS["ccpayment"].failure_is_final)


@pytest.fixture
async def pool(db_url: str) -> AsyncIterator[asyncpg.Pool]:
    pool = await create_pool(db_url, max_size=2)
    yield pool
    await pool.close()


async def recorded_unfolded(pool: asyncpg.Pool, envelope: Envelope) -> None:
    """What the store did before the fix with a later report of a known fact."""
    [obs] = parsed(envelope)
    queries = load_queries(QUERIES_PATH)
    async with pool.acquire() as conn:
        sql = "SELECT id FROM payments WHERE merchant_ref = $1"
        payment_id = await conn.fetchval(sql, obs.merchant_ref)
        duplicate = ReceiptOutcome.DUPLICATE
        await record_receipt(conn, queries, payment_id, envelope, obs, duplicate)


async def old_data(pool: asyncpg.Pool) -> None:
    store = Store(pool, MAPPINGS)
    # late: paid on chain before the deadline, the callback after it came first.
    await deliver(store, registration("late"))
    await deliver(store, callback("late"))
    await recorded_unfolded(pool, poll("late"))
    # short: the callback said 30 due (underpaid); the poll's 25 due was never folded.
    await deliver(store, callback("short", order_amount=Decimal("30.00")))
    await recorded_unfolded(pool, poll("short"))
    # fx: the poll reported the transfer in another currency: an anomaly nobody heard of.
    await deliver(store, registration("fx"))
    await deliver(store, callback("fx"))
    await recorded_unfolded(pool, poll("fx", currency="BTC"))
    # fine: written by this store, in the order that used to go wrong.
    await deliver(store, registration("fine"))
    await deliver(store, callback("fine"))
    await deliver(store, poll("fine"))


async def refold(config: RunConfig, *args: str) -> str:
    """``paysync payment refold ...``: its stdout (it must exit 0)."""
    code, out = await run_command(config, "payment", "refold", *args)
    assert code == 0
    return out


async def snapshot(db: asyncpg.Connection) -> dict[str, Any]:
    return {
        "payments": [tuple(r) for r in await db.fetch("SELECT * FROM payments ORDER BY id")],
        "transitions": await db.fetchval("SELECT count(*) FROM transitions"),
        "outbox": await db.fetchval("SELECT count(*) FROM outbox"),
    }


async def folded_rows(db: asyncpg.Connection) -> dict[str, tuple[Any, ...]]:
    """Each row's folded columns, and the fold of its inbox receipts, by merchant ref."""
    out = {}
    for row in await db.fetch("SELECT * FROM payments"):
        receipts = await db.fetch(
            "SELECT observation FROM inbox WHERE payment_id = $1 AND outcome <> 'hint'", row["id"]
        )
        want = fold(
            [Observation.from_json(orjson.loads(r["observation"])) for r in receipts], POLICY
        )
        stored = (row["status"], row["amount"], row["currency"], row["late"], row["anomaly"])
        expected = (
            want.status and want.status.value,
            want.amount,
            want.currency,
            want.late,
            want.anomaly,
        )
        out[row["merchant_ref"]] = (stored, expected)
    return out


async def test_refold_reports_then_rewrites_rows_written_before_the_fix(
    pool: asyncpg.Pool, db: asyncpg.Connection, config: RunConfig
) -> None:
    await old_data(pool)
    before = await snapshot(db)

    out = await refold(config, "--dry-run", "--json")
    report = orjson.loads(out)
    assert (report["dry_run"], report["checked"], report["differing"]) == (True, 4, 3)
    by_ref = {p["payment"].rsplit("/", 1)[1]: p for p in report["payments"]}
    assert by_ref["late"]["changes"] == {"late": {"stored": True, "refolded": False}}
    assert by_ref["late"]["event"] is None
    assert by_ref["short"]["changes"]["status"] == {"stored": "underpaid", "refolded": "paid"}
    assert by_ref["short"]["changes"]["amount"] == {"stored": "30.00", "refolded": "25.00"}
    assert by_ref["short"]["event"] == "payment.status_changed"
    assert by_ref["fx"]["changes"]["anomaly"] == {"stored": None, "refolded": "currency_conflict"}
    assert by_ref["fx"]["event"] == "payment.flagged"
    assert await snapshot(db) == before, "a dry run wrote something"

    out = await refold(config, "--json")
    assert orjson.loads(out)["differing"] == 3
    for ref, (stored, expected) in (await folded_rows(db)).items():
        assert stored == expected, ref
    events = {
        (r["merchant_ref"], r["seq"]): (r["routing_key"], orjson.loads(r["body"]))
        for r in await db.fetch(
            "SELECT p.merchant_ref, o.seq, o.routing_key, o.body::text AS body"
            " FROM outbox o JOIN payments p ON p.id = o.payment_id"
        )
    }
    for _, body in events.values():
        validate_event(body)
    # short: a status change like any other, seq + 1, with a transition of source refold.
    key, body = events[("short", 2)]
    assert key == "payment.paid"
    assert (body["source"], body["payment"]["previous_status"]) == ("refold", "underpaid")
    assert body["payment"]["anomaly"] == ["amount_due_conflict"]
    transition = await db.fetchrow(
        "SELECT t.seq, t.from_status, t.to_status, t.source, t.inbox_id FROM transitions t"
        " JOIN payments p ON p.id = t.payment_id WHERE p.merchant_ref = 'short' AND t.seq = 2"
    )
    assert transition is not None
    assert tuple(transition) == (2, "underpaid", "paid", "refold", None)
    # fx: the anomaly is flagged; late: the row changes, no event.
    key, body = events[("fx", 2)]
    assert (key, body["payment"]["anomaly"]) == ("payment.flagged", ["currency_conflict"])
    assert ("late", 2) not in events
    seqs = {
        r["merchant_ref"]: r["seq"]
        for r in await db.fetch("SELECT merchant_ref, seq FROM payments")
    }
    assert seqs == {"late": 1, "short": 2, "fx": 2, "fine": 1}

    after = await snapshot(db)
    out = await refold(config)
    assert "checked 4: every row is the fold of its receipts" in out
    assert await snapshot(db) == after
