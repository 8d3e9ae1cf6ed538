"""Recognises a second copy of a signed delivery id (Plural's ``webhook-id``) within a window.

A copy gets the provider's normal ack and is not published again: Plural retries a
delivery within seconds and asks for 2xx on duplicates, and a captured request replayed
at this ingest while its signed timestamp is still fresh gains nothing either. The window
is per process and in memory; a copy that reaches another replica is harmless too: the
worker's inbox absorbs it as a duplicate. Ids are remembered only after the broker
confirmed the first copy, so a provider retrying after our ``503`` is published then.
"""

from __future__ import annotations

import time
from collections import OrderedDict
from collections.abc import Callable


class ReplayGuard:
    def __init__(
        self,
        window_seconds: float,
        max_entries: int,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._window = window_seconds
        self._max = max_entries
        self._clock = clock
        # key → expiry; insertion order is expiry order because the window is constant.
        self._seen: OrderedDict[str, float] = OrderedDict()

    def seen(self, key: str) -> bool:
        expiry = self._seen.get(key)
        return expiry is not None and expiry > self._clock()

    def remember(self, key: str) -> None:
        now = self._clock()
        self._seen.pop(key, None)
        self._seen[key] = now + self._window
        while self._seen:
            oldest_key, expiry = next(iter(self._seen.items()))
            if expiry > now and len(self._seen) <= self._max:
                break
            del self._seen[oldest_key]

    def __len__(self) -> int:
        return len(self._seen)
