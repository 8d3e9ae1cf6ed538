"""``paysync demo`` (what ``make run`` runs): every role in one process, plus simulated
providers taking orders through their lifecycles on a bad day.

Every ``every`` seconds the next configured account's provider takes one order through
its lifecycle. Where paysync can create the provider's hosted checkout, the merchant does
it as a merchant's backend would (``POST /v1/checkouts``, which registers the payment),
the simulated customer pays on the page, and the provider sends its callbacks; for the
other providers the merchant registers the order (``POST /v1/payments``) and the provider
sends its callbacks. Each callback is dropped with probability ``drop``. The simulated
providers (status APIs and create APIs) answer on ``127.0.0.1:<status_port>`` from the
same orders, so the reconciler repairs what the dropped callbacks missed (its first check
comes a minute after registration). Events are logged as ``demo_event_received``.
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import random
import time
import uuid
from collections.abc import Awaitable, Callable, Mapping

import aio_pika
import aiohttp
import orjson
from aiohttp import web

from paysync.amqp import broker_errors, close_quietly
from paysync.broker import Broker
from paysync.cli.roles import run_roles
from paysync.errors import BrokerUnavailable, ConfigError
from paysync.logging import get_logger
from paysync.settings import ProviderAccount, Settings
from providers.registry import Provider
from simulator import SIMULATORS
from simulator.base import Lifecycle
from simulator.checkout import Desk, create_routes
from simulator.customer import add_customer_routes
from simulator.sender import send_request
from simulator.status import Faults, OrderBook, build_status_app

log = get_logger(__name__)

# What the demo's checkouts cost, per provider (CCPayment prices in USD).
DEMO_PRICES = {
    "ccpayment": ("25.00", "USD"),
    "paycore": ("49.90", "EUR"),
    "hdfc": ("1499.00", "INR"),
    "plural": ("1499.00", "INR"),
}

Account = tuple[str, str, ProviderAccount]


async def demo(
    settings: Settings,
    registry: Mapping[str, Provider],
    *,
    every: float,
    status_port: int,
    drop: float,
) -> int:
    accounts: list[Account] = [
        (provider, name, account)
        for provider, by_name in settings.accounts.items()
        if provider in SIMULATORS
        for name, account in by_name.items()
    ]
    if not accounts:
        raise ConfigError(["accounts: the demo needs at least one provider account"])
    book = OrderBook()
    for provider, name, account in accounts:
        book.accounts[(provider, name)] = account
    desk = Desk(book=book, scripts=SIMULATORS)
    routes = {name: sim.add_status_routes for name, sim in SIMULATORS.items()}
    app = build_status_app(book, Faults(), routes, desk=desk, creates=create_routes(SIMULATORS))
    add_customer_routes(app, desk)
    runner = web.AppRunner(app, access_log=None)
    await runner.setup()
    try:
        await web.TCPSite(runner, "127.0.0.1", status_port).start()
        log.info("demo_status_apis_listening", url=f"http://127.0.0.1:{status_port}")
        checkouts = {name for name, provider in registry.items() if provider.has_checkout}
        customers = _Customers(
            settings, book, accounts, every=every, drop=drop, desk=desk, checkouts=checkouts
        )
        roles = {"ingest", "worker", "reconciler"}
        await run_roles(settings, registry, roles, extra=customers.run)
    finally:
        await runner.cleanup()
    return 0


class _Customers:
    def __init__(
        self,
        settings: Settings,
        book: OrderBook,
        accounts: list[Account],
        *,
        every: float,
        drop: float,
        desk: Desk,
        checkouts: set[str],
    ) -> None:
        self._settings = settings
        self._desk = desk
        self._checkouts = checkouts if settings.api.tokens else set()
        self._book = book
        self._accounts = accounts
        self._every = every
        self._drop = drop
        self._rng = random.Random()  # noqa: S311 (which demo callbacks get lost)

    async def run(self, broker: Broker, stop: asyncio.Event) -> None:
        printer = asyncio.create_task(_print_events(broker, stop), name="demo-events")
        try:
            await self._pay(stop)
        finally:
            await printer

    async def _pay(self, stop: asyncio.Event) -> None:
        timeout = aiohttp.ClientTimeout(total=30)
        async with aiohttp.ClientSession(timeout=timeout) as session:
            for provider, name, account in itertools.cycle(self._accounts):
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(stop.wait(), self._every)
                if stop.is_set():
                    return
                with contextlib.suppress(aiohttp.ClientError, BrokerUnavailable):
                    await self._order(session, provider, name, account)

    async def _order(
        self, session: aiohttp.ClientSession, provider: str, name: str, account: ProviderAccount
    ) -> None:
        ref = f"demo-{uuid.uuid4().hex[:10]}"
        if provider in self._checkouts:
            if not await self._checkout(session, provider, name, ref):
                return
            # The customer follows the redirect and pays on the provider's page.
            life = self._desk.pay(provider, name, ref)
        else:
            life = SIMULATORS[provider].lifecycle(account, ref, now=int(time.time()))
            self._book.add(provider, name, life)
            await self._register(session, provider, name, life)
        base = self._settings.ingest.local_url()
        sent = dropped = 0
        for callback in life.callbacks:
            if self._rng.random() < self._drop:
                dropped += 1
                continue
            await send_request(session, base, provider, name, callback)
            sent += 1
        log.info(
            "demo_payment_sent",
            provider=provider,
            account=name,
            merchant_ref=ref,
            callbacks_sent=sent,
            callbacks_dropped=dropped,
            final_status=life.statuses[-1],
        )

    async def _checkout(
        self, session: aiohttp.ClientSession, provider: str, name: str, ref: str
    ) -> bool:
        """The merchant's backend creates the checkout (which registers the payment)."""
        amount, currency = DEMO_PRICES.get(provider, ("10.00", "USD"))
        body = {
            "provider": provider,
            "account": name,
            "merchant_ref": ref,
            "amount": amount,
            "currency": currency,
            "description": "paysync demo order",
            "customer": {"email": "customer@example.com"},
            "return_url": "http://127.0.0.1:8080/healthz",
        }
        headers = {
            "Authorization": f"Bearer {self._settings.api.tokens[0].reveal()}",
            "Idempotency-Key": f"demo-{ref}",
        }
        url = f"{self._settings.ingest.local_url()}/v1/checkouts"
        async with session.post(url, json=body, headers=headers) as resp:
            answer = orjson.loads(await resp.read())
        if resp.status != 201:
            log.warning("demo_checkout_refused", provider=provider, status=resp.status, **answer)
            return False
        checkout = answer["checkout"]
        log.info(
            "demo_checkout_created",
            provider=provider,
            account=name,
            merchant_ref=ref,
            provider_ref=checkout["provider_ref"],
            redirect_url=checkout["redirect_url"],
        )
        return True

    async def _register(
        self, session: aiohttp.ClientSession, provider: str, name: str, life: Lifecycle
    ) -> None:
        tokens = self._settings.api.tokens
        if not tokens:
            return  # no /v1 API: the reconciler only sees payments some callback announced
        body = {
            "provider": provider,
            "account": name,
            "merchant_ref": life.merchant_ref,
            "provider_ref": life.provider_ref,
            "amount": str(life.amount),
            "currency": life.currency,
        }
        headers = {"Authorization": f"Bearer {tokens[0].reveal()}"}
        url = f"{self._settings.ingest.local_url()}/v1/payments"
        async with session.post(url, json=body, headers=headers) as resp:
            await resp.read()


async def _print_events(broker: Broker, stop: asyncio.Event) -> None:
    """Log every event from a temporary queue, subscribing again on every new broker link."""

    async def on_event(message: aio_pika.abc.AbstractIncomingMessage) -> None:
        async with message.process():
            event = orjson.loads(message.body)
            log.info(
                "demo_event_received",
                routing_key=message.routing_key,
                source=event["source"],
                payment=event["payment"],
                event_id=event["event_id"],
            )

    while await broker.wait_up(stop):
        try:
            with broker_errors("events"):
                await _watch_once(broker, stop, on_event)
        except BrokerUnavailable as exc:
            log.warning("demo_events_resubscribing", error=str(exc))
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(stop.wait(), 1.0)


async def _watch_once(
    broker: Broker,
    stop: asyncio.Event,
    on_event: Callable[[aio_pika.abc.AbstractIncomingMessage], Awaitable[None]],
) -> None:
    """One subscription on the current link, until its channel closes or ``stop``."""
    channel = await broker.connection.channel()
    queue = await channel.declare_queue(exclusive=True, auto_delete=True)
    await queue.bind(broker.topology.events_exchange, routing_key="payment.#")
    await queue.consume(on_event)
    closed = asyncio.ensure_future(channel.closed())
    stopped = asyncio.ensure_future(stop.wait())
    await asyncio.wait({closed, stopped}, return_when=asyncio.FIRST_COMPLETED)
    closed.cancel()
    stopped.cancel()
    await close_quietly(channel)
