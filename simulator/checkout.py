"""The providers' create-checkout endpoints, simulated: the shared part.

A provider's simulator module that serves its create API has ``add_create_routes(app,
desk)``: it adds the provider's documented endpoints (mounted at ``/<provider>``, every path
starting ``/{account}/``, so an account's ``status_api.base_url`` reaches them as it reaches
the status API), validates each request as the provider documents (auth, required fields,
signatures), and on success tells the :class:`OrderDesk` about the new order. The desk is
the simulator's ground truth: an order it was told about is what its status API and its
callbacks report from then on (created and unpaid until the simulated customer pays).

:class:`Desk` is the desk: it keeps each created order, puts the order's "created" state in
the status simulator's :class:`~simulator.status.OrderBook`, and on :meth:`Desk.pay` (the
simulated customer pays) replaces it with the order's paid lifecycle, whose callbacks the
caller sends or drops. Both states come from the provider simulator's
:class:`OrderScript` (``created_lifecycle``/``paid_lifecycle``): only the provider knows
what its documents look like.
"""

from __future__ import annotations

import time
from collections import Counter
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import datetime
from decimal import Decimal
from typing import Protocol, runtime_checkable

from aiohttp import web

from paysync.settings import ProviderAccount
from simulator.base import Lifecycle
from simulator.status import OrderBook


@dataclass(frozen=True, slots=True, kw_only=True)
class NewOrder:
    """An order a create call made, as the provider now knows it."""

    merchant_ref: str
    # The provider's id for it (PayCore ``cpi_…``, HDFC's ``ordeh_…``/order id, Plural
    # ``v1-…``); CCPayment returns none, its simulator uses the merchant_ref.
    provider_ref: str
    amount: Decimal
    currency: str
    redirect_url: str
    expires_at: datetime | None
    # The browser return URL and callback URL the request named, if any.
    return_url: str | None = None
    notify_url: str | None = None


class OrderDesk(Protocol):
    """What the simulator core offers a provider's create routes."""

    def account(self, provider: str, name: str) -> ProviderAccount | None:
        """The configured account the path names; None answers as the provider does for an
        unknown merchant."""
        ...

    def created(self, provider: str, account: str, order: NewOrder) -> None:
        """Record a new order (the simulated provider's truth from now on)."""
        ...

    def find_created(self, provider: str, account: str, merchant_ref: str) -> NewOrder | None:
        """The order already created under ``merchant_ref``, for the provider's duplicate
        rule (refuse, or answer the first again)."""
        ...

    def count_create(self, provider: str, account: str) -> None:
        """Count one create request that reached the provider (tests check idempotency)."""
        ...


AddCreateRoutes = Callable[[web.Application, OrderDesk], None]


@runtime_checkable
class CreatesOrders(Protocol):
    """A provider simulator that serves its create API."""

    def add_create_routes(self, app: web.Application, desk: OrderDesk) -> None: ...


@runtime_checkable
class OrderScript(Protocol):
    """How a provider reports an order made by its create API, before and after payment."""

    def created_lifecycle(
        self, account: ProviderAccount, order: NewOrder, *, now: int
    ) -> Lifecycle:
        """The order created and unpaid: what the status API answers (``callbacks`` hold
        the documents it answers from; ``statuses`` are empty: nothing changed yet)."""
        ...

    def paid_lifecycle(self, account: ProviderAccount, order: NewOrder, *, now: int) -> Lifecycle:
        """The order paid in full by the customer, through the provider's real lifecycle:
        its callbacks in sending order and the statuses paysync must emit for them."""
        ...


@dataclass(slots=True)
class Desk:
    """The :class:`OrderDesk` of the simulator: orders created through the create APIs."""

    book: OrderBook
    scripts: Mapping[str, object]
    orders: dict[tuple[str, str, str], NewOrder] = field(default_factory=dict)
    # (provider, account) → create requests that reached the provider.
    creates: Counter[tuple[str, str]] = field(default_factory=Counter)

    def account(self, provider: str, name: str) -> ProviderAccount | None:
        return self.book.account(provider, name)

    def created(self, provider: str, account: str, order: NewOrder) -> None:
        self.orders[(provider, account, order.merchant_ref)] = order
        life = self._script(provider).created_lifecycle(
            self._account(provider, account), order, now=int(time.time())
        )
        self.book.add(provider, account, life)

    def find_created(self, provider: str, account: str, merchant_ref: str) -> NewOrder | None:
        return self.orders.get((provider, account, merchant_ref))

    def count_create(self, provider: str, account: str) -> None:
        self.creates[(provider, account)] += 1

    def created_count(self, provider: str, account: str) -> int:
        """How many distinct orders the provider's create API made for the account."""
        return sum(1 for p, a, _ref in self.orders if (p, a) == (provider, account))

    def pay(
        self, provider: str, account: str, merchant_ref: str, *, now: int | None = None
    ) -> Lifecycle:
        """The customer pays the order in full: from now on the status API reports it paid.
        The lifecycle's callbacks are returned for the caller to send (or drop)."""
        order = self.orders.get((provider, account, merchant_ref))
        if order is None:
            raise KeyError(f"{provider}/{account} created no order {merchant_ref!r}")
        life = self._script(provider).paid_lifecycle(
            self._account(provider, account), order, now=int(time.time()) if now is None else now
        )
        self.book.add(provider, account, life)
        return life

    def _script(self, provider: str) -> OrderScript:
        script = self.scripts.get(provider)
        if not isinstance(script, OrderScript):
            raise NotImplementedError(f"the {provider} simulator has no OrderScript")
        return script

    def _account(self, provider: str, name: str) -> ProviderAccount:
        account = self.book.account(provider, name)
        if account is None:
            raise KeyError(f"{provider}/{name} is not an account the simulator knows")
        return account


DESK = web.AppKey("desk", OrderDesk)


def create_routes(simulators: Mapping[str, object]) -> dict[str, AddCreateRoutes]:
    """The create routes of every simulator that serves a create API, by provider."""
    return {
        name: sim.add_create_routes
        for name, sim in simulators.items()
        if isinstance(sim, CreatesOrders)
    }
