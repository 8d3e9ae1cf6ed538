"""The providers' status APIs, simulated: one aiohttp app serving every provider's documented
shapes from the same ground truth as the callbacks the simulator sends, with faults.

Ground truth is an :class:`OrderBook` of :class:`~simulator.base.Lifecycle` values: what the
provider knows about each order once its lifecycle is complete. Each provider's simulator
module adds its routes under ``/{provider}`` with ``{account}`` as the first path segment,
so an account's ``status_api.base_url`` is ``http://<sim>/<provider>/<account>``.

Faults are injected before any provider handler runs: latency, ``429``, ``503`` and
timeouts (an answer held past the client's timeout), at seeded rates. The app counts every
request per account and second (for the rate-limit check) and every poll per payment (for
the "two reconcilers never poll one payment twice in a round" check).
"""

from __future__ import annotations

import asyncio
import random
from collections import Counter, defaultdict
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

from aiohttp import web

from paysync.settings import ProviderAccount
from simulator.base import Lifecycle

Key = tuple[str, str]  # (provider, account)


def status_base_url(sim_url: str, provider: str, account_name: str) -> str:
    """The ``status_api.base_url`` an account needs to be answered by the simulator."""
    return f"{sim_url.rstrip('/')}/{provider}/{account_name}"


@dataclass(slots=True)
class OrderBook:
    """Orders per provider account, as the provider knows them, plus what was asked."""

    accounts: dict[Key, ProviderAccount] = field(default_factory=dict)
    orders: dict[Key, dict[str, Lifecycle]] = field(default_factory=lambda: defaultdict(dict))
    by_provider_ref: dict[tuple[str, str, str], str] = field(default_factory=dict)
    # (provider, account, merchant_ref) → how many times a status call asked about it.
    polls: Counter[tuple[str, str, str]] = field(default_factory=Counter)

    def add(self, provider: str, account: str, life: Lifecycle) -> None:
        self.orders[(provider, account)][life.merchant_ref] = life
        self.by_provider_ref[(provider, account, life.provider_ref)] = life.merchant_ref

    def find(
        self,
        provider: str,
        account: str,
        *,
        merchant_ref: str | None = None,
        provider_ref: str | None = None,
    ) -> Lifecycle | None:
        """The order asked about, counting the poll; None when the provider has none."""
        if merchant_ref is None and provider_ref is not None:
            merchant_ref = self.by_provider_ref.get((provider, account, provider_ref))
        if merchant_ref is None:
            return None
        self.polls[(provider, account, merchant_ref)] += 1
        return self.orders.get((provider, account), {}).get(merchant_ref)

    def account(self, provider: str, account: str) -> ProviderAccount | None:
        return self.accounts.get((provider, account))


@dataclass(frozen=True, slots=True, kw_only=True)
class Faults:
    latency_seconds: float = 0.0
    # Shares of requests answered 429, 503, or held for ``hang_seconds`` (a timeout).
    rate_limited: float = 0.0
    unavailable: float = 0.0
    hanging: float = 0.0
    hang_seconds: float = 30.0
    seed: int = 0


BOOK = web.AppKey("book", OrderBook)
FAULTS = web.AppKey("faults", Faults)
RANDOM = web.AppKey("random", random.Random)
# (provider, account) → request count per whole second (monotonic), for the rate check.
SECONDS = web.AppKey("seconds", defaultdict)
REQUESTS = web.AppKey("requests", Counter)

AddRoutes = Callable[[web.Application], None]
# A provider's create-checkout routes, given the order desk (simulator/checkout.py).
AddDeskRoutes = Callable[[web.Application, Any], None]


def build_status_app(
    book: OrderBook,
    faults: Faults,
    providers: Mapping[str, AddRoutes],
    *,
    desk: Any = None,
    creates: Mapping[str, AddDeskRoutes] | None = None,
) -> web.Application:
    """The status-API app: ``providers`` maps a provider name to the function that adds its
    routes (paths starting ``/{account}/``) to the provider's sub-application; ``creates``
    (with the ``desk`` they report to, a ``simulator.checkout.Desk`` over ``book``) the
    providers' create-checkout routes, on the same sub-applications and faults."""
    app = web.Application(middlewares=[_count_and_inject])
    app[BOOK] = book
    app[FAULTS] = faults
    app[RANDOM] = random.Random(faults.seed)
    app[SECONDS] = defaultdict(Counter)
    app[REQUESTS] = Counter()
    for name, add_routes in providers.items():
        sub = web.Application()
        sub[BOOK] = book
        add_routes(sub)
        if creates and name in creates:
            creates[name](sub, desk)
        app.add_subapp(f"/{name}", sub)
    return app


def book_of(request: web.Request) -> OrderBook:
    return request.config_dict[BOOK]


def max_per_second(app: web.Application, provider: str, account: str) -> int:
    """The most requests one account received within one whole second."""
    seconds: Counter[int] = app[SECONDS][(provider, account)]
    return max(seconds.values(), default=0)


Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]


@web.middleware
async def _count_and_inject(request: web.Request, handler: Handler) -> web.StreamResponse:
    parts = request.path.strip("/").split("/")
    if len(parts) >= 2:
        key = (parts[0], parts[1])
        loop_second = int(asyncio.get_running_loop().time())
        request.app[SECONDS][key][loop_second] += 1
        request.app[REQUESTS][key] += 1
    faults, rng = request.app[FAULTS], request.app[RANDOM]
    if faults.latency_seconds:
        await asyncio.sleep(faults.latency_seconds)
    roll = rng.random()
    if roll < faults.rate_limited:
        return web.json_response(
            {"error": "rate limited"}, status=429, headers={"Retry-After": "0"}
        )
    roll -= faults.rate_limited
    if roll < faults.unavailable:
        return web.json_response({"error": "unavailable"}, status=503)
    roll -= faults.unavailable
    if roll < faults.hanging:
        await asyncio.sleep(faults.hang_seconds)
    return await handler(request)
