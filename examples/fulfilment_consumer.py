"""An example fulfilment consumer of ``paysync.events``: what a downstream system does.

* It binds a quorum queue of its own (``consumer.<name>``, the ``paysync-consumer``
  RabbitMQ user may create exactly those) to ``paysync.events`` with ``payment.#``.
* It deduplicates on ``event_id`` (the AMQP ``message_id``): every event it has seen is a
  row of its own state; a redelivery or a replay of a known event is acked and dropped.
* It tracks each payment's ``seq``: an event whose seq it already passed is *stale*
  (recorded, not acted on: a status only moves up); one that skips seqs reveals a *gap*,
  and it asks paysync for that payment's events again (``POST /v1/events/replay``).
* When its queue had to be created (it did not exist: deleted, or lost with a broker), it
  asks for every event since the last one it saw, so nothing published meanwhile is lost.
* Acting on an event means recording the fulfilment action its new status calls for
  (docs/events.md: ship, hold, refund, review), in the same SQLite transaction that
  records the event as seen; the message is acked only after that commit.

Run it beside ``make run`` (the demo's token is in .run/demo.env)::

    FULFILMENT_API_TOKEN=$DEMO_API_TOKEN .venv/bin/python examples/fulfilment_consumer.py \\
        --amqp-url amqp://guest:guest@127.0.0.1:5672/ --api-url http://127.0.0.1:8080 \\
        --state fulfilment.sqlite3

Only the standard library, aio-pika and aiohttp; SQLite is called synchronously (fast,
local) to keep the example short.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import os
import signal
import sqlite3
import sys
import time
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import aio_pika
import aiohttp
from aio_pika.abc import (
    AbstractChannel,
    AbstractConnection,
    AbstractIncomingMessage,
    AbstractQueue,
)

SCHEMA = """
CREATE TABLE IF NOT EXISTS events (
    event_id    TEXT PRIMARY KEY,
    payment     TEXT NOT NULL,
    seq         INTEGER NOT NULL,
    status      TEXT NOT NULL,
    outcome     TEXT NOT NULL,   -- acted | stale
    occurred_at TEXT NOT NULL
);
CREATE TABLE IF NOT EXISTS payments (
    payment TEXT PRIMARY KEY,
    seq     INTEGER NOT NULL,
    action  TEXT NOT NULL
);
"""
SEEN = "SELECT 1 FROM events WHERE event_id = ?"
LAST_SEQ = "SELECT seq FROM payments WHERE payment = ?"
RECORD = "INSERT INTO events VALUES (?, ?, ?, ?, ?, ?)"
ACT = (
    "INSERT INTO payments VALUES (?, ?, ?)"
    " ON CONFLICT (payment) DO UPDATE SET seq = excluded.seq, action = excluded.action"
)
WATERMARK = "SELECT max(occurred_at) FROM events"

# What each status means for fulfilment (docs/events.md, "Every transition").
ACTIONS = {
    "pending": "hold",
    "failed": "hold",
    "expired": "release",
    "underpaid": "hold",
    "overdue": "review",
    "authorized": "hold",
    "cancelled": "cancel",
    "paid": "ship",
    "captured": "ship",
    "overpaid": "ship+refund_difference",
    "partially_refunded": "review",
    "refunded": "refund",
    "charged_back": "review",
}
# Asking for a replay since the last event seen, this much earlier (clock skew, and events
# committed out of their occurred_at order): the overlap is dropped as duplicates.
REPLAY_MARGIN = timedelta(minutes=5)
GAP_REPLAY_EVERY = 10.0  # seconds between two replay requests for one payment


def log(event: str, **fields: Any) -> None:
    print(json.dumps({"event": event, **fields}, default=str), flush=True)


def action_for(status: str, late: bool, anomaly: list[str]) -> str:
    if anomaly or (late and status in ("paid", "captured", "overpaid")):
        return "review"
    return ACTIONS.get(status, "ignore")


@dataclass(frozen=True, slots=True)
class Verdict:
    outcome: str  # acted | stale | duplicate
    gap: tuple[int, int] | None = None  # the seqs missed, first and last


class State:
    """The consumer's own store: events seen (the dedup set) and each payment's seq."""

    def __init__(self, path: Path) -> None:
        self._db = sqlite3.connect(path, isolation_level=None)
        self._db.executescript(SCHEMA)

    def close(self) -> None:
        self._db.close()

    def watermark(self) -> datetime | None:
        (value,) = self._db.execute(WATERMARK).fetchone()
        return datetime.fromisoformat(value.replace("Z", "+00:00")) if value else None

    def handle(self, event_id: str, event: dict[str, Any]) -> Verdict:
        """Record one event, in one transaction: dedup, then stale, gap or act."""
        p = event["payment"]
        payment = f"{p['provider']}/{p['account']}/{p['merchant_ref']}"
        seq = int(p["seq"])
        db = self._db
        db.execute("BEGIN IMMEDIATE")
        try:
            if db.execute(SEEN, (event_id,)).fetchone():
                db.execute("ROLLBACK")
                return Verdict("duplicate")
            row = db.execute(LAST_SEQ, (payment,)).fetchone()
            last = row[0] if row else 0
            outcome = "stale" if seq <= last else "acted"
            db.execute(RECORD, (event_id, payment, seq, p["status"], outcome, event["occurred_at"]))
            if outcome == "acted":
                action = action_for(p["status"], bool(p["late"]), list(p["anomaly"]))
                db.execute(ACT, (payment, seq, action))
            db.execute("COMMIT")
        except BaseException:
            db.execute("ROLLBACK")
            raise
        gap = (last + 1, seq - 1) if outcome == "acted" and seq > last + 1 else None
        return Verdict(outcome, gap)


class Replays:
    """Asks paysync's /v1 API for events again (bearer token); never blocks acking."""

    def __init__(self, api_url: str, token: str) -> None:
        self._url = api_url.rstrip("/") + "/v1/events/replay"
        self._token = token
        self._asked: dict[str, float] = {}
        self._tasks: set[asyncio.Task[None]] = set()

    def ask(self, selection: dict[str, str]) -> None:
        key = json.dumps(selection, sort_keys=True)
        now = time.monotonic()
        if now - self._asked.get(key, -GAP_REPLAY_EVERY) < GAP_REPLAY_EVERY:
            return
        self._asked[key] = now
        task = asyncio.create_task(self._post(selection))
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def _post(self, selection: dict[str, str]) -> None:
        headers = {"Authorization": f"Bearer {self._token}"}
        timeout = aiohttp.ClientTimeout(total=120)
        for attempt in range(1, 6):
            try:
                async with (
                    aiohttp.ClientSession(timeout=timeout) as session,
                    session.post(self._url, json=selection, headers=headers) as resp,
                ):
                    body = await resp.json(content_type=None)
                    if resp.status == 200:
                        log("replay_received", selection=selection, replayed=body["replayed"])
                        return
                    log("replay_refused", selection=selection, status=resp.status, body=body)
                    if resp.status < 500:
                        return
            except (aiohttp.ClientError, TimeoutError) as exc:
                log("replay_failed", selection=selection, error=type(exc).__name__)
            await asyncio.sleep(min(10.0, 0.5 * 2**attempt))

    async def drain(self) -> None:
        if self._tasks:
            await asyncio.gather(*self._tasks, return_exceptions=True)


async def bind_queue(
    connection: AbstractConnection, channel: AbstractChannel, queue: str, exchange: str
) -> tuple[AbstractQueue, bool]:
    """Declare our quorum queue and bind it; True when it had to be created."""
    probe = await connection.channel()  # a failed passive declare closes its channel
    try:
        await probe.declare_queue(queue, passive=True)
        created = False
    except aio_pika.exceptions.ChannelNotFoundEntity:
        created = True
    finally:
        with contextlib.suppress(Exception):
            await probe.close()
    declared = await channel.declare_queue(
        queue, durable=True, arguments={"x-queue-type": "quorum"}
    )
    await declared.bind(exchange, routing_key="payment.#")
    return declared, created


async def consume(args: argparse.Namespace) -> int:
    state = State(Path(args.state))
    replays = Replays(args.api_url, os.environ[args.token_env])
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    connection = await aio_pika.connect_robust(args.amqp_url)
    counts = {"acted": 0, "stale": 0, "duplicate": 0}
    last_message = time.monotonic()
    try:
        channel = await connection.channel()
        await channel.set_qos(prefetch_count=32)
        queue, created = await bind_queue(connection, channel, args.queue, args.exchange)
        watermark = state.watermark()
        log("consumer_started", queue=args.queue, created=created, watermark=watermark)
        if created and watermark is not None:
            # Bound first, then asked: anything newer arrives live, anything older by replay.
            since = (watermark - REPLAY_MARGIN).astimezone(UTC).isoformat()
            replays.ask({"since": since})

        async def on_message(message: AbstractIncomingMessage) -> None:
            nonlocal last_message
            last_message = time.monotonic()
            async with message.process(requeue=True):
                event = json.loads(message.body)
                event_id = message.message_id or event["event_id"]
                verdict = state.handle(event_id, event)
            counts[verdict.outcome] += 1
            p = event["payment"]
            log(
                f"event_{verdict.outcome}",
                event_id=event_id,
                payment=f"{p['provider']}/{p['account']}/{p['merchant_ref']}",
                seq=p["seq"],
                status=p["status"],
            )
            if verdict.gap is not None:
                log("gap_detected", event_id=event_id, missing=verdict.gap)
                replays.ask({k: p[k] for k in ("provider", "account", "merchant_ref")})

        await queue.consume(on_message)
        while not stop.is_set():
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(stop.wait(), 0.2)
            idle = time.monotonic() - last_message
            if args.exit_after_idle and idle > args.exit_after_idle:
                break
        await replays.drain()
    finally:
        await connection.close()
        state.close()
    log("consumer_stopped", **counts)
    return 0


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--amqp-url", default="amqp://guest:guest@127.0.0.1:5672/")
    parser.add_argument("--exchange", default="paysync.events")
    parser.add_argument("--queue", default="consumer.fulfilment")
    parser.add_argument("--api-url", default="http://127.0.0.1:8080")
    parser.add_argument("--token-env", default="FULFILMENT_API_TOKEN")
    parser.add_argument("--state", default="fulfilment.sqlite3")
    parser.add_argument(
        "--exit-after-idle", type=float, default=0, help="stop after S idle seconds (0: never)"
    )
    return asyncio.run(consume(parser.parse_args()))


if __name__ == "__main__":
    sys.exit(main())
