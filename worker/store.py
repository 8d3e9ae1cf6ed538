"""Postgres side of the worker: applies one envelope's observations in one transaction.

For each observation, under the payment's row lock (created on first sight): read the set
of facts already known for the payment, fold the set plus the new observation, record the
receipt in the inbox with its outcome, and on a status change append a transition and an
outbox row with the next ``seq``. The row lock serialises concurrent consumers of one
payment, so no update is lost and ``seq`` has no gaps. The caller acks after commit.

Outcomes: ``applied`` (the row changed), ``stale`` (a new fact that changed nothing),
``anomaly`` (a new fact incompatible with known ones; kept, flagged, never resolved
silently), ``duplicate`` (a fact already known, received again).
"""

from __future__ import annotations

import uuid
from collections.abc import Mapping
from dataclasses import dataclass, replace
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING

import asyncpg
import orjson

from paysync.db import load_queries, translated_errors
from paysync.logging import get_logger
from paysync.state.fold import PaymentState, Policy, fold
from providers.base import ReturnHint
from schemas.envelope import Envelope
from schemas.event import StatusChanged
from schemas.mapping import StatusMapping
from schemas.observation import Kind, Observation, Source
from schemas.status import Status

if TYPE_CHECKING:
    from paysync.db import Conn

QUERIES_PATH = Path(__file__).with_name("queries.sql")

log = get_logger(__name__)


@dataclass(frozen=True, slots=True)
class Outcome:
    dedup_key: str
    outcome: str  # applied | stale | anomaly | duplicate
    source: str
    transition: tuple[Status | None, Status] | None = None


class Store:
    def __init__(
        self,
        pool: asyncpg.Pool,
        mappings: Mapping[str, StatusMapping],
        queries: Mapping[str, str] | None = None,
    ) -> None:
        self._pool = pool
        self._policies = {
            name: Policy(failure_is_final=m.failure_is_final) for name, m in mappings.items()
        }
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
        known = await conn.fetch(self._q["payment_observations"], row["id"])
        before = _state(row)
        if any(r["dedup_key"] == obs.dedup_key for r in known):
            after, outcome = before, "duplicate"
        else:
            facts = [Observation.from_json(r["observation"]) for r in known]
            after = _never_lower(before, fold([*facts, obs], self._policy(obs.provider)))
            outcome = _outcome(before, after)
        inbox_id = await self._receipt(conn, row["id"], envelope, obs, outcome)
        if inbox_id is not None and obs.metadata:
            await conn.execute(self._q["set_metadata"], row["id"], dict(obs.metadata))
        if inbox_id is None or after == before:
            # None: this very message was recorded before (a redelivery after a crash).
            return Outcome(
                obs.dedup_key, "duplicate" if inbox_id is None else outcome, obs.source.value
            )
        seq, transition = row["seq"], None
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
            after.expires_at,
            after.amount_paid,
            after.amount_refunded,
            after.late,
            after.anomaly,
            seq,
        )
        return Outcome(obs.dedup_key, outcome, obs.source.value, transition)

    async def apply_hint(self, envelope: Envelope, hint: ReturnHint) -> Outcome:
        """Record a verified return URL and ask for an immediate poll; never folds it.

        The payment is found by merchant ref (and created, status still unknown, so the
        reconciler polls it) or by the provider's order id. A hint naming only an order id
        paysync has never seen is dropped: it carries no fact, and without a merchant ref
        there is no payment to attach a poll to (``unmatched_hint``)."""
        async with translated_errors(), self._pool.acquire() as conn, conn.transaction():
            if hint.merchant_ref is not None:
                row = await conn.fetchrow(
                    self._q["lock_payment"], hint.provider, hint.account, hint.merchant_ref
                )
            else:
                row = await conn.fetchrow(
                    self._q["lock_payment_by_provider_ref"],
                    hint.provider,
                    hint.account,
                    hint.provider_ref,
                )
            if row is None:
                return Outcome(hint.dedup_key, "unmatched_hint", Source.RETURN_URL.value)
            obs = Observation(
                kind=Kind.HINT,
                source=Source.RETURN_URL,
                provider=hint.provider,
                account=hint.account,
                merchant_ref=hint.merchant_ref or row["merchant_ref"],
                dedup_key=hint.dedup_key,
                observed_at=hint.observed_at,
                provider_ref=hint.provider_ref,
                provider_status=hint.provider_status,
            )
            inbox_id = await self._receipt(conn, row["id"], envelope, obs, "hint")
            await conn.execute(self._q["check_now"], row["id"])
        return Outcome(obs.dedup_key, "hint" if inbox_id else "duplicate", obs.source.value)

    async def _receipt(
        self, conn: Conn, payment_id: int, envelope: Envelope, obs: Observation, outcome: str
    ) -> int | None:
        """Record one receipt in the inbox; None when this very message was recorded before."""
        inbox_id: int | None = await conn.fetchval(
            self._q["insert_inbox"],
            obs.dedup_key,
            payment_id,
            envelope.message_id,
            obs.source.value,
            obs.kind.value,
            envelope.received_at,
            envelope.body,
            obs.to_json(),
            outcome,
        )
        return inbox_id

    def _policy(self, provider: str) -> Policy:
        return self._policies.get(provider, Policy())

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


def _outcome(before: PaymentState, after: PaymentState) -> str:
    new_anomalies = set((after.anomaly or "").split(",")) - set((before.anomaly or "").split(","))
    if new_anomalies - {""}:
        return "anomaly"
    return "applied" if after != before else "stale"


def _never_lower(before: PaymentState, after: PaymentState) -> PaymentState:
    """The fold is monotone by construction; should a defect ever break that, the stored
    status still never moves down, and the defect is logged loudly."""
    if before.status is None or after.status is None or after.status.rank >= before.status.rank:
        return after
    log.error("fold_rank_regression", from_status=before.status.value, to_status=after.status.value)
    return replace(after, status=before.status)


def _state(row: asyncpg.Record) -> PaymentState:
    return PaymentState(
        status=Status(row["status"]) if row["status"] else None,
        provider_ref=row["provider_ref"],
        amount=row["amount"],
        currency=row["currency"],
        expires_at=row["expires_at"],
        amount_paid=row["amount_paid"],
        amount_refunded=row["amount_refunded"],
        late=row["late"],
        anomaly=row["anomaly"],
    )


def _opt(status: Status | None) -> str | None:
    return None if status is None else status.value
