"""What the status-API unit tests (tests/unit/test_*_status.py) share.

Without a network: ``FakeCall``, an ``HttpCall`` that records each request as a ``Sent`` and
answers with canned answers (``json_answer``), and ``Unavailable``, one whose retries have
run out. Round trips: ``serve_status_sim`` serves the status simulator on the loopback
interface and yields a ``StatusSim`` whose ``call`` is an ``HttpCall`` over an aiohttp
session (``SessionCall``). Provider-specific helpers (accounts, clients, canned bodies) stay
in each test file.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Mapping
from contextlib import asynccontextmanager
from dataclasses import dataclass, field

import aiohttp
from aiohttp.test_utils import TestServer

from paysync.errors import ProviderUnavailable
from providers.base import HttpAnswer
from simulator.status import AddRoutes, Faults, OrderBook, build_status_app


@dataclass
class Sent:
    """One request a ``FakeCall`` was asked to make."""

    method: str
    url: str
    headers: dict[str, str]
    body: bytes | None


@dataclass
class FakeCall:
    """Records each request and answers with the next canned answer."""

    answers: list[HttpAnswer]
    requests: list[Sent] = field(default_factory=list)
    # Yield to the event loop between recording a request and answering it, as real I/O
    # would, so that concurrent polls interleave.
    interleave: bool = False

    async def __call__(
        self, method: str, url: str, *, headers: Mapping[str, str], body: bytes | None = None
    ) -> HttpAnswer:
        self.requests.append(Sent(method, url, dict(headers), body))
        if self.interleave:
            await asyncio.sleep(0)
        return self.answers.pop(0)


def json_answer(status: int, body: bytes) -> HttpAnswer:
    """A canned answer: ``body`` with the status given and a JSON content type."""
    return HttpAnswer(status=status, headers={"Content-Type": "application/json"}, body=body)


class Unavailable:
    """An ``HttpCall`` whose attempts have run out: every call raises ``ProviderUnavailable``."""

    async def __call__(
        self, method: str, url: str, *, headers: Mapping[str, str], body: bytes | None = None
    ) -> HttpAnswer:
        raise ProviderUnavailable("503 after 4 attempts")


@dataclass
class SessionCall:
    """An HttpCall over an aiohttp session (no retries: the simulator injects no faults).

    The answer's headers are the response's own (case-insensitive) headers, as the
    reconciler's HttpCall passes them on."""

    session: aiohttp.ClientSession

    async def __call__(
        self, method: str, url: str, *, headers: Mapping[str, str], body: bytes | None = None
    ) -> HttpAnswer:
        async with self.session.request(method, url, headers=dict(headers), data=body) as reply:
            return HttpAnswer(status=reply.status, headers=reply.headers, body=await reply.read())


@dataclass
class StatusSim:
    """The status simulator being served: its order book, its root URL (no trailing slash)
    and an HttpCall that reaches it."""

    book: OrderBook
    url: str
    call: SessionCall


@asynccontextmanager
async def serve_status_sim(
    book: OrderBook, providers: Mapping[str, AddRoutes]
) -> AsyncIterator[StatusSim]:
    """Serve the status app of ``providers`` over ``book`` (no faults) on 127.0.0.1."""
    app = build_status_app(book, Faults(), providers)
    async with TestServer(app, host="127.0.0.1") as server, aiohttp.ClientSession() as session:
        yield StatusSim(book, str(server.make_url("")).rstrip("/"), SessionCall(session))
