"""Retry decisions as values: how long to wait before attempt ``n`` (full jitter, capped).

The mechanism (looping, waiting on a stop event) lives with each caller; this only decides.
"""

from __future__ import annotations

import random
from dataclasses import dataclass


@dataclass(frozen=True, slots=True, kw_only=True)
class Backoff:
    initial: float
    maximum: float
    multiplier: float = 2.0

    def ceiling(self, attempt: int) -> float:
        """Upper bound of the wait before retry ``attempt`` (1-based)."""
        ceiling = self.initial
        for _ in range(max(0, attempt - 1)):
            if ceiling >= self.maximum:
                break  # capped: no need to grow (or overflow) any further
            ceiling *= self.multiplier
        return min(self.maximum, ceiling)

    def delay(self, attempt: int, rng: random.Random | None = None) -> float:
        """A wait drawn uniformly from [ceiling/2, ceiling]: spread out, never zero."""
        top = self.ceiling(attempt)
        return (rng or random).uniform(top / 2, top)
