"""How a benchmark child process ends: on SIGTERM/SIGINT, or once its parent has gone."""

from __future__ import annotations

import asyncio
import contextlib
import os
import signal


async def wait_for_stop() -> None:
    """Return on SIGTERM/SIGINT or once the parent process has gone."""
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    watcher = asyncio.create_task(watch_parent(stop, os.getppid()))
    try:
        await stop.wait()
    finally:
        watcher.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await watcher


async def watch_parent(stop: asyncio.Event, parent: int) -> None:
    # Polling: a parent's death raises no event a child can await portably.
    while os.getppid() == parent:  # noqa: ASYNC110
        await asyncio.sleep(1.0)
    stop.set()
