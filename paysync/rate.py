"""A rate limiter that spaces starts (no bursts): the reconciler's calls to a provider's
status API, and event replays."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable

# A spacing margin (a share of the interval): arrival jitter on the provider's side must
# never make two requests look closer than the rate allows, at a small cost in throughput.
_MARGIN = 0.02


class RateLimiter:
    """Spaces request starts at least ``1 / rate`` seconds apart (no bursts)."""

    def __init__(
        self,
        rate_per_second: float,
        clock: Callable[[], float] = time.monotonic,
        sleep: Callable[[float], Awaitable[None]] = asyncio.sleep,
    ) -> None:
        self._interval = (1.0 + _MARGIN) / rate_per_second
        self._clock = clock
        self._sleep = sleep
        self._next = 0.0
        self._lock = asyncio.Lock()

    def reserve(self) -> float:
        """Claim the next start time; returns how long to wait for it."""
        now = self._clock()
        start = max(now, self._next)
        self._next = start + self._interval
        return start - now

    async def wait(self) -> None:
        async with self._lock:
            delay = self.reserve()
            if delay > 0:
                await self._sleep(delay)
            # Spaced from when this start really happened, not from when it was due: a start
            # that a busy event loop delayed must not bunch up with the next one.
            self._next = max(self._next, self._clock() + self._interval)
