"""A batch applied with one statement per table: the fast path of ``Store.apply_batch``.

The same decisions as one envelope after another (``Store._apply_envelope``), taken in
the same order, but planned in memory between two reads and one write per table:

1. lock every payment of the batch, created on first sight, in one statement, in the
   batch's sorted key order (``lock_batch_payments``);
2. read their inbox rows in one statement (``batch_receipts``);
3. decide every observation in Python, envelope by envelope, each seeing the receipts the
   batch recorded before it, exactly as the savepoint path would see them in Postgres;
4. write the inbox rows, transitions, outbox events and final payment rows (and the
   relay's NOTIFY) with one statement of ``unnest`` inserts and an update.

There is no savepoint per envelope here, so an envelope Postgres refuses fails the whole
statement: the caller rolls the transaction back and applies the batch again with one
savepoint per envelope, where such an envelope fails alone (``Replan`` likewise, when
a write did not do what the plan said).
"""

from __future__ import annotations

import uuid
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import asyncpg
import orjson

from paysync.state.decision import ReceiptOutcome, decide
from paysync.state.fold import PaymentState, Policy
from schemas.envelope import Envelope
from schemas.observation import Observation
from worker.ledger import writes_of
from worker.outcome import Outcome

if TYPE_CHECKING:
    from paysync.db import Conn

Key = tuple[str, str, str]


class Replan(Exception):
    """A write of the batch did not match its plan: apply it one envelope at a time."""


@dataclass(slots=True)
class _Payment:
    """One locked payment as the batch changes it, in memory."""

    id: int
    key: Key
    state: PaymentState
    seq: int
    metadata: dict[str, Any]
    receipts: list[Observation] = field(default_factory=list)
    recorded: set[tuple[str, str]] = field(default_factory=set)
    touched: bool = False
    dirty: bool = False


@dataclass(slots=True)
class _Plan:
    inbox: list[tuple[Any, ...]] = field(default_factory=list)
    transitions: list[tuple[Any, ...]] = field(default_factory=list)  # inbox ref last
    outbox: list[tuple[Any, ...]] = field(default_factory=list)


async def apply_bulk(
    conn: Conn,
    queries: Mapping[str, str],
    policy: Callable[[str], Policy],
    batch: Sequence[tuple[Envelope, list[Observation]]],
    order: Sequence[int],
    keys: Sequence[Key],
    state_of: Callable[[asyncpg.Record], PaymentState],
) -> list[list[Outcome]]:
    """Apply ``batch`` (envelopes taken in ``order``; ``keys`` sorted and distinct) inside
    the caller's transaction; each envelope's outcomes, in the batch's order. Any error
    leaves the transaction to be rolled back."""
    payments = await _lock(conn, queries, keys, state_of)
    plan = _Plan()
    results: list[list[Outcome]] = [[] for _ in batch]
    for i in order:
        envelope, observations = batch[i]
        for obs in sorted(observations, key=lambda o: (o.merchant_ref, o.dedup_key)):
            payment = payments[(obs.provider, obs.account, obs.merchant_ref)]
            results[i].append(_decide(payment, envelope, obs, policy(obs.provider), plan))
    await _write(conn, queries, payments.values(), plan)
    return results


async def _lock(
    conn: Conn,
    queries: Mapping[str, str],
    keys: Sequence[Key],
    state_of: Callable[[asyncpg.Record], PaymentState],
) -> dict[Key, _Payment]:
    columns = ([k[n] for k in keys] for n in range(3))
    rows = await conn.fetch(queries["lock_batch_payments"], *columns)
    payments = {
        (r["provider"], r["account"], r["merchant_ref"]): _Payment(
            id=r["id"],
            key=(r["provider"], r["account"], r["merchant_ref"]),
            state=state_of(r),
            seq=r["seq"],
            metadata=r["metadata"] or {},
        )
        for r in rows
    }
    if len(payments) != len(keys):
        raise Replan(f"locked {len(payments)} payments of {len(keys)}")
    known = [r["id"] for r in rows if not r["created"]]
    if known:
        by_id = {p.id: p for p in payments.values()}
        for r in await conn.fetch(queries["batch_receipts"], known):
            payment = by_id[r["payment_id"]]
            payment.recorded.add((r["dedup_key"], r["message_id"]))
            if r["outcome"] != ReceiptOutcome.HINT:
                payment.receipts.append(Observation.from_json(r["observation"]))
    return payments


def _decide(
    payment: _Payment, envelope: Envelope, obs: Observation, policy: Policy, plan: _Plan
) -> Outcome:
    """One observation, as ``Store._apply_one`` would apply it at this point."""
    source = obs.source.value
    receipt = (obs.dedup_key, envelope.message_id)
    if receipt in payment.recorded:
        # This very message was recorded before (a redelivery after a crash).
        return Outcome(obs.dedup_key, ReceiptOutcome.DUPLICATE, source)
    decision = decide(payment.state, payment.receipts, obs, policy)
    document = obs.to_json()
    plan.inbox.append(
        (
            obs.dedup_key,
            payment.id,
            envelope.message_id,
            source,
            obs.kind.value,
            envelope.received_at,
            envelope.body,
            orjson.dumps(document).decode(),
            decision.outcome.value,
        )
    )
    payment.recorded.add(receipt)
    if decision.outcome is not ReceiptOutcome.HINT:
        payment.receipts.append(Observation.from_json(document))
    if obs.metadata and not payment.metadata:
        # As set_metadata: the first registration's metadata stays.
        payment.metadata, payment.dirty = dict(obs.metadata), True
    provider, account, merchant_ref = payment.key
    writes = writes_of(
        decision,
        provider=provider,
        account=account,
        merchant_ref=merchant_ref,
        seq=payment.seq,
        source=source,
        metadata=payment.metadata,
        message_id=envelope.message_id,
    )
    if writes is not None:
        payment.state, payment.seq = decision.after, writes.seq
        payment.touched = payment.dirty = True
        if writes.transition is not None:
            plan.transitions.append((payment.id, writes.seq, *writes.transition, source, receipt))
        if (event := writes.event) is not None:
            body = orjson.dumps(event.to_json()).decode()
            plan.outbox.append(
                (uuid.UUID(event.event_id), payment.id, writes.seq, event.routing_key, body)
            )
    return Outcome(obs.dedup_key, decision.outcome, source, decision.transition, decision.event)


async def _write(
    conn: Conn, queries: Mapping[str, str], payments: Iterable[_Payment], plan: _Plan
) -> None:
    changed = [
        (
            p.id,
            None if p.state.status is None else p.state.status.value,
            p.state.provider_ref,
            p.state.amount,
            p.state.currency,
            p.state.expires_at,
            p.state.amount_paid,
            p.state.amount_refunded,
            p.state.late,
            p.state.anomaly,
            p.seq,
            orjson.dumps(p.metadata).decode(),
            p.touched,
        )
        for p in payments
        if p.dirty
    ]
    transitions = [(*t[:-1], *t[-1]) for t in plan.transitions]
    row = await conn.fetchrow(
        queries["write_batch"],
        *_columns(plan.inbox, 9),
        *_columns(transitions, 7),
        *_columns(plan.outbox, 5),
        *_columns(changed, 13),
        bool(plan.outbox),
    )
    assert row is not None
    written = (row["receipts"], row["transitions"], row["events"], row["payments"])
    planned = (len(plan.inbox), len(plan.transitions), len(plan.outbox), len(changed))
    if written != planned:
        raise Replan(
            f"wrote {written} (receipts, transitions, events, payments), planned {planned}"
        )


def _columns(rows: list[tuple[Any, ...]], width: int) -> list[list[Any]]:
    """Rows of ``width`` values as ``width`` column arrays, for ``unnest``."""
    if not rows:
        return [[] for _ in range(width)]
    return [list(column) for column in zip(*rows, strict=True)]
