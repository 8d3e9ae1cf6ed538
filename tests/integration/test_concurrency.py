"""Four consumers, 500 payments, observations shuffled and reported again by other sources
at other times, on real RabbitMQ and Postgres: afterwards every payment row is the fold of
the set of its reports, every payment's seq runs 1..n without gaps, and its events,
ordered by seq, replay its transitions exactly."""

from __future__ import annotations

import asyncio
import itertools
import random
import uuid
from collections import defaultdict
from collections.abc import AsyncIterator
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from decimal import Decimal

import aio_pika
import asyncpg
import orjson
import pytest

from paysync.broker import Broker
from paysync.db import create_pool
from paysync.state.fold import Policy, fold
from providers import MAPPINGS
from schemas.envelope import Envelope, EnvelopeKind
from schemas.observation import Kind, Observation, Source, dump_observations
from tests.integration.test_worker import publish, worker
from tests.support.amqp import take
from tests.support.config import RunConfig
from tests.support.event_schemas import validate_event
from tests.support.services import BrokerNames
from tests.support.waiting import eventually

pytestmark = pytest.mark.integration

PAYMENTS = 500
CONSUMERS = 4
T0 = datetime(2026, 11, 21, 10, 0, tzinfo=UTC)
Key = tuple[str, str, str]


def observations_of(rng: random.Random, provider: str, ref: str) -> list[Observation]:
    mapping = MAPPINGS[provider]
    due = rng.choice([Decimal("100.00"), Decimal("250.50")])
    expires = T0 + timedelta(hours=24)
    made = []
    for i in range(rng.randint(1, 6)):
        # Hints are not facts (return_url envelopes, never folded); registrations (terms)
        # are tested on their own.
        facts = [k for k in Kind if k not in (Kind.HINT, Kind.TERMS)]
        kind = rng.choices(facts, weights=[5, 4, 1, 1, 1])[0]
        provider_status = rng.choice([*mapping.statuses, "UNHEARD_OF"])
        made.append(
            Observation(
                kind=kind,
                source=rng.choice(list(Source)),
                provider=provider,
                account="acct",
                merchant_ref=ref,
                dedup_key=f"{provider}:acct:{ref}:{i}",
                observed_at=T0 + timedelta(minutes=rng.randint(0, 48 * 60)),
                provider_ref=f"p-{ref}",
                amount_due=due,
                currency="USD",
                expires_at=expires,
                provider_status=provider_status if kind is Kind.STATUS else None,
                status=mapping.canonical(provider_status) if kind is Kind.STATUS else None,
                record_id=f"r{i}" if kind in (Kind.CREDIT, Kind.REFUND) else None,
                amount=rng.choice([due / 2, due, Decimal("10.00")])
                if kind in (Kind.CREDIT, Kind.REFUND)
                else None,
            )
        )
    return made


def reports_of(rng: random.Random, observations: list[Observation]) -> list[Observation]:
    """Every observation, a third of them reported two or three times: each further report
    from another source at another time (up to four hours earlier or later: a callback
    received late, a poll at the provider's own time), so reports straddle the deadline."""
    made = []
    for obs in observations:
        made.append(obs)
        for _ in range(rng.choice([0, 0, 1, 2])):
            shift = timedelta(minutes=rng.choice([-1, 1]) * rng.randint(1, 240))
            source = rng.choice([s for s in Source if s is not obs.source])
            made.append(replace(obs, observed_at=obs.observed_at + shift, source=source))
    return made


def envelopes(rng: random.Random, reports: dict[Key, list[Observation]]) -> list[Envelope]:
    """One envelope per report, received when observed, shuffled."""
    out = []
    for (provider, _account, _ref), observations in reports.items():
        for obs in observations:
            out.append(
                Envelope(
                    message_id=str(uuid.uuid4()),
                    kind=EnvelopeKind.OBSERVATIONS,
                    provider=provider,
                    account="acct",
                    received_at=obs.observed_at,
                    body=dump_observations([obs]),
                    content_type="application/json",
                )
            )
    rng.shuffle(out)
    return out


async def publish_all(broker: Broker, batch: list[Envelope]) -> None:
    for start in range(0, len(batch), 200):
        await asyncio.gather(*(publish(broker, e) for e in batch[start : start + 200]))


@pytest.fixture
async def pool(db_url: str) -> AsyncIterator[asyncpg.Pool]:
    pool = await create_pool(db_url, max_size=CONSUMERS + 2)
    yield pool
    await pool.close()


@pytest.mark.timeout(300)
async def test_four_consumers_fold_shuffled_duplicated_observations_exactly(
    config: RunConfig, names: BrokerNames, pool: asyncpg.Pool, db: asyncpg.Connection
) -> None:
    rng = random.Random(20261121)
    reports: dict[Key, list[Observation]] = {}
    for n in range(PAYMENTS):
        provider = sorted(MAPPINGS)[n % len(MAPPINGS)]
        facts = observations_of(rng, provider, f"order-{n}")
        reports[(provider, "acct", f"order-{n}")] = reports_of(rng, facts)
    batch = envelopes(rng, reports)
    events_queue = await names.bind_events_queue()

    async with worker(config.settings, pool, consumers=CONSUMERS) as broker:
        await publish_all(broker, batch)

        async def all_received() -> bool:
            received: int = await db.fetchval("SELECT count(*) FROM inbox")
            return received == len(batch)

        async def all_published() -> bool:
            pending: int = await db.fetchval(
                "SELECT count(*) FROM outbox WHERE published_at IS NULL"
            )
            return pending == 0

        await eventually(all_received, timeout=180, interval=0.2, what="every message applied")
        await eventually(all_published, timeout=60, interval=0.2, what="every event relayed")

    outbox_count = await db.fetchval("SELECT count(*) FROM outbox")
    delivered = await take(events_queue, outbox_count, timeout=30)
    await _check_rows(db, reports)
    transitions = await _check_seq(db)
    _check_events(delivered, transitions)


async def _check_rows(db: asyncpg.Connection, reports: dict[Key, list[Observation]]) -> None:
    """Every row is the fold of the set of its reports, whatever order they came in."""
    rows = {
        (r["provider"], r["account"], r["merchant_ref"]): r
        for r in await db.fetch("SELECT * FROM payments")
    }
    assert len(rows) == PAYMENTS
    for key, observations in reports.items():
        expected = fold(observations, Policy(failure_is_final=MAPPINGS[key[0]].failure_is_final))
        row = rows[key]
        got = (
            row["status"],
            row["amount"],
            row["currency"],
            row["amount_paid"],
            row["amount_refunded"],
            row["late"],
            row["anomaly"],
            row["provider_ref"],
        )
        want = (
            expected.status.value if expected.status else None,
            expected.amount,
            expected.currency,
            expected.amount_paid,
            expected.amount_refunded,
            expected.late,
            expected.anomaly,
            expected.provider_ref,
        )
        assert got == want, key


async def _check_seq(db: asyncpg.Connection) -> dict[str, list[tuple[str | None, str]]]:
    """Each payment's events (status changes and flags) count 1..n without gaps, its
    transitions chain status to status, each at the seq of its status_changed event."""
    events = await db.fetch(
        "SELECT p.merchant_ref, p.seq AS last, o.seq, o.routing_key"
        " FROM outbox o JOIN payments p ON p.id = o.payment_id ORDER BY p.id, o.seq"
    )
    event_seqs: dict[str, list[int]] = defaultdict(list)
    status_seqs: dict[str, list[int]] = defaultdict(list)
    for row in events:
        event_seqs[row["merchant_ref"]].append(row["seq"])
        if row["routing_key"] != "payment.flagged":
            status_seqs[row["merchant_ref"]].append(row["seq"])
        assert row["last"] >= row["seq"]
    for ref, seqs in event_seqs.items():
        assert seqs == list(range(1, len(seqs) + 1)), ref
    rows = await db.fetch(
        "SELECT p.merchant_ref, p.seq AS last, t.seq, t.from_status, t.to_status"
        " FROM transitions t JOIN payments p ON p.id = t.payment_id ORDER BY p.id, t.seq"
    )
    by_payment: dict[str, list[asyncpg.Record]] = defaultdict(list)
    for row in rows:
        by_payment[row["merchant_ref"]].append(row)
    for ref, seq_rows in by_payment.items():
        assert [r["seq"] for r in seq_rows] == status_seqs[ref], ref
        assert seq_rows[-1]["last"] == len(event_seqs[ref]), ref
        for before, after in itertools.pairwise(seq_rows):
            assert after["from_status"] == before["to_status"], ref
    return {
        ref: [(r["from_status"], r["to_status"]) for r in seq_rows]
        for ref, seq_rows in by_payment.items()
    }


def _check_events(
    delivered: list[aio_pika.abc.AbstractIncomingMessage],
    transitions: dict[str, list[tuple[str | None, str]]],
) -> None:
    """Delivered in seq order per payment; the status changes replay the transitions; a
    flag keeps the status and names an anomaly; every event is valid by its schema."""
    seen: dict[str, list[tuple[int, str | None, str]]] = defaultdict(list)
    ids = set()
    flags = 0
    for message in delivered:
        event = orjson.loads(message.body)
        validate_event(event)
        ids.add(event["event_id"])
        p = event["payment"]
        if event["type"] == "payment.flagged":
            flags += 1
            assert message.routing_key == "payment.flagged"
            assert p["previous_status"] == p["status"]
            assert p["anomaly"]
            seen[p["merchant_ref"]].append((p["seq"], None, "flag"))
        else:
            assert message.routing_key == f"payment.{p['status']}"
            seen[p["merchant_ref"]].append((p["seq"], p["previous_status"], p["status"]))
    assert len(ids) == len(delivered)
    assert set(seen) == set(transitions)
    for ref, events in seen.items():
        assert [e[0] for e in events] == list(range(1, len(events) + 1)), f"{ref} out of order"
        changes = [(e[1], e[2]) for e in events if e[2] != "flag"]
        assert changes == transitions[ref], ref
    # The run holds both kinds (a flag: an anomaly while the status stays).
    assert 0 < flags < len(delivered)
