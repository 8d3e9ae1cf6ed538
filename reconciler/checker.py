"""Checks payments against their providers' status APIs and publishes what was seen.

For each payment: ask the provider (batched where the API allows, within each account's
rate and concurrency limits), turn the answer into observations (source ``reconciler``,
with the callback parser's dedup keys), add a ``clock`` observation when the payment's
deadline has passed and the provider does not show it settled, and publish them as one
``observations`` envelope to ``paysync.inbound``: the worker decides, as for callbacks.
Then schedule the next check on the ladder. A dry run publishes and schedules nothing.

Each check ends as ``in_sync`` (the provider agrees with us), ``drift`` (it says something
else: usually a callback we missed), ``not_found`` or ``failed`` (the provider could not
be asked; the payment is checked again when its lease ends).
"""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime

import aiohttp
import asyncpg

from paysync.broker import Broker, publish_envelope
from paysync.db import translated_errors
from paysync.errors import (
    BrokerUnavailable,
    ConfigError,
    DatabaseUnavailable,
    ProviderRefused,
    ProviderUnavailable,
)
from paysync.logging import get_logger
from paysync.metrics import Metrics
from paysync.settings import Settings
from paysync.state.fold import fold
from providers.base import PaymentRef, Poll, StatusClient
from providers.http_call import AccountHttp
from providers.registry import Provider
from reconciler.schedule import SETTLED, Ladder, deadline_passed
from schemas.envelope import Envelope, EnvelopeKind
from schemas.observation import Kind, Observation, Source, dump_observations
from schemas.status import Status

log = get_logger(__name__)

# A payment whose next check is left as it is.
_UNCHANGED = object()

# Chunks (one status call each) in flight across all accounts; each account's own
# concurrency and rate limits still apply underneath.
_CHUNKS_IN_FLIGHT = 64


@dataclass(frozen=True, slots=True, kw_only=True)
class Due:
    """A payment to check, as paysync knows it."""

    id: int
    provider: str
    account: str
    merchant_ref: str
    provider_ref: str | None
    status: Status | None
    created_at: datetime
    expires_at: datetime | None
    attempts: int

    @classmethod
    def from_row(cls, row: asyncpg.Record) -> Due:
        return cls(
            id=row["id"],
            provider=row["provider"],
            account=row["account"],
            merchant_ref=row["merchant_ref"],
            provider_ref=row["provider_ref"],
            status=Status(row["status"]) if row["status"] else None,
            created_at=row["created_at"],
            expires_at=row["expires_at"],
            attempts=row["check_attempts"],
        )


@dataclass(frozen=True, slots=True, kw_only=True)
class Check:
    payment: Due
    outcome: str  # in_sync | drift | not_found | failed
    provider_status: str | None = None
    # The provider's answer folded on its own, in canonical terms.
    their_status: Status | None = None
    # repair | provider_behind | clock | none | retry
    action: str = "none"
    error: str | None = None


class Checker:
    def __init__(
        self,
        settings: Settings,
        registry: Mapping[str, Provider],
        pool: asyncpg.Pool,
        broker: Broker | None,
        metrics: Metrics,
        session: aiohttp.ClientSession,
        queries: Mapping[str, str],
        clock: Callable[[], datetime] = lambda: datetime.now(UTC),
    ) -> None:
        self._settings = settings
        self._registry = registry
        self._pool = pool
        self._broker = broker
        self._metrics = metrics
        self._session = session
        self._q = queries
        self._clock = clock
        self._ladder = Ladder(
            steps=tuple(settings.reconciler.ladder_seconds),
            give_up_after=settings.reconciler.give_up_after_seconds,
        )
        self._clients: dict[tuple[str, str], tuple[StatusClient, AccountHttp]] = {}

    async def check(
        self,
        payments: Sequence[Due],
        *,
        dry_run: bool = False,
        on_checked: Callable[[Check], None] = lambda _check: None,
    ) -> list[Check]:
        """Check every payment; the results in the order given."""
        chunks = self._chunks(payments)
        slots = asyncio.Semaphore(_CHUNKS_IN_FLIGHT)

        async def run(chunk: list[Due]) -> list[Check]:
            async with slots:
                checks = await self._check_chunk(chunk, dry_run=dry_run)
            for check in checks:
                self._metrics.reconcile_checks.labels(check.payment.provider, check.outcome).inc()
                on_checked(check)
            return checks

        results = await asyncio.gather(*(run(chunk) for chunk in chunks))
        by_id = {c.payment.id: c for checks in results for c in checks}
        return [by_id[p.id] for p in payments]

    def _chunks(self, payments: Sequence[Due]) -> list[list[Due]]:
        groups: dict[tuple[str, str], list[Due]] = {}
        for payment in payments:
            groups.setdefault((payment.provider, payment.account), []).append(payment)
        chunks = []
        for (provider, _account), group in groups.items():
            adapter = self._registry.get(provider)
            size = 1
            if adapter is not None and adapter.status_base_url is not None:
                try:
                    size = self._client(group[0])[0].batch_size
                except ConfigError:
                    size = 1
            chunks += [group[i : i + size] for i in range(0, len(group), size)]
        return chunks

    def _client(self, payment: Due) -> tuple[StatusClient, AccountHttp]:
        key = (payment.provider, payment.account)
        if key not in self._clients:
            adapter = self._registry.get(payment.provider)
            account = self._settings.account(payment.provider, payment.account)
            default_url = None if adapter is None else adapter.status_base_url
            if adapter is None or default_url is None or account is None:
                raise ConfigError([f"accounts.{key[0]}.{key[1]}: no status API to ask"])
            base_url = account.status_api.base_url or default_url
            client = adapter.status_client(payment.account, account, base_url.rstrip("/"))
            assert client is not None  # it has a status API (default_url)
            http = AccountHttp(
                self._session, payment.provider, payment.account, account.status_api, self._metrics
            )
            self._clients[key] = (client, http)
        return self._clients[key]

    async def _check_chunk(self, chunk: list[Due], *, dry_run: bool) -> list[Check]:
        now = self._clock()
        try:
            client, http = self._client(chunk[0])
            refs = [
                PaymentRef(merchant_ref=p.merchant_ref, provider_ref=p.provider_ref) for p in chunk
            ]
            polls = await client.poll(http, refs, now)
        except (ProviderUnavailable, ProviderRefused, ConfigError) as exc:
            error = f"{type(exc).__name__}: {exc}"
            log.warning("reconcile_check_failed", provider=chunk[0].provider, error=error)
            return [Check(payment=p, outcome="failed", action="retry", error=error) for p in chunk]
        checks, schedule = [], []
        for payment, poll in zip(chunk, polls, strict=True):
            check, next_at = await self._settle(payment, poll, now, dry_run=dry_run)
            checks.append(check)
            if next_at is not _UNCHANGED:
                schedule.append((payment.id, next_at))
        if schedule:
            await self._reschedule(schedule)
        return checks

    async def _reschedule(self, schedule: list[tuple[int, object]]) -> None:
        """One round trip for the chunk's next checks. Should Postgres be unavailable, the
        payments stay claimed until their lease ends and are checked again then."""
        try:
            async with translated_errors(), self._pool.acquire() as conn:
                await conn.executemany(self._q["set_next_check"], schedule)
        except DatabaseUnavailable as exc:
            log.warning("reconcile_reschedule_failed", error=str(exc), payments=len(schedule))

    async def _settle(
        self, payment: Due, poll: Poll, now: datetime, *, dry_run: bool
    ) -> tuple[Check, object]:
        """The check, and the payment's next check (``_UNCHANGED`` when nothing was
        published: a dry run, or a failed publish that the lease retries)."""
        observations = list(poll.observations)
        theirs = fold(observations).status if observations else None
        clock = poll.asked and deadline_passed(payment.expires_at, now) and theirs not in SETTLED
        if clock and payment.status not in SETTLED:
            observations.append(_clock(payment, now))
        check = _judge(payment, poll, theirs, clock=clock)
        if dry_run:
            return check, _UNCHANGED
        try:
            if observations:
                await self._publish(payment, observations, now)
        except BrokerUnavailable as exc:
            failed = Check(payment=payment, outcome="failed", action="retry", error=str(exc))
            return failed, _UNCHANGED
        status = max((s for s in (payment.status, theirs) if s), key=lambda s: s.rank, default=None)
        next_at = self._ladder.next_check(
            status=status,
            attempts=payment.attempts,
            created_at=payment.created_at,
            expires_at=payment.expires_at,
            now=now,
        )
        return check, next_at

    async def _publish(self, payment: Due, observations: list[Observation], now: datetime) -> None:
        assert self._broker is not None
        envelope = Envelope(
            message_id=str(uuid.uuid4()),
            kind=EnvelopeKind.OBSERVATIONS,
            provider=payment.provider,
            account=payment.account,
            received_at=now,
            body=dump_observations(observations),
            content_type="application/json",
            verified_by="reconciler",
        )
        timeout = self._settings.worker.publish_timeout_seconds
        await publish_envelope(self._broker, envelope, timeout)


def _clock(payment: Due, now: datetime) -> Observation:
    """The reconciler's statement that the valid period is over (design §5)."""
    return Observation(
        kind=Kind.CLOCK,
        source=Source.CLOCK,
        provider=payment.provider,
        account=payment.account,
        merchant_ref=payment.merchant_ref,
        dedup_key=f"{payment.provider}:{payment.account}:{payment.merchant_ref}:clock",
        observed_at=now,
    )


def _judge(payment: Due, poll: Poll, theirs: Status | None, *, clock: bool) -> Check:
    ours = payment.status
    if not poll.found:
        outcome, action = "not_found", "clock" if clock else "none"
    elif theirs is None or theirs == ours:
        outcome, action = "in_sync", "clock" if clock else "none"
    elif ours is None or theirs.rank > ours.rank:
        outcome, action = "drift", "repair"
    else:
        outcome, action = "drift", "provider_behind"
    return Check(
        payment=payment,
        outcome=outcome,
        action=action,
        provider_status=poll.provider_status,
        their_status=theirs,
    )
