"""How the ingest app is served: the aiohttp runner every process (and test) uses for it,
with bounds on its connections.

aiohttp's own request-body decompression is off: it accepts a gzip stream without its
trailer and hands on what a truncated stream decodes to. ingest decodes
``Content-Encoding`` itself, strictly (``ingest/http.py``).

aiohttp bounds an idle kept-alive connection (``keepalive_timeout``, which also runs from
the moment a connection opens) but not how long a request head may take, nor how many
connections are open. :class:`GuardedHandler` adds both at the connection level:

- ``ingest.header_timeout_seconds``: a new connection must deliver its first request head
  (up to the blank line ending the headers) within it, or it gets ``408
  header_timeout`` (when it sent anything) and is closed. The head of a later request on
  a kept-alive connection is bounded by ``ingest.keepalive_timeout_seconds``: aiohttp
  closes a connection whose next request has not fully arrived by then.
- ``ingest.max_connections``: a connection beyond it gets ``503 too_many_connections``
  and is closed at once, before aiohttp sees it.
"""

from __future__ import annotations

import asyncio
from typing import Any, cast

from aiohttp import web
from aiohttp.web_protocol import RequestHandler

from paysync.settings import IngestSettings


def _answer(status: str, reason: str, extra: str = "") -> bytes:
    body = f'{{"error": "{reason}"}}'.encode()
    head = (
        f"HTTP/1.1 {status}\r\nContent-Type: application/json; charset=utf-8\r\n"
        f"Content-Length: {len(body)}\r\n{extra}Connection: close\r\n\r\n"
    )
    return head.encode("ascii") + body


HEADER_TIMEOUT = _answer("408 Request Timeout", "header_timeout")
TOO_MANY = _answer("503 Service Unavailable", "too_many_connections", "Retry-After: 1\r\n")


class ConnectionGuard:
    """What a runner's connections share: the bounds and how many are open."""

    def __init__(self, settings: IngestSettings) -> None:
        self.header_timeout = settings.header_timeout_seconds
        self.max_connections = settings.max_connections
        self.open = 0


class GuardedHandler(RequestHandler):
    """aiohttp's per-connection protocol, admitted under the cap and timed until its first
    request head is in. The head's end is found in the bytes as they arrive (the first
    empty line), so nothing of aiohttp's parsing is relied on."""

    def __init__(self, manager: web.Server, *, guard: ConnectionGuard, **kwargs: Any) -> None:
        super().__init__(manager, **kwargs)
        self._guard = guard
        self._admitted = False
        self._head_timer: asyncio.TimerHandle | None = None
        # The last bytes seen while the head is incomplete (its end may span two reads);
        # None before any byte arrived.
        self._head_tail: bytes | None = None

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        # A stream transport, though not necessarily an asyncio.Transport subclass:
        # uvloop's are not (an isinstance check here refused every connection under it).
        transport = cast(asyncio.Transport, transport)
        if self._guard.open >= self._guard.max_connections:
            transport.write(TOO_MANY)
            transport.close()
            return
        self._guard.open += 1
        self._admitted = True
        loop = asyncio.get_running_loop()
        self._head_timer = loop.call_later(
            self._guard.header_timeout, self._head_overdue, transport
        )
        super().connection_made(transport)

    def data_received(self, data: bytes) -> None:
        if not self._admitted:
            return
        if self._head_timer is not None:
            seen = (self._head_tail or b"") + data
            if b"\n\n" in seen or b"\n\r\n" in seen:
                self._head_timer.cancel()
                self._head_timer = None
            else:
                self._head_tail = seen[-2:]
        super().data_received(data)

    def _head_overdue(self, transport: asyncio.Transport) -> None:
        self._head_timer = None
        if transport.is_closing():
            return
        if self._head_tail is not None:
            transport.write(HEADER_TIMEOUT)
        transport.close()

    def connection_lost(self, exc: BaseException | None) -> None:
        if not self._admitted:
            return
        self._admitted = False
        self._guard.open -= 1
        if self._head_timer is not None:
            self._head_timer.cancel()
            self._head_timer = None
        super().connection_lost(exc)


class GuardedServer(web.Server):
    """aiohttp's server, making a :class:`GuardedHandler` per connection."""

    def __init__(
        self,
        handler: Any,
        *,
        guard: ConnectionGuard,
        handler_kwargs: dict[str, Any],
        **kwargs: Any,
    ) -> None:
        super().__init__(handler, **kwargs, **handler_kwargs)
        self._guard = guard
        self._handler_kwargs = handler_kwargs

    def __call__(self) -> RequestHandler:
        loop = asyncio.get_running_loop()
        return GuardedHandler(self, loop=loop, guard=self._guard, **self._handler_kwargs)


class IngestRunner(web.AppRunner):
    """An AppRunner whose server is a :class:`GuardedServer`."""

    def __init__(self, app: web.Application, settings: IngestSettings) -> None:
        self._handler_kwargs: dict[str, Any] = {
            "access_log": None,
            "auto_decompress": False,
            "keepalive_timeout": settings.keepalive_timeout_seconds,
        }
        super().__init__(
            app,
            handle_signals=False,
            shutdown_timeout=settings.shutdown_timeout_seconds,
            **self._handler_kwargs,
        )
        self._guard = ConnectionGuard(settings)

    async def _make_server(self) -> web.Server:
        # The app's own server (its startup run, its handler), remade as a guarded one.
        server = await super()._make_server()
        return GuardedServer(
            server.request_handler,
            request_factory=server.request_factory,
            handler_cancellation=server.handler_cancellation,
            guard=self._guard,
            handler_kwargs=self._handler_kwargs,
        )


def ingest_runner(app: web.Application, settings: IngestSettings) -> web.AppRunner:
    """The runner for the ingest app (call ``setup()``, then start a site on it)."""
    return IngestRunner(app, settings)
