"""Reads a payment's timeline from Postgres: the row, its receipts, its transitions and its
events, in one read-only snapshot, shaped by ``paysync.timeline.document``. Used by the
``/v1`` API and by ``paysync payment show``."""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any

import asyncpg

from paysync.db import load_queries, translated_errors
from paysync.timeline.document import build_timeline

QUERIES_PATH = Path(__file__).with_name("queries.sql")


class Timelines:
    def __init__(self, pool: asyncpg.Pool, queries: Mapping[str, str] | None = None) -> None:
        self._pool = pool
        self._q = queries or load_queries(QUERIES_PATH)

    async def read(self, provider: str, account: str, merchant_ref: str) -> dict[str, Any] | None:
        """The payment's timeline document, or None when there is no such payment.

        One repeatable-read snapshot, so the state and the timeline agree with each other.
        Raises ``DatabaseUnavailable`` when Postgres cannot answer.
        """
        async with (
            translated_errors(),
            self._pool.acquire() as conn,
            conn.transaction(isolation="repeatable_read", readonly=True),
        ):
            payment = await conn.fetchrow(
                self._q["payment_by_ref"], provider, account, merchant_ref
            )
            if payment is None:
                return None
            payment_id = payment["id"]
            observations = await conn.fetch(self._q["payment_observations"], payment_id)
            transitions = await conn.fetch(self._q["payment_transitions"], payment_id)
            events = await conn.fetch(self._q["payment_events"], payment_id)
        return build_timeline(
            dict(payment),
            [dict(r) for r in observations],
            [dict(r) for r in transitions],
            [dict(r) for r in events],
        )
