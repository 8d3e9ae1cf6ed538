"""Every process of the benchmark runs on the event loop paysync runs on by default
(``event_loop`` in paysync/settings.py, uvloop): the baselines, the load generator and
paysync then share one runtime, so a ratio measures what paysync does on top of the
same work, not a difference of loops."""

from __future__ import annotations

from collections.abc import Coroutine
from typing import Any, TypeVar

from paysync.runtime import run
from paysync.settings import Settings

T = TypeVar("T")

EVENT_LOOP = Settings.model_fields["event_loop"].default


def same_loop(main: Coroutine[Any, Any, T]) -> T:
    """Run ``main`` as paysync's roles run (``paysync.runtime.run``)."""
    return run(main, EVENT_LOOP)
