"""End-to-end scenarios shared by the reconciler, fault and metrics tests: the simulated
status APIs on loopback, a configuration whose accounts ask them, orders taken through
their providers' lifecycles, the merchant registering them, and the operator's job."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from decimal import Decimal
from pathlib import Path
from typing import Any

import aiohttp
import asyncpg
import orjson
from aiohttp import web

from simulator import SIMULATORS
from simulator.base import Lifecycle
from simulator.status import Faults, OrderBook, build_status_app
from tests.support.config import (
    ACCOUNT,
    API_TABLE,
    TOKEN_ENV,
    RunConfig,
    with_tokens,
    write_config,
)
from tests.support.process import PAYSYNC, assert_no_secret_in
from tests.support.services import BrokerNames
from tests.support.waiting import eventually

PROVIDERS = sorted(SIMULATORS)
# Requests per second each account's status API may take.
RATE = 25.0

Order = tuple[str, Lifecycle]


@asynccontextmanager
async def status_simulator(
    book: OrderBook, faults: Faults
) -> AsyncIterator[tuple[str, web.Application]]:
    routes = {name: sim.add_status_routes for name, sim in SIMULATORS.items()}
    app = build_status_app(book, faults, routes)
    runner = web.AppRunner(app, access_log=None)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    try:
        yield f"http://127.0.0.1:{runner.addresses[0][1]}", app
    finally:
        await runner.cleanup()


def scenario_config(
    tmp_path: Path,
    db_url: str,
    names: BrokerNames,
    sim_url: str,
    book: OrderBook,
    **broker: Any,
) -> RunConfig:
    """Every account asks the simulated status APIs; the /v1 API is on; the simulator
    knows the accounts, to check their credentials as the providers would. ``broker``:
    ``amqp_url``, ``heartbeat_seconds`` for ``write_config``."""
    config = with_tokens(
        write_config(
            tmp_path,
            database_url=db_url,
            prefix=names.prefix,
            extra=API_TABLE,
            status_url=sim_url,
            status_rate=RATE,
            **broker,
        )
    )
    # Scheduled rounds: small and frequent, so two replicas share the work in a test.
    config.env["PAYSYNC_RECONCILER__BATCH_SIZE"] = "10"
    config.env["PAYSYNC_RECONCILER__INTERVAL_SECONDS"] = "0.2"
    settings = config.settings
    for provider in PROVIDERS:
        account = settings.account(provider, ACCOUNT)
        assert account is not None
        book.accounts[(provider, ACCOUNT)] = account
    return config


def make_orders(
    config: RunConfig, book: OrderBook, count: int, *, ref_prefix: str | None = None
) -> list[Order]:
    """``count`` orders, the providers in turn, each a full lifecycle the book knows."""
    settings, now = config.settings, int(time.time())
    made = []
    for i in range(count):
        provider = PROVIDERS[i % len(PROVIDERS)]
        account = settings.account(provider, ACCOUNT)
        assert account is not None
        ref = f"{ref_prefix or provider}-{i:05d}"
        life = SIMULATORS[provider].lifecycle(account, ref, now=now)
        book.add(provider, ACCOUNT, life)
        made.append((provider, life))
    return made


async def register(config: RunConfig, made: list[Order]) -> None:
    """The merchant's backend registers every order it sends to a provider."""
    headers = {"Authorization": f"Bearer {config.env[TOKEN_ENV]}"}
    slots = asyncio.Semaphore(16)

    async def one(session: aiohttp.ClientSession, provider: str, life: Lifecycle) -> int:
        body = {
            "provider": provider,
            "account": ACCOUNT,
            "merchant_ref": life.merchant_ref,
            "provider_ref": life.provider_ref,
            "amount": str(life.amount),
            "currency": life.currency,
        }
        async with (
            slots,
            session.post(f"{config.url}/v1/payments", json=body, headers=headers) as r,
        ):
            return r.status

    async with aiohttp.ClientSession() as session:
        answers = await asyncio.gather(*(one(session, p, life) for p, life in made))
    assert set(answers) == {202}


async def register_and_apply(config: RunConfig, made: list[Order], db: asyncpg.Connection) -> None:
    """``register`` every order, then wait until the worker wrote each one (it needs
    ingest and a worker running)."""
    await register(config, made)

    async def applied() -> bool:
        return len(await statuses(db)) >= len(made)

    await eventually(applied, what="the registrations applied")


async def reconcile(config: RunConfig, *args: str) -> tuple[int, dict[str, Any]]:
    """``paysync reconcile ... --json`` as an operator runs it; exit code and report."""
    env = {**config.env, "PAYSYNC_CONFIG": str(config.path)}
    log_path = config.path.parent / f"reconcile-{args[1]}.log"
    with log_path.open("wb") as log:
        proc = await asyncio.create_subprocess_exec(
            PAYSYNC,
            "reconcile",
            *args,
            "--json",
            env=env,
            stdout=asyncio.subprocess.PIPE,
            stderr=log,
        )
        out, _ = await asyncio.wait_for(proc.communicate(), 180)
    assert_no_secret_in(log_path.read_text(errors="replace") + out.decode(), config)
    # stdout holds the report alone (log lines go to stderr), so it pipes into jq.
    return proc.returncode or 0, orjson.loads(out)


async def statuses(db: asyncpg.Connection) -> dict[str, tuple[str | None, Decimal]]:
    """Every payment's status and amount paid, by merchant ref."""
    rows = await db.fetch("SELECT merchant_ref, status, amount_paid FROM payments")
    return {r["merchant_ref"]: (r["status"], r["amount_paid"]) for r in rows}
