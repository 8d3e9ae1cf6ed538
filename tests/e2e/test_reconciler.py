"""The reconciler end to end, with real paysync processes, RabbitMQ, Postgres and the
simulated status APIs of all four providers (in this process, on loopback)."""

from __future__ import annotations

import asyncio
from collections import defaultdict
from pathlib import Path
from typing import Any

import aiohttp
import asyncpg
import orjson
import pytest

from simulator.base import Lifecycle
from simulator.chaos import Chaos, deliveries
from simulator.sender import send_request
from simulator.status import Faults, OrderBook, max_per_second
from tests.support.amqp import depth, take
from tests.support.config import ACCOUNT, TOKEN_ENV, RunConfig
from tests.support.process import run_command, running
from tests.support.scenario import (
    PROVIDERS,
    RATE,
    make_orders,
    reconcile,
    register,
    register_and_apply,
    scenario_config,
    status_simulator,
    statuses,
)
from tests.support.services import BrokerNames
from tests.support.waiting import eventually

pytestmark = pytest.mark.e2e


async def _deliver(
    config: RunConfig, orders: list[tuple[str, Lifecycle]], chaos: Chaos
) -> dict[int, int]:
    slots = asyncio.Semaphore(16)
    answers: dict[int, int] = defaultdict(int)

    async def one(session: aiohttp.ClientSession, provider: str, request: Any) -> None:
        async with slots:
            answer = await send_request(session, config.url, provider, ACCOUNT, request)
        answers[answer.status] += 1

    async with aiohttp.ClientSession() as session:
        await asyncio.gather(*(one(session, p, r) for p, r in deliveries(orders, chaos)))
    return dict(answers)


async def test_chaos_every_payment_ends_as_the_providers_truth_with_ordered_events(
    tmp_path: Path, db_url: str, names: BrokerNames, db: asyncpg.Connection
) -> None:
    book = OrderBook()
    faults = Faults(rate_limited=0.05, unavailable=0.05, latency_seconds=0.002, seed=11)
    async with status_simulator(book, faults) as (sim_url, app):
        config = scenario_config(tmp_path, db_url, names, sim_url, book)
        orders = make_orders(config, book, 1000)
        truth = {life.merchant_ref: (life.statuses[-1], life.amount) for _, life in orders}
        events = await names.bind_events_queue()
        async with running(config, "ingest"), running(config, "worker", log_name="worker.log"):
            await register(config, orders)
            answers = await _deliver(config, orders, Chaos(drop=0.3, duplicate=0.2, seed=5))
            # A duplicate gets the ack (Plural's is recognised and not published again).
            assert set(answers) == {200}, answers

            async def drained() -> bool:
                return await depth(names.topology.inbound_queue) == 0 and len(
                    await statuses(db)
                ) == len(orders)

            await eventually(drained, timeout=60, what="every callback and registration applied")
            behind = sum(
                1 for ref, (status, _) in (await statuses(db)).items() if status != truth[ref][0]
            )
            assert behind > 0, "the chaos left nothing to repair"

            jobs = await asyncio.gather(*(reconcile(config, "--provider", p) for p in PROVIDERS))
            for code, report in jobs:
                assert code == 0, report["counts"]
                assert report["counts"]["failed"] == 0

            async def true() -> bool:
                found = await statuses(db)
                return all(
                    found[ref] == (status, amount) for ref, (status, amount) in truth.items()
                )

            await eventually(true, timeout=60, what="every payment equal to the provider's truth")

            async def relayed() -> bool:
                return not await db.fetchval(
                    "SELECT count(*) FROM outbox WHERE published_at IS NULL"
                )

            await eventually(relayed, timeout=30, what="every event relayed")
        for provider in PROVIDERS:
            assert max_per_second(app, provider, ACCOUNT) <= RATE, provider

    published = await db.fetchval("SELECT count(*) FROM outbox")
    messages = await take(events, published, timeout=30)
    seqs: dict[str, list[int]] = defaultdict(list)
    seen: set[str] = set()
    for message in messages:
        event = orjson.loads(message.body)
        if event["event_id"] in seen:
            continue  # at-least-once: a duplicate is recognisable by its event_id
        seen.add(event["event_id"])
        seqs[event["payment"]["merchant_ref"]].append(event["payment"]["seq"])
    assert set(seqs) == set(truth)
    for ref, got in seqs.items():
        assert got == list(range(1, len(got) + 1)), (ref, got)


async def test_a_registered_payment_never_called_back_is_found_and_repaired(
    tmp_path: Path, db_url: str, names: BrokerNames, db: asyncpg.Connection
) -> None:
    book = OrderBook()
    async with status_simulator(book, Faults()) as (sim_url, _app):
        config = scenario_config(tmp_path, db_url, names, sim_url, book)
        orders = make_orders(config, book, 4)
        async with running(config, "ingest"), running(config, "worker", log_name="worker.log"):
            await register_and_apply(config, orders, db)
            # Due now: the scheduled reconciler (not an operator) must find them.
            await db.execute("UPDATE payments SET next_check_at = now()")
            async with running(config, "reconciler", log_name="reconciler.log"):

                async def repaired() -> bool:
                    found = await statuses(db)
                    return all(
                        found[life.merchant_ref][0] == life.statuses[-1] for _, life in orders
                    )

                await eventually(repaired, timeout=30, what="the scheduled round repaired them")
    sources = await db.fetch("SELECT DISTINCT source FROM transitions")
    assert {r["source"] for r in sources} == {"reconciler"}


async def test_two_reconcilers_never_poll_one_payment_twice_in_a_round(
    tmp_path: Path, db_url: str, names: BrokerNames, db: asyncpg.Connection
) -> None:
    book = OrderBook()
    async with status_simulator(book, Faults(latency_seconds=0.01)) as (sim_url, _app):
        config = scenario_config(tmp_path, db_url, names, sim_url, book)
        orders = make_orders(config, book, 120)
        async with running(config, "ingest"), running(config, "worker", log_name="worker.log"):
            await register_and_apply(config, orders, db)
            await db.execute("UPDATE payments SET next_check_at = now()")
            async with (
                running(config, "reconciler", log_name="reconciler-1.log"),
                running(config, "reconciler", log_name="reconciler-2.log"),
            ):

                async def checked() -> bool:
                    due = await db.fetchval(
                        "SELECT count(*) FROM payments WHERE check_attempts = 0"
                    )
                    return bool(due == 0)

                await eventually(checked, timeout=60, what="every payment claimed")

                async def answered() -> bool:
                    return sum(book.polls.values()) >= len(orders)

                await eventually(answered, timeout=60, what="every payment polled")
    # CCPayment asks in batches, the others one by one: either way once per payment.
    assert max(book.polls.values()) == 1
    assert len(book.polls) == len(orders)
    runs = await db.fetchval("SELECT count(*) FROM reconcile_runs WHERE trigger = 'schedule'")
    assert runs >= 2


async def test_a_dry_run_reports_drift_and_changes_nothing(
    tmp_path: Path, db_url: str, names: BrokerNames, db: asyncpg.Connection
) -> None:
    book = OrderBook()
    async with status_simulator(book, Faults()) as (sim_url, _app):
        config = scenario_config(tmp_path, db_url, names, sim_url, book)
        orders = [o for o in make_orders(config, book, 8) if o[0] == "hdfc"]
        async with running(config, "ingest"), running(config, "worker", log_name="worker.log"):
            await register_and_apply(config, orders, db)
            before = await db.fetch("SELECT * FROM payments ORDER BY id")
            code, report = await reconcile(config, "--provider", "hdfc", "--dry-run")
            assert await depth(names.topology.inbound_queue) == 0
        after = await db.fetch("SELECT * FROM payments ORDER BY id")
    assert code == 0
    assert report["dry_run"] is True
    assert report["counts"]["drift"] == len(orders)
    assert {(c["our_status"], c["their_status"], c["action"]) for c in report["checks"]} == {
        (None, "paid", "repair")
    }
    assert [dict(r) for r in after] == [dict(r) for r in before]
    run = await db.fetchrow("SELECT trigger, dry_run, drift FROM reconcile_runs")
    assert run is not None
    assert dict(run) == {"trigger": "operator", "dry_run": True, "drift": len(orders)}


async def test_past_its_deadline_an_unpaid_payment_expires_and_the_table_says_why(
    tmp_path: Path, db_url: str, names: BrokerNames, db: asyncpg.Connection
) -> None:
    book = OrderBook()
    async with status_simulator(book, Faults()) as (sim_url, _app):
        config = scenario_config(tmp_path, db_url, names, sim_url, book)
        [(_, paid)] = [o for o in make_orders(config, book, 4) if o[0] == "hdfc"]
        headers = {"Authorization": f"Bearer {config.env[TOKEN_ENV]}"}
        # The customer never reached the provider: HDFC has no such order.
        unpaid = {
            "provider": "hdfc",
            "account": ACCOUNT,
            "merchant_ref": "hdfc-abandoned",
            "amount": "10.00",
            "currency": "INR",
            "expires_at": "2026-01-01T00:00:00Z",
        }
        async with running(config, "ingest"), running(config, "worker", log_name="worker.log"):
            await register(config, [("hdfc", paid)])
            async with (
                aiohttp.ClientSession() as session,
                session.post(f"{config.url}/v1/payments", json=unpaid, headers=headers) as r,
            ):
                assert r.status == 202

            async def registered() -> bool:
                return len(await statuses(db)) == 2

            await eventually(registered, what="the registrations applied")
            code, table = await run_command(config, "reconcile", "--provider", "hdfc")

            async def settled() -> bool:
                found = await statuses(db)
                return (
                    found["hdfc-abandoned"][0] == "expired"
                    and found[paid.merchant_ref][0] == "paid"
                )

            await eventually(settled, what="the unpaid payment expired, the paid one repaired")
    assert code == 0
    for text in (
        "our status",
        "provider's status",
        "hdfc/shop/hdfc-abandoned",
        "not_found",
        "clock",
    ):
        assert text in table, text
    assert "checked 2: 0 in sync, 1 drift, 1 not found, 0 failed" in table
    transition = await db.fetchrow(
        "SELECT t.source, t.to_status FROM transitions t JOIN payments p ON p.id = t.payment_id"
        " WHERE p.merchant_ref = 'hdfc-abandoned'"
    )
    assert transition is not None
    assert dict(transition) == {"source": "clock", "to_status": "expired"}


async def test_plural_reconcile_against_the_api_as_its_sdk_sees_it_fails_no_check(
    tmp_path: Path, db_url: str, names: BrokerNames, db: asyncpg.Connection
) -> None:
    # The simulated Plural API answers as the official SDK models it (token with
    # expires_at; Request-ID and Request-Timestamp optional): tests/unit/test_plural_sdk.py.
    book = OrderBook()
    async with status_simulator(book, Faults()) as (sim_url, _app):
        config = scenario_config(tmp_path, db_url, names, sim_url, book)
        orders = [o for o in make_orders(config, book, 24) if o[0] == "plural"]
        async with running(config, "ingest"), running(config, "worker", log_name="worker.log"):
            await register_and_apply(config, orders, db)
            code, report = await reconcile(config, "--provider", "plural")
            print(f"plural reconcile (SDK-shaped API): {report['counts']}")
            errors = {c["error"] for c in report["checks"] if c["error"]}
            assert (code, errors) == (0, set()), report["counts"]
            assert len(report["checks"]) == len(orders) == 6
            assert report["counts"] == {
                "in_sync": 0,
                "drift": len(orders),
                "not_found": 0,
                "failed": 0,
            }

            async def repaired() -> bool:
                found = await statuses(db)
                return all(found[life.merchant_ref][0] == "captured" for _, life in orders)

            await eventually(repaired, what="every Plural payment repaired from Get Order")
