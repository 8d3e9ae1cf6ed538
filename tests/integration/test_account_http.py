"""The status-API HTTP layer against a loopback server: retries on 429/5xx/timeouts with
``Retry-After`` honoured, other answers returned as they came, and the concurrency cap."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

import aiohttp
import pytest
from aiohttp import web

from paysync.errors import ProviderUnavailable
from paysync.metrics import Metrics
from paysync.retry import Backoff
from paysync.settings import StatusApiSettings
from providers.http_call import AccountHttp
from tests.support.metrics import sample

pytestmark = pytest.mark.integration


@asynccontextmanager
async def server(
    answers: list[int | str], in_flight: list[int] | None = None
) -> AsyncIterator[tuple[str, list[int]]]:
    """Answers requests in turn: an HTTP status, or "hang" (never answers in time)."""
    seen: list[int] = []
    active = [0]

    async def handle(_request: web.Request) -> web.StreamResponse:
        seen.append(len(seen))
        active[0] += 1
        if in_flight is not None:
            in_flight.append(active[0])
        try:
            answer = answers[min(len(seen) - 1, len(answers) - 1)]
            if answer == "hang":
                await asyncio.sleep(1)
                return web.Response(status=200)
            if answer == "slow":
                await asyncio.sleep(0.05)
                return web.Response(status=200, text="ok")
            headers = {"Retry-After": "0.05"} if answer == 429 else {}
            return web.Response(status=int(answer), text=f"answer {answer}", headers=headers)
        finally:
            active[0] -= 1

    app = web.Application()
    app.router.add_get("/thing", handle)
    runner = web.AppRunner(app, access_log=None)
    await runner.setup()
    await web.TCPSite(runner, "127.0.0.1", 0).start()
    try:
        yield f"http://127.0.0.1:{runner.addresses[0][1]}/thing", seen
    finally:
        await runner.cleanup()


def account_http(
    session: aiohttp.ClientSession, metrics: Metrics, **settings: float
) -> AccountHttp:
    config = StatusApiSettings(**({"rate_per_second": 1000, "timeout_seconds": 0.3} | settings))
    return AccountHttp(
        session, "hdfc", "shop", config, metrics, backoff=Backoff(initial=0.01, maximum=0.1)
    )


async def test_429_5xx_and_timeouts_are_retried_until_an_answer() -> None:
    metrics = Metrics()
    async with server([429, 503, "hang", 200]) as (url, seen), aiohttp.ClientSession() as s:
        answer = await account_http(s, metrics, max_attempts=4)("GET", url, headers={})
    assert (answer.status, answer.body) == (200, b"answer 200")
    assert len(seen) == 4
    rendered = metrics.render().decode()
    for code in ("429", "503", "timeout", "200"):
        assert sample(rendered, "paysync_provider_api_calls_total", code=code) == 1, code


async def test_out_of_attempts_is_provider_unavailable() -> None:
    async with server([503]) as (url, seen), aiohttp.ClientSession() as s:
        with pytest.raises(ProviderUnavailable, match="HTTP 503 after 3 attempts"):
            await account_http(s, Metrics(), max_attempts=3)("GET", url, headers={})
    assert len(seen) == 3


@pytest.mark.parametrize("status", [200, 401, 404, 422])
async def test_other_answers_are_returned_as_they_came(status: int) -> None:
    async with server([status]) as (url, seen), aiohttp.ClientSession() as s:
        answer = await account_http(s, Metrics())("GET", url, headers={})
    assert answer.status == status
    assert len(seen) == 1


async def test_no_more_than_the_concurrency_limit_is_in_flight() -> None:
    in_flight: list[int] = []
    async with server(["slow"], in_flight) as (url, seen), aiohttp.ClientSession() as s:
        call = account_http(s, Metrics(), concurrency=3)
        await asyncio.gather(*(call("GET", url, headers={}) for _ in range(12)))
    assert len(seen) == 12
    assert max(in_flight) == 3
