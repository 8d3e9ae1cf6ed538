"""worker.batch.Batcher: a batch is cut at its size or after its linger, each submitter
returns once its batch has run, and a batch runs in a context of its own."""

from __future__ import annotations

import asyncio

import structlog

from worker.batch import Batcher


async def test_a_full_batch_runs_at_once_and_a_short_one_after_its_linger() -> None:
    runs: list[list[int]] = []

    async def run(items: list[int]) -> None:
        runs.append(items)

    batcher = Batcher(3, 0.01, run)
    await asyncio.gather(*(batcher.submit(n) for n in range(4)))
    assert runs == [[0, 1, 2], [3]]


async def test_a_batch_does_not_log_as_the_delivery_that_cut_it() -> None:
    """The batch's task used to inherit the context of the submitter that filled it, so
    what the store logged for the whole batch carried that one delivery's message id."""
    seen: list[dict[str, object]] = []

    async def run(items: list[str]) -> None:
        seen.append(structlog.contextvars.get_contextvars())

    batcher = Batcher(2, 1.0, run)

    async def submit(message_id: str) -> None:
        with structlog.contextvars.bound_contextvars(message_id=message_id):
            await batcher.submit(message_id)

    await asyncio.gather(submit("m-1"), submit("m-2"))
    assert seen == [{}]


async def test_a_failed_batch_fails_each_of_its_submitters() -> None:
    async def run(items: list[int]) -> None:
        raise RuntimeError("boom")

    batcher = Batcher(2, 1.0, run)
    results = await asyncio.gather(batcher.submit(1), batcher.submit(2), return_exceptions=True)
    assert [type(r) for r in results] == [RuntimeError, RuntimeError]
