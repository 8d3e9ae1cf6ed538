"""The bulk path of a batch (``worker/bulk.py``: one statement per table) writes exactly
what applying its envelopes one after another writes, on real Postgres.

Each case is applied twice, to two databases: as one batch through ``Store.apply_batch``
(its savepoint fallback disabled, so a fallback cannot hide a difference), and envelope
by envelope through ``Store.apply``, in the batch's own order. The generator makes the
hard cases of a batch: one payment in several envelopes of the batch, payments with
receipts committed before it, a redelivered copy of a message committed before and a
second copy of one in the batch, several payments in one envelope, registrations with
metadata, several reports of a fact from different sources at different times around
the deadline, and every status a provider reports.
"""

from __future__ import annotations

import random
import uuid
from collections.abc import AsyncIterator
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from typing import Any

import asyncpg
import orjson
import pytest

from paysync.db import create_pool
from providers import MAPPINGS
from schemas.envelope import Envelope, EnvelopeKind
from schemas.observation import Kind, Observation, Source, dump_observations
from tests.support.services import create_database, database_url, drop_database, unique
from worker.store import Store

pytestmark = pytest.mark.integration

CASES = 120
T0 = datetime(2026, 11, 21, 10, 0, tzinfo=UTC)
DEADLINE = T0 + timedelta(hours=24)
REFS = ["o1", "o2", "o3", "o4"]
Batch = list[tuple[Envelope, list[Observation]]]


@pytest.fixture
async def pools(template_database: str, db_url: str) -> AsyncIterator[list[asyncpg.Pool]]:
    other = unique("paysync_t")
    await create_database(other, template=template_database)
    pools = [await create_pool(url, max_size=2) for url in (db_url, database_url(other))]
    try:
        yield pools
    finally:
        for pool in pools:
            await pool.close()
        await drop_database(other)


def observation(rng: random.Random, provider: str, ref: str, fact: int) -> Observation:
    mapping = MAPPINGS[provider]
    kind = rng.choices([Kind.CREDIT, Kind.STATUS, Kind.REFUND, Kind.TERMS, Kind.CLOCK,
                        Kind.CHARGEBACK], weights=[5, 5, 1, 2, 1, 1])[0]  # fmt: skip
    due = rng.choice([None, Decimal("100.00"), Decimal("120.00")])
    provider_status = rng.choice([*mapping.statuses, "SOMETHING_NEW"])
    money = kind in (Kind.CREDIT, Kind.REFUND)
    return Observation(
        kind=kind,
        source=Source.MERCHANT if kind is Kind.TERMS else rng.choice(list(Source)),
        provider=provider,
        account="acct",
        merchant_ref=ref,
        dedup_key=f"{provider}:acct:{ref}:{kind.value}:{fact}",
        observed_at=DEADLINE + timedelta(minutes=rng.randint(-120, 120)),
        provider_ref=rng.choice([None, f"p-{ref}", f"q-{ref}"]),
        amount_due=due,
        currency=rng.choice([None, "USD", "USD", "INR"]),
        expires_at=rng.choice([None, DEADLINE]),
        provider_status=provider_status if kind is Kind.STATUS else None,
        status=mapping.canonical(provider_status) if kind is Kind.STATUS else None,
        record_id=f"r{fact}" if money else None,
        amount=rng.choice([Decimal("50.00"), Decimal("100.00"), Decimal("30.00")])
        if money
        else None,
        metadata={"cart": f"c-{fact}"} if kind is Kind.TERMS and rng.random() < 0.7 else None,
    )


def report(rng: random.Random, obs: Observation) -> Observation:
    """Another report of the same fact: another source, another time."""
    shift = timedelta(minutes=rng.choice([-1, 1]) * rng.randint(1, 240))
    return replace(
        obs,
        observed_at=obs.observed_at + shift,
        source=rng.choice([s for s in Source if s is not obs.source]),
    )


def envelope_of(observations: list[Observation], message_id: str | None = None) -> Envelope:
    first = observations[0]
    return Envelope(
        message_id=message_id or str(uuid.uuid4()),
        kind=EnvelopeKind.OBSERVATIONS,
        provider=first.provider,
        account=first.account,
        received_at=max(o.observed_at for o in observations),
        body=dump_observations(observations),
        content_type="application/json",
    )


def case(rng: random.Random) -> tuple[Batch, Batch]:
    """What was committed before the batch, and the batch."""
    provider = rng.choice(sorted(MAPPINGS))
    facts: list[Observation] = []

    def next_observation() -> Observation:
        if facts and rng.random() < 0.35:
            made = report(rng, rng.choice(facts))
        else:
            made = observation(rng, provider, rng.choice(REFS), len(facts))
        facts.append(made)
        return made

    def envelopes(count: int) -> Batch:
        made = []
        for _ in range(count):
            observations = [next_observation() for _ in range(rng.choice([1, 1, 1, 2, 3]))]
            made.append((envelope_of(observations), observations))
        return made

    before = envelopes(rng.randint(0, 5))
    batch = envelopes(rng.randint(2, 10))
    if before and rng.random() < 0.5:
        batch.append(rng.choice(before))  # redelivered after a crash: committed already
    if rng.random() < 0.4:
        batch.append(rng.choice(batch))  # two copies of one message in the batch
    rng.shuffle(batch)
    return before, batch


def outcomes_of(applied: list[Any]) -> list[Any]:
    return [[(o.dedup_key, o.outcome, o.source, o.transition, o.event) for o in a] for a in applied]


async def stored(pool: asyncpg.Pool) -> dict[str, Any]:
    """Everything the worker wrote, without ids and times Postgres or uuid4 chose."""
    async with pool.acquire() as conn:
        payments = await conn.fetch(
            "SELECT provider, account, merchant_ref, provider_ref, status, amount, currency,"
            " amount_paid, amount_refunded, late, anomaly, expires_at, seq, metadata"
            " FROM payments ORDER BY merchant_ref"
        )
        inbox = await conn.fetch(
            "SELECT i.dedup_key, p.merchant_ref, i.message_id, i.source, i.kind,"
            " i.received_at, i.raw, i.observation, i.outcome"
            " FROM inbox i JOIN payments p ON p.id = i.payment_id ORDER BY i.id"
        )
        transitions = await conn.fetch(
            "SELECT p.merchant_ref, t.seq, t.from_status, t.to_status, t.source,"
            " i.dedup_key, i.message_id FROM transitions t JOIN payments p ON p.id = t.payment_id"
            " LEFT JOIN inbox i ON i.id = t.inbox_id ORDER BY p.merchant_ref, t.seq"
        )
        outbox = await conn.fetch(
            "SELECT p.merchant_ref, o.seq, o.routing_key, o.body::text AS body"
            " FROM outbox o JOIN payments p ON p.id = o.payment_id ORDER BY o.id"
        )
    events = []
    for row in outbox:
        body = orjson.loads(row["body"])
        body.pop("event_id")
        body.pop("occurred_at")
        events.append((row["merchant_ref"], row["seq"], row["routing_key"], body))
    return {
        "payments": [dict(r) for r in payments],
        "inbox": [dict(r) for r in inbox],
        "transitions": [dict(r) for r in transitions],
        # The relay publishes by id: each payment's events must be in seq order.
        "events": events,
    }


async def empty(pool: asyncpg.Pool) -> None:
    async with pool.acquire() as conn:
        await conn.execute("TRUNCATE payments, inbox, transitions, outbox CASCADE")


def batch_order(batch: Batch) -> list[int]:
    """The order ``Store.apply_batch`` takes envelopes in: by their payments' first key."""
    return sorted(
        range(len(batch)),
        key=lambda i: min((o.provider, o.account, o.merchant_ref) for o in batch[i][1]),
    )


async def test_a_batch_in_bulk_writes_what_its_envelopes_write_one_by_one(
    pools: list[asyncpg.Pool], monkeypatch: pytest.MonkeyPatch
) -> None:
    bulk, one_by_one = stores = [Store(pool, MAPPINGS) for pool in pools]

    async def no_fallback(*args: object) -> None:
        raise AssertionError("the bulk path fell back to savepoints")

    monkeypatch.setattr(bulk, "_apply_savepoints", no_fallback)
    rng = random.Random(20261203)
    seen_kinds: set[str] = set()
    for n in range(CASES):
        before, batch = case(rng)
        for store, pool in zip(stores, pools, strict=True):
            await empty(pool)
            for envelope, observations in before:
                await store.apply(envelope, observations)
        applied = await bulk.apply_batch(batch)
        expected: list[Any] = [None] * len(batch)
        for i in batch_order(batch):
            expected[i] = await one_by_one.apply(*batch[i])
        assert outcomes_of(applied) == outcomes_of(expected), f"case {n}"
        got, want = await stored(pools[0]), await stored(pools[1])
        assert got == want, f"case {n}"
        seen_kinds |= {str(o[1]) for a in outcomes_of(applied) for o in a}
    # The generator reached every outcome a fact can have.
    assert seen_kinds >= {"applied", "stale", "duplicate", "anomaly"}
