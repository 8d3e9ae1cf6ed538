"""Postgres side of the worker: applies one envelope's observations in one transaction.

For each observation: lock the payment's row (created on first sight), load every receipt
already recorded for it (duplicates included), let the pure ``decide`` say what this
receipt does, then write exactly that: the receipt in the inbox with its outcome, and
(``worker/ledger.py``) when the row changed, the row; on a status change a transition and
a status_changed event, on a new anomaly while the status stays a flagged event, each
event with the next ``seq`` in the outbox. The row lock serialises concurrent consumers
of one payment, so no update is lost and ``seq`` has no gaps; since the new state is the
fold of every receipt, the row does not depend on the order receipts arrived in. The
caller acks after commit.

Outcomes: see ``paysync.state.decision``.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from contextvars import ContextVar
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import asyncpg
from structlog.contextvars import bound_contextvars

from paysync.db import TRANSIENT_DB_ERRORS, load_queries, translated_errors
from paysync.errors import DatabaseUnavailable
from paysync.logging import get_logger
from paysync.state.decision import ReceiptOutcome, decide, refold
from paysync.state.fold import PaymentState, Policy
from providers.base import ReturnHint
from schemas.envelope import Envelope
from schemas.event import EventType
from schemas.mapping import StatusMapping
from schemas.observation import Kind, Observation, Source
from schemas.status import Status
from worker.bulk import Replan, apply_bulk
from worker.ledger import write_decision
from worker.outcome import Applied, Outcome

if TYPE_CHECKING:
    from paysync.db import Conn

QUERIES_PATH = Path(__file__).with_name("queries.sql")

log = get_logger(__name__)


# Failures of the transaction as a whole, never of one envelope (a lost connection, a
# deadlock, a serialization failure): nothing is committed and the batch is retried.
_WHOLE_BATCH: tuple[type[BaseException], ...] = (DatabaseUnavailable, *TRANSIENT_DB_ERRORS)

# The payments the running batch's transaction locked up front (``lock_known_payments``):
# their row and receipts are read in one round trip.
_LOCKED: ContextVar[frozenset[tuple[str, str, str]]] = ContextVar(
    "paysync_batch_locked", default=frozenset()
)

# The source of what a refold writes (transitions, events): an operator's re-derivation
# from receipts already stored, not a new observation.
REFOLD = "refold"


@dataclass(frozen=True, slots=True, kw_only=True)
class Refolded:
    """A stored row that was not the fold of its receipts, and what the fold makes it."""

    payment_id: int
    payment: str  # provider/account/merchant_ref
    before: PaymentState
    after: PaymentState
    event: EventType | None


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
        async with translated_errors(), self._pool.acquire() as conn, conn.transaction():
            outcomes = await self._apply_envelope(conn, envelope, observations)
            if any(o.event for o in outcomes):
                await conn.execute(self._q["notify_outbox"])
        return outcomes

    async def apply_batch(
        self, batch: Sequence[tuple[Envelope, list[Observation]]]
    ) -> list[Applied]:
        """Apply several envelopes in one transaction: with one statement per table
        (``worker.bulk``) when Postgres takes the whole batch; else again with a savepoint
        per envelope, where an envelope that fails (not for a lost connection or a lock
        conflict) is rolled back alone and its error returned in its place, while the
        others commit together. Raises DatabaseUnavailable when the transaction as a
        whole fails (nothing committed), and any other error of a statement outside the
        savepoints likewise (nothing committed).

        Rows are locked in one stable order: the batch's payments by key (the bulk path
        locks them all at once; the savepoint path those that exist already, first, then
        the envelopes in the order of their payments' keys)."""
        keys = sorted({_key(o) for _, observations in batch for o in observations})
        order = sorted(range(len(batch)), key=lambda i: min(map(_key, batch[i][1]), default=()))
        async with translated_errors(), self._pool.acquire() as conn:
            try:
                async with conn.transaction():
                    outcomes = await apply_bulk(
                        conn, self._q, self._policy, batch, order, keys, _state
                    )
                return list(outcomes)
            except _WHOLE_BATCH:
                raise
            except (asyncpg.PostgresError, Replan) as exc:
                log.info("batch_applied_one_by_one", error=type(exc).__name__, size=len(batch))
            return await self._apply_savepoints(conn, batch, order, keys)

    async def _apply_savepoints(
        self,
        conn: Conn,
        batch: Sequence[tuple[Envelope, list[Observation]]],
        order: Sequence[int],
        keys: list[tuple[str, str, str]],
    ) -> list[Applied]:
        results: list[Applied] = [[] for _ in batch]
        async with conn.transaction():
            token = _LOCKED.set(await self._lock_known(conn, keys))
            try:
                for i in order:
                    envelope, observations = batch[i]
                    try:
                        with bound_contextvars(message_id=envelope.message_id):
                            async with conn.transaction():
                                results[i] = await self._apply_envelope(
                                    conn, envelope, observations
                                )
                    except _WHOLE_BATCH:
                        raise
                    except Exception as exc:
                        results[i] = exc
            finally:
                _LOCKED.reset(token)
            if any(not isinstance(r, Exception) and any(o.event for o in r) for r in results):
                await conn.execute(self._q["notify_outbox"])
        return results

    async def _lock_known(
        self, conn: Conn, keys: list[tuple[str, str, str]]
    ) -> frozenset[tuple[str, str, str]]:
        """Lock the batch's existing payments in key order; the keys locked. A key Postgres
        refuses (a poison envelope's) leaves every row to its envelope's own savepoint."""
        columns = ([k[n] for k in keys] for n in range(3))
        try:
            async with conn.transaction():
                rows = await conn.fetch(self._q["lock_known_payments"], *columns)
        except _WHOLE_BATCH:
            raise
        except asyncpg.PostgresError:
            return frozenset()
        return frozenset((r["provider"], r["account"], r["merchant_ref"]) for r in rows)

    async def _apply_envelope(
        self,
        conn: Conn,
        envelope: Envelope,
        observations: list[Observation],
    ) -> list[Outcome]:
        # A stable order keeps row locks ordered, so two envelopes cannot deadlock.
        ordered = sorted(observations, key=lambda o: (o.merchant_ref, o.dedup_key))
        return [await self._apply_one(conn, envelope, obs) for obs in ordered]

    async def _apply_one(self, conn: Conn, envelope: Envelope, obs: Observation) -> Outcome:
        key = _key(obs)
        receipts: list[Mapping[str, Any]]
        if key in _LOCKED.get():
            row = await conn.fetchrow(self._q["locked_payment_with_receipts"], *key)
            assert row is not None
            receipts = row["receipts"]
        else:
            row = await conn.fetchrow(self._q["lock_payment"], *key)
            assert row is not None
            receipts = [] if row["created"] else await self._receipts(conn, row["id"])
        decision = decide(
            _state(row),
            (Observation.from_json(r) for r in receipts),
            obs,
            self._policy(obs.provider),
        )
        inbox_id = await record_receipt(conn, self._q, row["id"], envelope, obs, decision.outcome)
        if inbox_id is None:
            # This very message was recorded before (a redelivery after a crash).
            return Outcome(obs.dedup_key, ReceiptOutcome.DUPLICATE, obs.source.value)
        if obs.metadata:
            await conn.execute(self._q["set_metadata"], row["id"], dict(obs.metadata))
        event = await write_decision(
            conn,
            self._q,
            row,
            decision,
            source=obs.source.value,
            inbox_id=inbox_id,
            # As set_metadata leaves it: the first registration's metadata stays.
            metadata=row["metadata"] or dict(obs.metadata or {}),
        )
        return Outcome(
            obs.dedup_key, decision.outcome, obs.source.value, decision.transition, event
        )

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
            obs = Observation(
                kind=Kind.HINT,
                source=Source.RETURN_URL,
                provider=hint.provider,
                account=hint.account,
                merchant_ref=hint.merchant_ref or (row["merchant_ref"] if row else ""),
                dedup_key=hint.dedup_key,
                observed_at=hint.observed_at,
                provider_ref=hint.provider_ref,
                provider_status=hint.provider_status,
            )
            decision = decide(None if row is None else _state(row), (), obs)
            if row is None:
                return Outcome(obs.dedup_key, decision.outcome, obs.source.value)
            inbox_id = await record_receipt(
                conn, self._q, row["id"], envelope, obs, decision.outcome
            )
            await conn.execute(self._q["check_now"], row["id"])
        outcome = decision.outcome if inbox_id else ReceiptOutcome.DUPLICATE
        return Outcome(obs.dedup_key, outcome, obs.source.value)

    async def refold_payment(self, payment_id: int, *, dry_run: bool) -> Refolded | None:
        """Make one stored row the fold of its receipts again (rows written before the
        store folded every receipt): one transaction under the row lock, writing as any
        receipt would (a status change appends a transition and an event, a new anomaly a
        flagged event), with source ``refold``. None when the row already is the fold."""
        async with translated_errors(), self._pool.acquire() as conn, conn.transaction():
            row = await conn.fetchrow(self._q["lock_payment_by_id"], payment_id)
            if row is None:
                return None
            receipts = await conn.fetch(self._q["payment_receipts"], payment_id)
            before = _state(row)
            decision = refold(
                before,
                (Observation.from_json(r["observation"]) for r in receipts),
                self._policy(row["provider"]),
            )
            if not decision.changed:
                return None
            if not dry_run:
                metadata = row["metadata"] or {}
                await write_decision(
                    conn, self._q, row, decision, source=REFOLD, inbox_id=None, metadata=metadata
                )
                if decision.event is not None:
                    await conn.execute(self._q["notify_outbox"])
        return Refolded(
            payment_id=payment_id,
            payment=f"{row['provider']}/{row['account']}/{row['merchant_ref']}",
            before=before,
            after=decision.after,
            event=decision.event,
        )

    async def payment_ids_after(self, after_id: int, limit: int) -> list[int]:
        """Payment ids in order, from after ``after_id`` (keyset pages for a refold)."""
        async with translated_errors(), self._pool.acquire() as conn:
            rows = await conn.fetch(self._q["payment_ids_after"], after_id, limit)
        return [r["id"] for r in rows]

    async def _receipts(self, conn: Conn, payment_id: int) -> list[Mapping[str, Any]]:
        rows = await conn.fetch(self._q["payment_receipts"], payment_id)
        return [r["observation"] for r in rows]

    def _policy(self, provider: str) -> Policy:
        return self._policies.get(provider, Policy())


async def record_receipt(
    conn: Conn,
    queries: Mapping[str, str],
    payment_id: int,
    envelope: Envelope,
    obs: Observation,
    outcome: ReceiptOutcome,
) -> int | None:
    """Record one receipt in the inbox; None when this very message was recorded before."""
    inbox_id: int | None = await conn.fetchval(
        queries["insert_inbox"],
        obs.dedup_key,
        payment_id,
        envelope.message_id,
        obs.source.value,
        obs.kind.value,
        envelope.received_at,
        envelope.body,
        obs.to_json(),
        outcome.value,
    )
    return inbox_id


def _key(obs: Observation) -> tuple[str, str, str]:
    return (obs.provider, obs.account, obs.merchant_ref)


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
