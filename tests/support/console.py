"""The console served in the test's own event loop, and a logged-in client of it."""

from __future__ import annotations

import re
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

import aiohttp
from aiohttp import web

from console.app import build_console
from paysync.broker import Broker
from paysync.connections import broker_of
from paysync.db import create_pool
from paysync.settings import Settings

CSRF = re.compile(r'name="csrf" value="([0-9a-f]+)"')


@asynccontextmanager
async def console_serving(settings: Settings) -> AsyncIterator[tuple[str, Broker]]:
    broker = broker_of(settings, "test console")
    broker.start()
    await broker.wait_connected(10)
    pool = await create_pool(settings.database_url, max_size=2)
    runner = web.AppRunner(build_console(settings, pool, broker), access_log=None)
    await runner.setup()
    await web.TCPSite(runner, "127.0.0.1", 0).start()
    try:
        yield f"http://127.0.0.1:{runner.addresses[0][1]}", broker
    finally:
        await runner.cleanup()
        await pool.close()
        await broker.close()


def csrf_of(html: str) -> str:
    match = CSRF.search(html)
    assert match, "no CSRF token in the page"
    return match[1]


async def login(session: aiohttp.ClientSession, url: str, token: str) -> aiohttp.ClientResponse:
    async with session.get(f"{url}/login") as page:
        csrf = csrf_of(await page.text())
    async with session.post(
        f"{url}/login", data={"csrf": csrf, "token": token}, allow_redirects=False
    ) as resp:
        await resp.read()
        return resp
