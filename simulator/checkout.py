"""The providers' create-checkout endpoints, simulated: the shared part.

A provider's simulator module that serves its create API has ``add_create_routes(app,
desk)``: it adds the provider's documented endpoints (mounted at ``/<provider>``, every path
starting ``/{account}/``, so an account's ``status_api.base_url`` reaches them as it reaches
the status API), validates each request as the provider documents (auth, required fields,
signatures), and on success tells the :class:`OrderDesk` about the new order. The desk is
the simulator's ground truth: an order it was told about is what its status API and its
callbacks report from then on (created and unpaid until the simulated customer pays).
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from decimal import Decimal
from typing import Protocol

from paysync.settings import ProviderAccount


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
