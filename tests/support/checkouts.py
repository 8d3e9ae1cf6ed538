"""What the checkout tests share: the simulated providers with their create APIs (status
and create routes on one app over one order desk), and ``POST /v1/checkouts``."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass
from typing import Any

import aiohttp
import orjson
from aiohttp import web

from providers import REGISTRY
from simulator import SIMULATORS
from simulator.checkout import Desk, create_routes
from simulator.customer import add_customer_routes
from simulator.status import Faults, OrderBook, build_status_app
from tests.support.config import ACCOUNT, TOKEN_ENV, RunConfig

# The providers paysync can create a checkout for.
CHECKOUT_PROVIDERS = sorted(name for name, p in REGISTRY.items() if p.has_checkout)
# A checkout each provider takes (CCPayment prices in USD).
TERMS = {
    "ccpayment": ("25.00", "USD"),
    "paycore": ("49.90", "EUR"),
    "hdfc": ("1499.00", "INR"),
    "plural": ("1499.00", "INR"),
}


@dataclass
class Simulated:
    url: str
    app: web.Application
    desk: Desk


@asynccontextmanager
async def simulated_providers(book: OrderBook, faults: Faults) -> AsyncIterator[Simulated]:
    """Every simulator's status API and, where it has one, its create API, on loopback."""
    desk = Desk(book=book, scripts=SIMULATORS)
    routes = {name: sim.add_status_routes for name, sim in SIMULATORS.items()}
    app = build_status_app(book, faults, routes, desk=desk, creates=create_routes(SIMULATORS))
    add_customer_routes(app, desk)
    runner = web.AppRunner(app, access_log=None)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    try:
        yield Simulated(f"http://127.0.0.1:{runner.addresses[0][1]}", app, desk)
    finally:
        await runner.cleanup()


def checkout_body(provider: str, merchant_ref: str, **more: Any) -> dict[str, Any]:
    amount, currency = TERMS[provider]
    return {
        "provider": provider,
        "account": ACCOUNT,
        "merchant_ref": merchant_ref,
        "amount": amount,
        "currency": currency,
        "description": "Plan A",
        "customer": {"email": "buyer@example.com", "phone": "9876543210"},
        "return_url": "https://shop.example/orders/" + merchant_ref,
    } | more


def know_accounts(config: RunConfig, book: OrderBook) -> None:
    """The simulator checks each account's credentials as its provider would."""
    settings = config.settings
    for provider in SIMULATORS:
        account = settings.account(provider, ACCOUNT)
        assert account is not None
        book.accounts[(provider, ACCOUNT)] = account


async def post_checkout(
    url: str, config: RunConfig, body: dict[str, Any], key: str | None
) -> tuple[int, dict[str, Any]]:
    """``POST {url}/v1/checkouts`` with the config's token and ``Idempotency-Key: key``."""
    headers = {"Authorization": f"Bearer {config.env[TOKEN_ENV]}"}
    if key is not None:
        headers["Idempotency-Key"] = key
    async with (
        aiohttp.ClientSession() as session,
        session.post(f"{url}/v1/checkouts", data=orjson.dumps(body), headers=headers) as r,
    ):
        return r.status, orjson.loads(await r.read())
