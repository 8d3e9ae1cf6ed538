"""The stored payment row depends only on the set of its receipts, on real Postgres.

The case that broke it: CCPayment reports one transfer both by callback and by status-API
poll, under one dedup key (its ``txid``) but with different observation times: the
callback's is when paysync received it, the poll's is the chain's ``pay_time``. Around a
deadline that decides ``late``, so the store must fold every receipt, not only the first.
"""

from __future__ import annotations

from collections.abc import AsyncIterator

import asyncpg
import pytest

from paysync.db import create_pool
from providers import MAPPINGS
from tests.support.db import one
from tests.support.late_payment import callback, deliver, poll, registration
from worker.store import Store

pytestmark = pytest.mark.integration

# Every column the fold decides, and the event count.
ROW = (
    "SELECT status, provider_ref, amount, currency, expires_at, amount_paid, amount_refunded,"
    " late, anomaly, seq FROM payments WHERE merchant_ref = $1"
)


@pytest.fixture
async def store(db_url: str) -> AsyncIterator[Store]:
    pool = await create_pool(db_url, max_size=2)
    yield Store(pool, MAPPINGS)
    await pool.close()


async def test_a_callback_and_a_poll_of_one_transfer_store_the_same_row_in_either_order(
    store: Store, db: asyncpg.Connection
) -> None:
    for ref, order in (("cb-first", (callback, poll)), ("poll-first", (poll, callback))):
        await deliver(store, registration(ref))
        for make in order:
            await deliver(store, make(ref))
    callback_first = dict(await one(db, ROW, "cb-first"))
    poll_first = dict(await one(db, ROW, "poll-first"))
    assert callback_first == poll_first
    # The money was on chain five minutes before the deadline: paid, not late.
    assert (poll_first["status"], poll_first["late"]) == ("paid", False)
