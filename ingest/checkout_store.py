"""The ``checkouts`` table as ``POST /v1/checkouts`` uses it: claim a key, record what the
provider answered, forget a checkout the provider certainly did not make.

A claim is taken with one ``INSERT … ON CONFLICT DO NOTHING``: the first request under a
key (and under a merchant_ref) wins; every other one reads what the first left.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, replace
from datetime import datetime
from typing import Literal

import asyncpg

from ingest.checkout_request import CheckoutRequest
from paysync.db import translated_errors
from providers.base import CreatedCheckout

# new: ours to create; created: the provider made it (replay it); unknown: the provider's
# answer was lost; busy: another request is creating it now; conflict: the key was used
# with another body; taken: the merchant_ref has a checkout under another key.
Outcome = Literal["new", "created", "unknown", "busy", "conflict", "taken"]


@dataclass(frozen=True, slots=True, kw_only=True)
class Claim:
    outcome: Outcome
    id: int = 0
    provider_ref: str | None = None
    redirect_url: str | None = None
    expires_at: datetime | None = None
    provider_status: str | None = None
    registered: bool = False


class CheckoutStore:
    def __init__(self, pool: asyncpg.Pool, queries: Mapping[str, str]) -> None:
        self._pool = pool
        self._q = queries

    async def claim(self, key: str, req: CheckoutRequest, *, stale_after: float) -> Claim:
        digest = req.digest()
        async with translated_errors(), self._pool.acquire() as conn:
            new_id = await conn.fetchval(
                self._q["claim_checkout"], key, digest, req.provider, req.account, req.merchant_ref
            )
            if new_id is not None:
                return Claim(outcome="new", id=new_id)
            row = await conn.fetchrow(self._q["checkout_by_key"], key, stale_after)
        if row is None:
            return Claim(outcome="taken")
        if row["request_hash"] != digest:
            return Claim(outcome="conflict")
        state = row["state"]
        outcome: Outcome = "created" if state == "created" else "unknown"
        if state == "creating":
            # A claim older than any create could take was lost with its process.
            outcome = "unknown" if row["stale"] else "busy"
        return Claim(
            outcome=outcome,
            id=row["id"],
            provider_ref=row["provider_ref"],
            redirect_url=row["redirect_url"],
            expires_at=row["expires_at"],
            provider_status=row["provider_status"],
            registered=row["registered"],
        )

    async def reclaim(self, claim: Claim, stale_after: float) -> bool:
        """Take an unknown checkout back to ask the provider again (one request wins)."""
        async with translated_errors(), self._pool.acquire() as conn:
            return (
                await conn.fetchval(self._q["reclaim_checkout"], claim.id, stale_after) is not None
            )

    async def created(self, claim: Claim, created: CreatedCheckout) -> Claim:
        async with translated_errors(), self._pool.acquire() as conn:
            await conn.execute(
                self._q["checkout_created"],
                claim.id,
                created.provider_ref,
                created.redirect_url,
                created.expires_at,
                created.provider_status,
            )
        return replace(
            claim,
            outcome="created",
            provider_ref=created.provider_ref,
            redirect_url=created.redirect_url,
            expires_at=created.expires_at,
            provider_status=created.provider_status,
        )

    async def unknown(self, claim: Claim, error: str) -> None:
        await self._execute("checkout_unknown", claim.id, error[:500])

    async def registered(self, claim: Claim) -> None:
        await self._execute("checkout_registered", claim.id)

    async def forget(self, claim: Claim) -> None:
        """No provider order exists: the key and the merchant_ref are free again."""
        await self._execute("forget_checkout", claim.id)

    async def _execute(self, name: str, *args: object) -> None:
        async with translated_errors(), self._pool.acquire() as conn:
            await conn.execute(self._q[name], *args)
