"""ingest served in the test's own event loop, wired as the runner wires it."""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from datetime import UTC, datetime

import aiohttp
from aiohttp import web

from ingest.app import build_app
from paysync.broker import Broker
from paysync.db import create_pool
from paysync.metrics import Metrics
from paysync.runner import broker_of
from paysync.settings import Settings
from providers import REGISTRY


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
    runner = web.AppRunner(
        build_app(settings, broker, REGISTRY, metrics or Metrics(), clock=clock, pool=pool),
        access_log=None,
    )
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
