"""A hostile-input battery against ingest, with real RabbitMQ and Postgres (issue 6).

Hundreds of requests no provider would send — forged, truncated and duplicated credentials,
stale and future timestamps, replays, huge, slow, nested and non-UTF-8 bodies, wrong media
types, hostile paths and broken HTTP framing — each sent as raw bytes and each required to
get its documented refusal (``tests/support/hostile.py`` holds the table). None may be
answered 2xx or 5xx, hang, publish a message or change a row — except copies of the one
genuine delivery, which get the provider's ack and publish nothing. No worker runs, so
anything ingest accepted would still be on the inbound queue, where the test counts it.
"""

from __future__ import annotations

import asyncio
import time
from collections import Counter
from dataclasses import dataclass

import asyncpg
import pytest
from yarl import URL

from paysync.metrics import Metrics
from paysync.settings import ProviderAccount, Settings
from tests.support.amqp import depth, take
from tests.support.config import ACCOUNT, RunConfig
from tests.support.hostile import (
    ACKED,
    UNVERIFIED,
    Answer,
    Battery,
    Case,
    callback_path,
    exchange,
    providers,
    return_cases,
)
from tests.support.ingest import post, serving
from tests.support.metrics import count, sample
from tests.support.services import BrokerNames

pytestmark = pytest.mark.integration

BODY_TIMEOUT = 0.5
TRICKLE_INTERVAL = 0.2  # per byte: no body of more than 3 bytes arrives within BODY_TIMEOUT
CASE_TIMEOUT = 5.0
CONCURRENCY = 32
MIN_PER_PROVIDER = 50
MIN_TOTAL = 200
STATE = """
SELECT (SELECT count(*) FROM payments) AS payments, (SELECT count(*) FROM inbox) AS inbox,
       (SELECT count(*) FROM transitions) AS transitions, (SELECT count(*) FROM outbox) AS outbox
"""


@dataclass(frozen=True, slots=True)
class Outcome:
    case: Case
    answer: Answer

    @property
    def mismatch(self) -> str | None:
        """Why the answer is not the one the case expects; None when it is."""
        expect, answer = self.case.expect, self.answer
        if expect == ACKED:
            ok = answer.status == 200
        elif expect.status is None:
            ok = 400 <= answer.status < 500
        elif self.case.route == "return" and expect.status == 303:
            ok = answer.status == 303 and answer.location == UNVERIFIED
        else:
            ok = (answer.status, answer.reason) == (expect.status, expect.reason)
        return None if ok else f"expected {expect}, got {answer}"


def _impatient(settings: Settings) -> Settings:
    ingest = settings.ingest.model_copy(update={"body_timeout_seconds": BODY_TIMEOUT})
    return settings.model_copy(update={"ingest": ingest})


async def _run(port: int, cases: list[Case]) -> list[Outcome]:
    gate = asyncio.Semaphore(CONCURRENCY)

    async def one(case: Case) -> Outcome:
        async with gate:
            answer = await exchange(port, case, timeout=CASE_TIMEOUT, interval=TRICKLE_INTERVAL)
            return Outcome(case, answer)

    return list(await asyncio.gather(*(one(case) for case in cases)))


@dataclass(frozen=True, slots=True, kw_only=True)
class Summary:
    cases: int
    callback_cases: int
    return_url_cases: int
    per_provider: dict[str, int]
    accepted: int
    # Copies of the genuine delivery answered with the ack (nothing published).
    acknowledged_copies: int
    server_errors: int
    no_answer_or_hang: int
    mismatches: int
    state: dict[str, int]

    @classmethod
    def of(cls, outcomes: list[Outcome], state: dict[str, int]) -> Summary:
        callbacks = [o for o in outcomes if o.case.route == "webhooks"]
        copies = [o for o in outcomes if o.case.expect == ACKED]
        statuses = [o.answer.status for o in outcomes if o.case.expect != ACKED]
        return cls(
            cases=len(outcomes),
            callback_cases=len(callbacks),
            return_url_cases=len(outcomes) - len(callbacks),
            per_provider=dict(sorted(Counter(o.case.provider for o in callbacks).items())),
            accepted=sum(200 <= s < 300 for s in statuses),
            acknowledged_copies=sum(o.answer.status == 200 for o in copies),
            server_errors=sum(s >= 500 for s in statuses),
            no_answer_or_hang=sum(s <= 0 for s in statuses),
            mismatches=sum(o.mismatch is not None for o in outcomes),
            state=state,
        )

    @property
    def state_changes(self) -> int:
        return sum(self.state.values())

    def report(self, outcomes: list[Outcome]) -> str:
        """The summary, every mismatch, and what aiohttp answered where any 4xx would do."""
        lines = [
            f"hostile battery: {self.cases} cases ({self.callback_cases} callbacks, "
            f"{self.return_url_cases} return URLs); per provider {self.per_provider}",
            f"  accepted {self.accepted}, copies acknowledged {self.acknowledged_copies}, "
            f"5xx {self.server_errors}, "
            f"no answer/hang {self.no_answer_or_hang}, mismatches {self.mismatches}, "
            f"state changes {self.state_changes} {self.state}",
        ]
        lines += [
            f"  MISMATCH {o.case.provider}/{o.case.name}: {o.mismatch}"
            for o in outcomes
            if o.mismatch
        ]
        protocol = Counter(
            (o.answer.status, o.answer.reason or o.answer.detail)
            for o in outcomes
            if o.case.expect.status is None
        )
        lines.append("  refused by aiohttp or as it saw fit (any 4xx accepted):")
        lines += [f"    {n:3d} x {status} {why}" for (status, why), n in protocol.most_common()]
        return "\n".join(lines)


async def test_hostile_requests_are_refused_with_their_reason_and_change_nothing(
    config: RunConfig, names: BrokerNames, db: asyncpg.Connection
) -> None:
    settings, metrics, now = _impatient(config.settings), Metrics(), int(time.time())
    accounts: dict[str, ProviderAccount] = {}
    for provider in providers():
        account = settings.account(provider, ACCOUNT)
        assert account is not None
        accounts[provider] = account
    max_body = settings.ingest.max_body_bytes
    batteries = {p: Battery(p, accounts, now=now, max_body=max_body) for p in providers()}
    cases = [case for battery in batteries.values() for case in battery.cases]
    cases += [
        c for p in ("hdfc", "plural") for c in return_cases(p, accounts[p], max_body=max_body)
    ]
    named = Counter((case.provider, case.name) for case in cases)
    assert [key for key, n in named.items() if n > 1] == []
    primer = batteries["plural"].primer
    assert primer is not None

    started = time.monotonic()
    async with serving(settings, metrics=metrics) as (url, broker):
        await broker.wait_connected(10)
        # The one genuine delivery, so that copies of it can be replayed (the ack).
        status, _, _ = await post(f"{url}{callback_path('plural')}", *primer)
        assert status == 200
        port = URL(url).port
        assert port is not None
        outcomes = await _run(port, cases)
    elapsed = time.monotonic() - started

    [primed] = await take(names.topology.inbound_queue, 1)
    row = await db.fetchrow(STATE)
    assert row is not None
    state = {
        "inbound_queue": await depth(names.topology.inbound_queue),
        "dead_letter_queue": await depth(names.topology.dead_queue),
        **{table: int(count) for table, count in row.items()},
    }
    summary = Summary.of(outcomes, state)
    report = summary.report(outcomes)
    print(report, f"\n  elapsed {elapsed:.1f}s")

    assert primed.body == primer[0]
    assert sorted(summary.per_provider) == providers(), report
    assert min(summary.per_provider.values()) >= MIN_PER_PROVIDER, report
    assert summary.callback_cases >= MIN_TOTAL, report
    clean = (summary.accepted, summary.server_errors, summary.no_answer_or_hang)
    assert clean == (0, 0, 0), report
    assert summary.state_changes == 0, report
    rendered = metrics.render().decode()
    # The primer only.
    assert sample(rendered, "paysync_callbacks_total", outcome="accepted") == 1, report
    copies = sum(case.expect == ACKED for case in cases)
    assert copies == summary.acknowledged_copies == 5, report
    assert sample(rendered, "paysync_callbacks_total", outcome="duplicate") == copies, report
    # Declared, never counted as accepted (count() raises for a metric that is not there).
    assert count(rendered, "paysync_returns_total", outcome="accepted") == 0, report
    assert summary.mismatches == 0, report
