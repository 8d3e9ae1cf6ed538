"""Delivers callbacks the way real providers do on a bad day: some never, some twice, and
in any order. Seeded, so a failing run can be replayed."""

from __future__ import annotations

import random
from dataclasses import dataclass

from simulator.base import Lifecycle, Request


@dataclass(frozen=True, slots=True, kw_only=True)
class Chaos:
    drop: float = 0.3
    duplicate: float = 0.2
    seed: int = 0


def deliveries(lifecycles: list[tuple[str, Lifecycle]], chaos: Chaos) -> list[tuple[str, Request]]:
    """Every callback of every lifecycle, after dropping ``drop`` of them, sending
    ``duplicate`` of the rest twice, and shuffling the whole lot."""
    rng = random.Random(chaos.seed)
    sent: list[tuple[str, Request]] = []
    for provider, life in lifecycles:
        for callback in life.callbacks:
            if rng.random() < chaos.drop:
                continue
            copies = 2 if rng.random() < chaos.duplicate else 1
            sent += [(provider, callback)] * copies
    rng.shuffle(sent)
    return sent
