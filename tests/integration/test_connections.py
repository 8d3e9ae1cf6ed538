"""ingest's connection bounds with real sockets: a request head must arrive within
``ingest.header_timeout_seconds`` (slowloris), an idle kept-alive connection is closed
after ``ingest.keepalive_timeout_seconds``, and no more than ``ingest.max_connections`` are
open at once. Each bound is checked by awaiting the close (the bound plus slack), never by
timing anything else.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator
from typing import Any

import pytest

from paysync.settings import Settings
from tests.support.config import RunConfig
from tests.support.ingest import serving
from tests.support.waiting import eventually

pytestmark = pytest.mark.integration

BOUND = 0.5
SLACK = 2.0
LONG = 60.0  # a bound the test is not about
HEALTH = b"GET /healthz HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n"

Connection = tuple[asyncio.StreamReader, asyncio.StreamWriter]


def bounded(settings: Settings, **ingest: Any) -> Settings:
    bounds = {"header_timeout_seconds": LONG, "keepalive_timeout_seconds": LONG} | ingest
    return settings.model_copy(update={"ingest": settings.ingest.model_copy(update=bounds)})


@contextlib.asynccontextmanager
async def ingest(settings: Settings) -> AsyncIterator[int]:
    async with serving(settings) as (url, broker):
        await broker.wait_connected(10)
        yield int(url.rsplit(":", 1)[1])


@contextlib.asynccontextmanager
async def connected(port: int) -> AsyncIterator[Connection]:
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    try:
        yield reader, writer
    finally:
        writer.close()
        with contextlib.suppress(ConnectionError):
            await writer.wait_closed()


async def closed_by_server(reader: asyncio.StreamReader, within: float) -> bytes:
    """Everything the server sends until it closes the connection; fails the test when it
    is still open after ``within`` seconds."""
    received = b""
    async with asyncio.timeout(within):
        while chunk := await reader.read(4096):
            received += chunk
    return received


async def answer(connection: Connection, request: bytes = HEALTH) -> bytes:
    """Send one request on a kept-alive connection and read its whole answer."""
    reader, writer = connection
    writer.write(request)
    async with asyncio.timeout(10):
        head = await reader.readuntil(b"\r\n\r\n")
        length = next(
            int(line.split(b":")[1])
            for line in head.split(b"\r\n")
            if line.lower().startswith(b"content-length:")
        )
        return head + await reader.readexactly(length)


async def test_a_slowloris_head_is_cut_off_at_the_header_timeout(config: RunConfig) -> None:
    async with (
        ingest(bounded(config.settings, header_timeout_seconds=BOUND)) as port,
        connected(port) as (reader, writer),
    ):
        writer.write(b"POST /webhooks/ccpayment/shop HTTP/1.1\r\nHost: 127.0.0.1\r\n")

        async def trickle() -> None:
            # A header line a byte at a time, never finishing the head.
            with contextlib.suppress(ConnectionError):
                for byte in b"X-Slow: " + b"a" * 1000:
                    writer.write(bytes([byte]))
                    await writer.drain()
                    await asyncio.sleep(0.05)

        sender = asyncio.create_task(trickle())
        try:
            received = await closed_by_server(reader, BOUND + SLACK)
        finally:
            sender.cancel()
    assert received.startswith(b"HTTP/1.1 408 "), received
    assert b'{"error": "header_timeout"}' in received


async def test_a_connection_that_sends_nothing_is_closed_at_the_header_timeout(
    config: RunConfig,
) -> None:
    async with (
        ingest(bounded(config.settings, header_timeout_seconds=BOUND)) as port,
        connected(port) as (reader, _),
    ):
        assert await closed_by_server(reader, BOUND + SLACK) == b""


async def test_a_head_in_time_is_served_however_long_its_body_takes(config: RunConfig) -> None:
    # The header timeout bounds the head only: the body has ingest.body_timeout_seconds.
    settings = bounded(config.settings, header_timeout_seconds=BOUND)
    body = b'{"not": "signed"}'
    head = (
        b"POST /webhooks/ccpayment/shop HTTP/1.1\r\nHost: 127.0.0.1\r\n"
        b"Content-Type: application/json\r\nContent-Length: %d\r\n\r\n" % len(body)
    )
    async with ingest(settings) as port, connected(port) as (reader, writer):
        writer.write(head)
        for byte in body:  # 17 bytes over ~1.7 s: past the header timeout
            await asyncio.sleep(0.1)
            writer.write(bytes([byte]))
        async with asyncio.timeout(10):
            status = await reader.readuntil(b"\r\n")
    assert status.startswith(b"HTTP/1.1 401 "), status  # judged by its (missing) signature


async def test_an_idle_kept_alive_connection_is_closed_at_the_keepalive_timeout(
    config: RunConfig,
) -> None:
    settings = bounded(config.settings, keepalive_timeout_seconds=BOUND)
    async with ingest(settings) as port, connected(port) as connection:
        first = await answer(connection)
        assert first.startswith(b"HTTP/1.1 200 ")
        assert b"Connection: close" not in first  # kept alive ...
        assert await closed_by_server(connection[0], BOUND + SLACK) == b""  # ... then closed


async def test_connections_over_the_cap_are_refused_and_room_is_made_by_a_close(
    config: RunConfig,
) -> None:
    cap = 3
    async with (
        ingest(bounded(config.settings, max_connections=cap)) as port,
        contextlib.AsyncExitStack() as stack,
    ):
        held = [await stack.enter_async_context(connected(port)) for _ in range(cap)]
        for connection in held:  # each one admitted and served
            assert (await answer(connection)).startswith(b"HTTP/1.1 200 ")
        async with connected(port) as (reader, _):
            refused = await closed_by_server(reader, SLACK)
        assert refused.startswith(b"HTTP/1.1 503 "), refused
        assert b'{"error": "too_many_connections"}' in refused
        held[0][1].close()

        async def admitted() -> bytes | None:
            async with connected(port) as connection:
                with contextlib.suppress(ConnectionError, asyncio.IncompleteReadError):
                    reply = await answer(connection)
                    return reply if reply.startswith(b"HTTP/1.1 200 ") else None
            return None

        await eventually(admitted, timeout=10, what="a connection admitted after a close")
