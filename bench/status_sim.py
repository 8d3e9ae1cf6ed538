"""The simulated status APIs on loopback, noting when each request arrives, per account.

``simulator/status.py``'s app (every request counted per account and whole second, faults
such as a fixed latency injected) with one more, outermost middleware: the arrival time of
each request under its account's name. From those: the rate of a run, and the most
arrivals in any sliding second (stricter than whole-second buckets).
"""

from __future__ import annotations

import time
from collections import defaultdict
from collections.abc import AsyncIterator, Awaitable, Callable, Mapping
from contextlib import asynccontextmanager
from dataclasses import dataclass

from aiohttp import web

from simulator.status import AddRoutes, Faults, OrderBook, build_status_app

clock = time.perf_counter
Stamps = defaultdict[str, list[float]]


def rate_of(stamps: list[float]) -> float | None:
    """Events per second between the first and the last of ``stamps`` (sorted)."""
    if len(stamps) < 2 or stamps[-1] <= stamps[0]:
        return None
    return (len(stamps) - 1) / (stamps[-1] - stamps[0])


def max_in_window(stamps: list[float], width: float = 1.0) -> int:
    """The most of ``stamps`` (sorted) inside any half-open window ``[t, t + width)``."""
    best, first = 0, 0
    for last, t in enumerate(stamps):
        while t - stamps[first] >= width:
            first += 1
        best = max(best, last - first + 1)
    return best


@dataclass(slots=True)
class Simulator:
    url: str
    app: web.Application
    stamps: Stamps  # account → arrival times of its requests


@asynccontextmanager
async def simulator(
    book: OrderBook, latency: float, providers: Mapping[str, AddRoutes]
) -> AsyncIterator[Simulator]:
    """The status-API simulator of ``providers`` on loopback, with a fixed latency."""
    app = build_status_app(book, Faults(latency_seconds=latency), providers)
    stamps: Stamps = defaultdict(list)

    @web.middleware
    async def arrival(
        request: web.Request, handler: Callable[[web.Request], Awaitable[web.StreamResponse]]
    ) -> web.StreamResponse:
        parts = request.path.strip("/").split("/")
        if len(parts) >= 2:
            stamps[parts[1]].append(clock())
        return await handler(request)

    # Outermost, so the time is the arrival, before the simulated latency.
    app.middlewares.insert(0, arrival)
    runner = web.AppRunner(app, access_log=None)
    await runner.setup()
    try:
        site = web.TCPSite(runner, "127.0.0.1", 0)
        await site.start()
        port = runner.addresses[0][1]
        yield Simulator(url=f"http://127.0.0.1:{port}", app=app, stamps=stamps)
    finally:
        await runner.cleanup()
