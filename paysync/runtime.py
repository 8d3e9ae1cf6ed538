"""The event loop paysync runs on: uvloop's by default (``event_loop = "uvloop"``), the
standard library's with ``event_loop = "asyncio"``. uvloop implements the loop, its
timers and its socket transports in C (libuv); the worker and ingest spend much of their
time there (one socket write per AMQP frame and per Postgres message), so it takes a
large share of their CPU off (bench/README.md). Nothing in paysync depends on which
loop runs it."""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Coroutine
from typing import Any, Literal, TypeVar

import uvloop

T = TypeVar("T")

EventLoop = Literal["uvloop", "asyncio"]


def loop_factory(event_loop: EventLoop) -> Callable[[], asyncio.AbstractEventLoop]:
    return uvloop.new_event_loop if event_loop == "uvloop" else asyncio.new_event_loop


def run(main: Coroutine[Any, Any, T], event_loop: EventLoop = "uvloop") -> T:
    """``asyncio.run(main)`` on the chosen loop."""
    with asyncio.Runner(loop_factory=loop_factory(event_loop)) as runner:
        return runner.run(main)
