"""Postgres side of the worker: applies one envelope's observations in one transaction.

For each observation: lock (or create) the payment row, fold, insert the inbox row (a
known dedup key means a duplicate: nothing changes), and on a status change append a
transition and an outbox row with the next ``seq``. The caller acks only after this
returns, i.e. after commit.
"""

from __future__ import annotations

import uuid
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING

import asyncpg
import orjson

from paysync.db import load_queries, translated_errors
from schemas.envelope import Envelope
from schemas.event import StatusChanged
from schemas.observation import Observation
from schemas.status import Status
from worker.fold import PaymentState, apply

if TYPE_CHECKING:
    from paysync.db import Conn

QUERIES_PATH = Path(__file__).with_name("queries.sql")


@dataclass(frozen=True, slots=True)
class Outcome:
    dedup_key: str
    outcome: str  # applied | stale | duplicate
    source: str
    transition: tuple[Status | None, Status] | None = None


class Store:
    def __init__(self, pool: asyncpg.Pool, queries: Mapping[str, str] | None = None) -> None:
        self._pool = pool
        self._q = queries or load_queries(QUERIES_PATH)

    async def apply(self, envelope: Envelope, observations: list[Observation]) -> list[Outcome]:
        """Apply all observations of one envelope atomically; raises DatabaseUnavailable."""
        # A stable order keeps row locks ordered, so two envelopes cannot deadlock.
        ordered = sorted(observations, key=lambda o: (o.merchant_ref, o.dedup_key))
        async with translated_errors(), self._pool.acquire() as conn, conn.transaction():
            outcomes = [await self._apply_one(conn, envelope, obs) for obs in ordered]
            if any(o.transition for o in outcomes):
                await conn.execute(self._q["notify_outbox"])
        return outcomes

    async def _apply_one(self, conn: Conn, envelope: Envelope, obs: Observation) -> Outcome:
        row = await conn.fetchrow(
            self._q["lock_payment"], obs.provider, obs.account, obs.merchant_ref
        )
        assert row is not None
        before = _state(row)
        after = apply(before, obs)
        changed = after != before
        inbox_id = await conn.fetchval(
            self._q["insert_inbox"],
            obs.dedup_key,
            row["id"],
            envelope.message_id,
            obs.source.value,
            obs.kind.value,
            envelope.received_at,
            envelope.body,
            obs.to_json(),
            "applied" if changed else "stale",
        )
        if inbox_id is None:
            return Outcome(obs.dedup_key, "duplicate", obs.source.value)
        if not changed:
            return Outcome(obs.dedup_key, "stale", obs.source.value)
        seq = row["seq"]
        transition = None
        if after.status is not None and after.status != before.status:
            seq += 1
            transition = (before.status, after.status)
            await self._record_transition(conn, row, obs, after, before.status, seq, inbox_id)
        await conn.execute(
            self._q["update_payment"],
            row["id"],
            _opt(after.status),
            after.provider_ref,
            after.amount,
            after.currency,
            after.amount_paid,
            after.amount_refunded,
            after.late,
            after.anomaly,
            seq,
        )
        return Outcome(obs.dedup_key, "applied", obs.source.value, transition)

    async def _record_transition(
        self,
        conn: Conn,
        row: asyncpg.Record,
        obs: Observation,
        after: PaymentState,
        previous: Status | None,
        seq: int,
        inbox_id: int,
    ) -> None:
        assert after.status is not None
        await conn.execute(
            self._q["insert_transition"],
            row["id"],
            seq,
            _opt(previous),
            after.status.value,
            obs.source.value,
            inbox_id,
        )
        event = StatusChanged(
            event_id=str(uuid.uuid4()),
            occurred_at=datetime.now(UTC),
            source=obs.source.value,
            provider=obs.provider,
            account=obs.account,
            merchant_ref=obs.merchant_ref,
            provider_ref=after.provider_ref,
            status=after.status,
            previous_status=previous,
            amount=after.amount,
            amount_paid=after.amount_paid,
            currency=after.currency,
            late=after.late,
            seq=seq,
            metadata=row["metadata"] or {},
        )
        await conn.execute(
            self._q["insert_outbox"],
            uuid.UUID(event.event_id),
            row["id"],
            seq,
            event.routing_key,
            orjson.dumps(event.to_json()),
        )


def _state(row: asyncpg.Record) -> PaymentState:
    return PaymentState(
        status=Status(row["status"]) if row["status"] else None,
        provider_ref=row["provider_ref"],
        amount=row["amount"],
        currency=row["currency"],
        amount_paid=row["amount_paid"],
        amount_refunded=row["amount_refunded"],
        late=row["late"],
        anomaly=row["anomaly"],
    )


def _opt(status: Status | None) -> str | None:
    return None if status is None else status.value
