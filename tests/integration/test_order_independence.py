"""The stored payment row depends only on the set of its receipts, on real Postgres.

The case that broke it: CCPayment reports one transfer both by callback and by status-API
poll, under one dedup key (its ``txid``) but with different observation times: the
callback's is when paysync received it, the poll's is the chain's ``pay_time``. Around a
deadline that decides ``late``, so the store must fold every receipt, not only the first.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from decimal import Decimal

import asyncpg
import pytest

from paysync.db import create_pool
from providers import MAPPINGS, REGISTRY
from providers.ccpayment import credit_observation
from schemas.envelope import Envelope, EnvelopeKind
from schemas.observation import Kind, Observation, Source, load_observations
from simulator.ccpayment import webhook_body
from tests.support.config import ACCOUNT
from tests.support.db import one
from tests.support.envelopes import callback_envelope, observations_envelope
from worker.store import Store

pytestmark = pytest.mark.integration

DEADLINE = datetime(2026, 11, 21, 10, 0, tzinfo=UTC)
PAID_ON_CHAIN = DEADLINE - timedelta(minutes=5)
CALLBACK_DELIVERED = DEADLINE + timedelta(minutes=30)
TXID = "9f" * 32
ORDER_ID = "202611210930000000000000000000077"
DUE = Decimal("25.00")
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


def registration(ref: str) -> Envelope:
    """The merchant registers the order an hour before its deadline."""
    terms = Observation(
        kind=Kind.TERMS,
        source=Source.MERCHANT,
        provider="ccpayment",
        account=ACCOUNT,
        merchant_ref=ref,
        dedup_key=f"ccpayment:{ACCOUNT}:{ref}:registration",
        observed_at=DEADLINE - timedelta(hours=1),
        amount_due=DUE,
        currency="USDT",
        expires_at=DEADLINE,
    )
    return observations_envelope([terms], terms.observed_at)


def callback(ref: str) -> Envelope:
    """CCPayment's webhook for the transfer, delivered half an hour after the deadline."""
    body = webhook_body(
        merchant_ref=ref,
        record_id=f"rec-{ref}",
        order_id=ORDER_ID,
        order_amount=DUE,
        paid_amount=DUE,
        txid=TXID,
    )
    return callback_envelope("ccpayment", ACCOUNT, body, CALLBACK_DELIVERED)


def poll(ref: str) -> Envelope:
    """The reconciler's poll: the same txid, observed at the transfer's ``pay_time``."""
    seen = credit_observation(
        source=Source.RECONCILER,
        account=ACCOUNT,
        merchant_ref=ref,
        txid=TXID,
        amount=DUE,
        observed_at=PAID_ON_CHAIN,
        provider_status="Paid",
        provider_ref=ORDER_ID,
        amount_due=DUE,
        currency="USDT",
    )
    return observations_envelope([seen], CALLBACK_DELIVERED)


async def deliver(store: Store, envelope: Envelope) -> None:
    if envelope.kind is EnvelopeKind.CALLBACK:
        observations = REGISTRY["ccpayment"].parse_callback(envelope)
    else:
        observations = load_observations(envelope.body)
    await store.apply(envelope, observations)


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
