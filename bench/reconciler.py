"""Pair 4: the reconciler's polls per second against the simulated status API, vs its bound.

A ``paysync reconciler`` child (scheduled rounds, as in production; one round claims every
payment) polls the simulated HDFC status API (``simulator/status.py``, ``Faults(latency)``)
served by the benchmark on loopback, for payments registered in the benchmark database.
Two accounts, each with its own limits:

- ``bench-fast``: concurrency 4, 1000 requests/s allowed: bound by latency x concurrency
  (``concurrency / latency``, 200/s at 20 ms);
- ``bench-limited``: concurrency 8, 50 requests/s allowed: bound by its rate limit.

Each run makes every payment due at once and times each account's polls as the simulator
sees them: (polls - 1) / (last - first arrival). The ratio is that over the account's bound
``min(concurrency / latency, rate_per_second)``. The proof that the limit held is the
simulator's own count (``max_per_second``: the most requests of one account in one whole
second) and, stricter, the most arrivals in any sliding one-second window. The control,
alternating with the reconciler, is a bare aiohttp client at ``bench-fast``'s concurrency
asking the same simulator about the same orders (no limiter, no retries, no database, no
broker): how close to the bound the simulator itself lets a client come.
"""

from __future__ import annotations

import asyncio
import math
import sys
import time
from dataclasses import dataclass, field
from typing import Any

import aiohttp

from bench import rabbit, roles
from bench.context import Context
from bench.load import median
from bench.status_sim import Simulator, Stamps, max_in_window, rate_of, simulator
from bench.targets import Target, at_least, num, ratio
from paysync.settings import Settings, load_settings
from providers import account_models
from providers.hdfc.scheme import HdfcAccount, api_authorization
from simulator import SIMULATORS
from simulator.status import OrderBook, max_per_second

NAME = "reconciler"
HDFC = "hdfc"
RAW = "bench-raw"  # the control's account in the simulator (same orders as bench-fast)
TARGET_RATIO = 0.8
ROUND_TIMEOUT_FACTOR = 4.0  # a round may take this many times its ideal duration (+ 20 s)

clock = time.perf_counter


@dataclass(frozen=True, slots=True)
class Account:
    name: str
    concurrency: int
    rate: float

    def bound(self, latency: float) -> float:
        """Polls per second the limits allow: ``concurrency / latency``, capped by the rate."""
        return min(self.concurrency / latency, self.rate)

    def payments(self, latency: float, seconds: float) -> int:
        return max(20, math.ceil(self.bound(latency) * seconds))


ACCOUNTS = (
    Account("bench-fast", concurrency=4, rate=1000.0),
    Account("bench-limited", concurrency=8, rate=50.0),
)


@dataclass(frozen=True, slots=True)
class Run:
    polls_per_second: dict[str, float | None]  # per account, and the control under RAW
    polls: dict[str, int]
    max_per_sliding_second: dict[str, int]


@dataclass(frozen=True, slots=True)
class Result:
    latency: float
    runs: list[Run]
    max_per_whole_second: dict[str, int]  # simulator.status.max_per_second, over all runs
    payments: dict[str, int] = field(default_factory=dict)

    def median_rate(self, name: str) -> float | None:
        return median([r.polls_per_second.get(name) for r in self.runs])

    def sliding_max(self, name: str) -> int:
        return max((r.max_per_sliding_second.get(name, 0) for r in self.runs), default=0)

    def targets(self) -> list[Target]:
        found = []
        for account in ACCOUNTS:
            value = ratio(self.median_rate(account.name), account.bound(self.latency))
            found.append(
                Target(
                    label=f"reconciler {account.name} polls/s >= {TARGET_RATIO:g} x its bound",
                    figure=num(value, ".2f"),
                    met=at_least(value, TARGET_RATIO),
                )
            )
        for account in ACCOUNTS:
            peak = max(
                self.max_per_whole_second.get(account.name, 0), self.sliding_max(account.name)
            )
            found.append(
                Target(
                    label=f"reconciler {account.name} never above {account.rate:g} requests/s",
                    figure=f"max {peak} in one second",
                    met=peak <= account.rate,
                )
            )
        return found

    def as_json(self) -> dict[str, Any]:
        return {
            "latency_seconds": self.latency,
            "accounts": {
                a.name: {
                    "concurrency": a.concurrency,
                    "rate_per_second": a.rate,
                    "bound_per_second": a.bound(self.latency),
                    "payments": self.payments.get(a.name),
                    "median_polls_per_second": self.median_rate(a.name),
                    "ratio_to_bound": ratio(self.median_rate(a.name), a.bound(self.latency)),
                    "max_per_whole_second": self.max_per_whole_second.get(a.name),
                    "max_per_sliding_second": self.sliding_max(a.name),
                }
                for a in ACCOUNTS
            },
            "control_median_polls_per_second": self.median_rate(RAW),
            "runs": [
                {
                    "polls_per_second": r.polls_per_second,
                    "polls": r.polls,
                    "max_per_sliding_second": r.max_per_sliding_second,
                }
                for r in self.runs
            ],
            "targets": [t.as_json() for t in self.targets()],
        }


async def run_pair(ctx: Context) -> Result:
    latency = ctx.params.reconciler_latency
    # Empty tables: payments left by pairs 2-3 (CCPayment, whose status API is real) must
    # never be claimed by a round.
    await ctx.db.reset()
    book = OrderBook()
    routes = {HDFC: SIMULATORS[HDFC].add_status_routes}
    async with simulator(book, latency, routes) as sim:
        extra = "".join(
            roles.hdfc_account(a.name, status_url=sim.url, rate=a.rate, concurrency=a.concurrency)
            for a in ACCOUNTS
        )
        counts = {a.name: a.payments(latency, ctx.params.reconciler_seconds) for a in ACCOUNTS}
        total = sum(counts.values())
        rounds = f"\n[reconciler]\nbatch_size = {total}\ninterval_seconds = 0.2\n"
        config = ctx.config("reconciler", extra + rounds, status_url=sim.url)
        settings = load_settings(account_models(), path=config, env=dict(ctx.secrets))
        refs = await _orders(ctx, settings, book, counts)
        role = await roles.start("reconciler", config, ctx.secrets, ctx.spec.log_dir)
        try:
            runs = []
            for n in range(1, ctx.params.runs + 1):
                run = await _reconciler_run(ctx, sim, role, counts, n)
                raw = await _control_run(ctx, sim, settings, refs)
                runs.append(_merge(run, raw))
                progress(f"reconciler run {n}/{ctx.params.runs}", runs[-1])
            ctx.recorder.note("reconciler", "paysync", role.pid, "pair 4")
        finally:
            await role.stop()
        whole = {a.name: max_per_second(sim.app, HDFC, a.name) for a in ACCOUNTS}
    return Result(latency=latency, runs=runs, max_per_whole_second=whole, payments=counts)


async def _orders(
    ctx: Context, settings: Settings, book: OrderBook, counts: dict[str, int]
) -> list[str]:
    """Every account's orders in the simulator (the control's too) and in the database,
    as the merchant would have registered them; returns bench-fast's merchant refs."""
    now = int(time.time())
    conn = await ctx.db.connect()
    try:
        for name, count in counts.items():
            account = settings.account(HDFC, name)
            assert isinstance(account, HdfcAccount)
            book.accounts[(HDFC, name)] = account
            lives = [
                SIMULATORS[HDFC].lifecycle(account, f"{name}-{i:06d}", now=now)
                for i in range(count)
            ]
            for life in lives:
                book.add(HDFC, name, life)
                if name == ACCOUNTS[0].name:
                    book.add(HDFC, RAW, life)
            await conn.execute(
                ctx.db.queries["register_payments"],
                HDFC,
                name,
                [life.merchant_ref for life in lives],
                [life.provider_ref for life in lives],
                lives[0].amount,
                lives[0].currency,
            )
        book.accounts[(HDFC, RAW)] = book.accounts[(HDFC, ACCOUNTS[0].name)]
    finally:
        await conn.close()
    return [life.merchant_ref for life in book.orders[(HDFC, RAW)].values()]


async def _reconciler_run(
    ctx: Context, sim: Simulator, role: roles.Role, counts: dict[str, int], n: int
) -> Run:
    """Make every payment due; wait until the round has asked about each and finished."""
    await rabbit.purge(ctx.spec.amqp_url, ctx.spec.prefix)
    await asyncio.sleep(ctx.params.settle_seconds)
    sim.stamps.clear()
    ideal = sum(counts[a.name] / a.bound(ctx.params.reconciler_latency) for a in ACCOUNTS)
    deadline = clock() + ROUND_TIMEOUT_FACTOR * ideal + 20.0
    conn = await ctx.db.connect()
    try:
        await conn.execute(ctx.db.queries["make_due"], HDFC)
        while await conn.fetchval(ctx.db.queries["finished_rounds"]) < n:
            role.check_alive()
            if clock() > deadline:
                raise RuntimeError(f"reconciler round {n} did not finish:\n{role.log_tail()}")
            await asyncio.sleep(0.1)
    finally:
        await conn.close()
    return _run_of(sim.stamps, [a.name for a in ACCOUNTS])


async def _control_run(ctx: Context, sim: Simulator, settings: Settings, refs: list[str]) -> Run:
    """A bare aiohttp client at bench-fast's concurrency, over the same orders."""
    fast = ACCOUNTS[0]
    account = settings.account(HDFC, fast.name)
    assert isinstance(account, HdfcAccount)
    assert account.api_key is not None
    headers = {
        "Authorization": api_authorization(account.api_key.reveal()),
        "x-merchantid": account.merchant_id or "",
        "version": account.api_version,
    }
    await asyncio.sleep(ctx.params.settle_seconds)
    sim.stamps.clear()
    pending = iter(refs)
    async with aiohttp.ClientSession(headers=headers) as http:

        async def asker() -> None:
            for ref in pending:
                async with http.get(f"{sim.url}/{HDFC}/{RAW}/orders/{ref}") as resp:
                    await resp.read()

        await asyncio.gather(*(asker() for _ in range(fast.concurrency)))
    return _run_of(sim.stamps, [RAW])


def _run_of(stamps: Stamps, names: list[str]) -> Run:
    ordered = {name: sorted(stamps.get(name, [])) for name in names}
    return Run(
        polls_per_second={name: rate_of(s) for name, s in ordered.items()},
        polls={name: len(s) for name, s in ordered.items()},
        max_per_sliding_second={name: max_in_window(s) for name, s in ordered.items()},
    )


def _merge(a: Run, b: Run) -> Run:
    return Run(
        polls_per_second=a.polls_per_second | b.polls_per_second,
        polls=a.polls | b.polls,
        max_per_sliding_second=a.max_per_sliding_second | b.max_per_sliding_second,
    )


def render(result: Result) -> list[str]:
    lat_ms = result.latency * 1000
    lines = [
        f"reconciler vs its bound: simulated HDFC status API, {lat_ms:g} ms latency; control: a"
        " bare aiohttp client at bench-fast's concurrency",
        f"{'run':<4}"
        + "".join(f"{a.name + ' polls/s':>24}" for a in ACCOUNTS)
        + f"{'control polls/s':>18}",
    ]
    for i, r in enumerate(result.runs):
        cells = "".join(f"{num(r.polls_per_second.get(a.name)):>24}" for a in ACCOUNTS)
        lines.append(f"{i + 1:<4}{cells}{num(r.polls_per_second.get(RAW)):>18}")
    lines.append(
        f"{'account':<16}{'conc.':>6}{'rate/s':>8}{'bound/s':>9}{'median':>9}{'ratio':>7}"
        f"{'max/s (whole)':>15}{'max/s (sliding)':>17}"
    )
    for a in ACCOUNTS:
        rate = result.median_rate(a.name)
        bound = a.bound(result.latency)
        lines.append(
            f"{a.name:<16}{a.concurrency:>6}{a.rate:>8g}{bound:>9.1f}{num(rate):>9}"
            f"{num(ratio(rate, bound), '.2f'):>7}{result.max_per_whole_second.get(a.name, 0):>15}"
            f"{result.sliding_max(a.name):>17}"
        )
    control = result.median_rate(RAW)
    lines.append(
        f"control (bare client, concurrency {ACCOUNTS[0].concurrency}): {num(control)} polls/s ="
        f" {num(ratio(control, ACCOUNTS[0].bound(result.latency)), '.2f')} x bench-fast's bound"
    )
    return lines


def progress(label: str, run: Run) -> None:
    rates = ", ".join(f"{k} {num(v, '.0f')}/s" for k, v in run.polls_per_second.items())
    print(f"# {label}: {rates}", file=sys.stderr, flush=True)
