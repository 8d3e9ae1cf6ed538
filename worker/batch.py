"""Gathers deliveries into batches: a batch is cut when it holds ``size`` deliveries or
``linger`` seconds after its first one arrived, and is then run as a whole. Each
submitter waits until its batch has run, so a caller that counts deliveries in hand (the
consumer's drain) sees a delivery finished only once it is settled."""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Coroutine
from contextvars import Context
from typing import Any, Generic, TypeVar

T = TypeVar("T")


class Batcher(Generic[T]):
    def __init__(
        self, size: int, linger: float, run: Callable[[list[T]], Coroutine[Any, Any, None]]
    ) -> None:
        self._size = size
        self._linger = linger
        self._run = run
        self._items: list[T] = []
        self._done: asyncio.Future[None] | None = None
        self._timer: asyncio.TimerHandle | None = None
        self._running: set[asyncio.Task[None]] = set()

    async def submit(self, item: T) -> None:
        """Add ``item`` to the open batch; return once that batch has run."""
        loop = asyncio.get_running_loop()
        if self._done is None:
            self._done = loop.create_future()
            self._timer = loop.call_later(self._linger, self._cut)
        done = self._done
        self._items.append(item)
        if len(self._items) >= self._size:
            self._cut()
        # Shielded: a submitter cancelled while waiting must not cancel its batch-mates.
        await asyncio.shield(done)

    def _cut(self) -> None:
        items, done = self._items, self._done
        if self._timer is not None:
            self._timer.cancel()
        self._items, self._done, self._timer = [], None, None
        if done is None:
            return
        # A context of its own: the batch is not the delivery that happened to cut it (its
        # log lines would carry that one's message id); each delivery's own part binds its.
        task: asyncio.Task[None] = asyncio.get_running_loop().create_task(
            self._run(items), context=Context()
        )
        self._running.add(task)
        task.add_done_callback(lambda t: self._finished(t, done))

    def _finished(self, task: asyncio.Task[None], done: asyncio.Future[None]) -> None:
        self._running.discard(task)
        if done.done():
            return
        if task.cancelled():
            done.cancel()
        elif (error := task.exception()) is not None:
            done.set_exception(error)
        else:
            done.set_result(None)
