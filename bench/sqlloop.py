"""The worker pair's baseline: a raw asyncpg loop doing the worker's writes, nothing else.

``python -m bench.sqlloop --dsn URL --count N --connections C [--batch B]`` applies N
distinct CCPayment credits, one transaction per message (or per B messages, as the batched
worker does), on C pooled connections (the worker's pool size): the payment upsert that
locks its row, the inbox insert, the transition, the outbox row and the payment update: the
worker's own SQL text from ``worker/queries.sql``. What the worker decides (the
observation, the new state, the event) is computed with paysync's pure code *before* the
loop starts, so the loop measures only the database. No AMQP, no read of the payment's
known facts, no fold, no ``NOTIFY``, no relay, no logging. When done it waits to be
stopped, so its peak RSS can be read.
"""

from __future__ import annotations

import argparse
import asyncio
import sys
import uuid
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING

import orjson

from bench.lifetime import wait_for_stop
from bench.load import ccpayment_envelopes
from bench.loop import same_loop
from paysync.db import create_pool, load_queries
from paysync.state.decision import decide
from paysync.state.fold import PaymentState
from providers import REGISTRY
from schemas.envelope import Envelope
from worker.ledger import event_of
from worker.store import QUERIES_PATH

if TYPE_CHECKING:
    from paysync.db import Conn


@dataclass(frozen=True, slots=True)
class Write:
    """One message's worth of parameters, as the worker would compute them."""

    envelope: Envelope
    merchant_ref: str
    dedup_key: str
    source: str
    kind: str
    observation: bytes
    status: str
    provider_ref: str | None
    amount: object
    currency: str | None
    amount_paid: object
    event_id: uuid.UUID
    routing_key: str
    event: bytes


def prepare(count: int) -> list[Write]:
    return [_write(envelope) for envelope in ccpayment_envelopes(count)]


def _write(envelope: Envelope) -> Write:
    (obs,) = REGISTRY[envelope.provider].parse_callback(envelope)
    decision = decide(PaymentState(), [], obs)
    state = decision.after
    assert state.status is not None
    event = event_of(
        decision,
        provider=obs.provider,
        account=obs.account,
        merchant_ref=obs.merchant_ref,
        source=obs.source.value,
        seq=1,
        metadata={},
    )
    return Write(
        envelope=envelope,
        merchant_ref=obs.merchant_ref,
        dedup_key=obs.dedup_key,
        source=obs.source.value,
        kind=obs.kind.value,
        observation=orjson.dumps(obs.to_json()),
        status=state.status.value,
        provider_ref=state.provider_ref,
        amount=state.amount,
        currency=state.currency,
        amount_paid=state.amount_paid,
        event_id=uuid.UUID(event.event_id),
        routing_key=event.routing_key,
        event=orjson.dumps(event.to_json()),
    )


async def apply(conn: Conn, q: Mapping[str, str], w: Write) -> None:
    """The worker's writes for one new payment's first credit (one transition)."""
    env = w.envelope
    row = await conn.fetchrow(q["lock_payment"], env.provider, env.account, w.merchant_ref)
    assert row is not None
    payment_id = row["id"]
    inbox_id = await conn.fetchval(
        q["insert_inbox"],
        w.dedup_key,
        payment_id,
        env.message_id,
        w.source,
        w.kind,
        env.received_at,
        env.body,
        w.observation.decode(),
        "applied",
    )
    await conn.execute(q["insert_transition"], payment_id, 1, None, w.status, w.source, inbox_id)
    await conn.execute(q["insert_outbox"], w.event_id, payment_id, 1, w.routing_key, w.event)
    await conn.execute(
        q["update_payment"],
        payment_id,
        w.status,
        w.provider_ref,
        w.amount,
        w.currency,
        None,
        w.amount_paid,
        0,
        False,
        None,
        1,
    )


async def run(dsn: str, count: int, connections: int, batch: int = 1) -> None:
    writes = prepare(count)
    queries = load_queries(QUERIES_PATH)
    pool = await create_pool(dsn, max_size=connections)
    pending: Iterator[list[Write]] = (writes[i : i + batch] for i in range(0, len(writes), batch))

    async def loop() -> None:
        for chunk in pending:
            async with pool.acquire() as conn, conn.transaction():
                for write in chunk:
                    await apply(conn, queries, write)

    try:
        await asyncio.gather(*(loop() for _ in range(connections)))
        await wait_for_stop()
    finally:
        await pool.close()


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.sqlloop", description=__doc__)
    parser.add_argument("--dsn", required=True)
    parser.add_argument("--count", type=int, required=True)
    parser.add_argument("--connections", type=int, required=True)
    parser.add_argument("--batch", type=int, default=1, help="messages per transaction")
    args = parser.parse_args(argv)
    same_loop(run(args.dsn, args.count, args.connections, args.batch))
    return 0


if __name__ == "__main__":
    sys.exit(main())
