"""ingest served in the test's own event loop, wired as the runner wires it."""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from datetime import UTC, datetime

import aiohttp
from aiohttp import web

from ingest.app import build_app
from ingest.server import ingest_runner
from paysync.broker import Broker
from paysync.connections import broker_of
from paysync.db import create_pool
from paysync.metrics import Metrics
from paysync.settings import Settings
from providers import REGISTRY
from schemas.envelope import Envelope, EnvelopeKind
from schemas.observation import load_observations
from tests.support.amqp import take
from worker.store import Store


def utc_now() -> datetime:
    return datetime.now(UTC)


@asynccontextmanager
async def serving(
    settings: Settings, clock: Callable[[], datetime] = utc_now, metrics: Metrics | None = None
) -> AsyncIterator[tuple[str, Broker]]:
    """ingest in this event loop on a free port; yields its base URL and broker link.

    Wired as the runner wires it, with a lazy pool (used only by /v1)."""
    broker = broker_of(settings, "test")
    broker.start()
    pool = await create_pool(settings.database_url, max_size=2)
    app = build_app(settings, broker, REGISTRY, metrics or Metrics(), clock=clock, pool=pool)
    runner = ingest_runner(app, settings.ingest)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    port = runner.addresses[0][1]
    try:
        yield f"http://127.0.0.1:{port}", broker
    finally:
        await runner.cleanup()
        await pool.close()
        await broker.close()


async def post(url: str, body: bytes, headers: dict[str, str], *, timeout: float = 10.0):
    client_timeout = aiohttp.ClientTimeout(total=timeout)
    async with (
        aiohttp.ClientSession(timeout=client_timeout) as session,
        session.post(url, data=body, headers=headers) as resp,
    ):
        return resp.status, await resp.read(), resp.headers.get("Content-Type", "")


async def apply_published(queue: str, store: Store, count: int = 1) -> None:
    """Take ``count`` envelopes ingest published to ``queue`` and apply them with the
    worker's store, parsed as the worker parses them (no consumer runs)."""
    for message in await take(queue, count):
        envelope = Envelope.from_amqp(
            message_id=message.message_id,
            headers=message.headers,
            body=message.body,
            content_type=message.content_type,
        )
        if envelope.kind is EnvelopeKind.OBSERVATIONS:
            observations = load_observations(envelope.body)
        else:
            observations = REGISTRY[envelope.provider].parse_callback(envelope)
        await store.apply(envelope, observations)
