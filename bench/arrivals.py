"""Open-loop callbacks, each matched to the message it causes on a queue.

``measure`` sends signed CCPayment callbacks at a fixed rate to a receiver (open loop:
request i is due at start + i / rate, whatever the answers) while consuming a queue, and
matches each message that arrives to its callback by merchant ref. Latency = arrival -
the *scheduled* send time, so a stall cannot hide by slowing the sender down. A message
that has not arrived ``e2e_drain_seconds`` after the window counts as infinitely late.
"""

from __future__ import annotations

import asyncio
import contextlib
import math
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field

import aio_pika
import orjson
from aio_pika.abc import AbstractIncomingMessage

from bench import rabbit
from bench.config import Params
from bench.context import Context
from bench.cpu import CpuReader
from bench.load import (
    OPEN_LOOP_CONNECTIONS,
    Request,
    ccpayment_requests,
    cpu_between,
    frozen_gc,
    percentile_ms,
    post,
    session,
)
from bench.servers import ServerProcess

clock = time.perf_counter
RefOf = Callable[[bytes], str]


def event_ref(body: bytes) -> str:
    ref: str = orjson.loads(body)["payment"]["merchant_ref"]
    return ref


def webhook_ref(body: bytes) -> str:
    ref: str = orjson.loads(body)["extend"]["merchant_order_id"]
    return ref


@dataclass(frozen=True, slots=True)
class Run:
    sent: int  # callbacks scheduled in the window
    answered: int  # of those, answered 200
    delivered: int  # of those, whose message arrived
    errors: int  # non-200 answers in the window
    p50_ms: float | None
    p99_ms: float | None  # inf: more than 1 % never arrived
    max_ms: float | None
    cpu_percent: dict[str, float | None] = field(default_factory=dict)
    # paysync only, from the database: where the time went (see STAGES).
    stages_ms: dict[str, float | None] = field(default_factory=dict)


# Percentiles of two stages of paysync's path, read from its tables after each run:
# ``queued``: ingest received the callback → the worker's transaction began (inbox);
# ``relay``: the outbox row was written → the relay's transaction began (outbox).
STAGES = ("queued_p50", "queued_p99", "relay_p50", "relay_p99")


async def measure(
    ctx: Context,
    server: ServerProcess,
    queue_name: str,
    ref_of: RefOf,
    rate: float,
    cpu: Mapping[str, CpuReader],
) -> Run:
    params = ctx.params
    requests = ccpayment_requests(
        math.ceil(rate * (params.warmup + params.duration)) + 1, ctx.spec.secret
    )
    refs = [webhook_ref(r.body) for r in requests]
    await rabbit.purge(ctx.spec.amqp_url, ctx.spec.prefix)
    await asyncio.sleep(params.settle_seconds)
    arrivals: dict[str, float] = {}
    waiting: set[str] = set()  # filled once the window is sent: what is still to arrive
    all_arrived = asyncio.Event()

    async def arrived(message: AbstractIncomingMessage) -> None:
        ref = ref_of(message.body)
        arrivals[ref] = clock()
        if ref in waiting:
            waiting.discard(ref)
            if not waiting:
                all_arrived.set()

    async with await aio_pika.connect(ctx.spec.amqp_url) as connection:
        channel = await connection.channel()
        queue = await channel.get_queue(queue_name, ensure=True)
        tag = await queue.consume(arrived, no_ack=True)
        with frozen_gc():
            sent = await send(server.callback_url, requests, rate, params, cpu)
            waiting.update(
                refs[i]
                for i in sent.in_window
                if sent.statuses[i] == 200 and refs[i] not in arrivals
            )
            if waiting:
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(all_arrived.wait(), params.e2e_drain_seconds)
        await queue.cancel(tag)
    latencies = sorted(
        arrivals[refs[i]] - sent.scheduled[i] if refs[i] in arrivals else math.inf
        for i in sent.in_window
        if sent.statuses[i] == 200
    )
    return Run(
        sent=len(sent.in_window),
        answered=len(latencies),
        delivered=sum(1 for x in latencies if x != math.inf),
        errors=sum(1 for i in sent.in_window if sent.statuses[i] != 200),
        p50_ms=percentile_ms(latencies, 50),
        p99_ms=percentile_ms(latencies, 99),
        max_ms=latencies[-1] * 1000 if latencies else None,
        cpu_percent=sent.cpu_percent,
    )


@dataclass(frozen=True, slots=True)
class Sent:
    scheduled: list[float]
    statuses: list[int]
    in_window: list[int]  # indices scheduled inside the measured window
    cpu_percent: dict[str, float | None]


async def send(
    url: str, requests: list[Request], rate: float, params: Params, cpu: Mapping[str, CpuReader]
) -> Sent:
    """Open loop at ``rate``: request i is due at start + i / rate, whatever the answers."""
    scheduled = [math.nan] * len(requests)
    statuses = [-1] * len(requests)
    in_flight: set[asyncio.Task[None]] = set()
    async with session(OPEN_LOOP_CONNECTIONS) as http:

        async def one(i: int) -> None:
            statuses[i] = await post(http, url, requests[i])

        t0 = clock() + params.warmup
        t1 = t0 + params.duration
        meter = asyncio.create_task(cpu_between(t0, t1, cpu))
        for i in range(len(requests)):
            due = t0 - params.warmup + i / rate
            if due >= t1:
                break
            if (delay := due - clock()) > 0:
                await asyncio.sleep(delay)
            scheduled[i] = due
            task = asyncio.create_task(one(i))
            in_flight.add(task)
            task.add_done_callback(in_flight.discard)
        used = (await meter).cpu_seconds
        await asyncio.gather(*in_flight)
    seconds = t1 - t0
    return Sent(
        scheduled=scheduled,
        statuses=statuses,
        in_window=[i for i, s in enumerate(scheduled) if t0 <= s < t1],
        cpu_percent={n: None if v is None else 100 * v / seconds for n, v in used.items()},
    )
