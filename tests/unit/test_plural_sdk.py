"""The simulated Plural API as the official SDK sees it (pinelabs-python, a dev dependency).

The SDK's async client, with its defaults (no ``Request-ID``/``Request-Timestamp``, the
token from its own ``generate_token``), asks the simulator on the loopback interface. Its
models must read every answer without leftovers: a field the SDK does not model would be
one the simulator made up, and a field it models but we do not serve (the token's
``expires_at``) is how the ``expires_in``-only simulator hid a real defect. paysync's own
client then asks the same simulator for the same orders.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from datetime import UTC, datetime
from typing import Any

import httpx
import pytest
from pinelabs import AsyncPinelabsApi
from pinelabs.core.pydantic_utilities import UniversalBaseModel

from providers.base import PaymentRef
from providers.plural.adapter import ADAPTER
from providers.plural.scheme import PluralAccount
from simulator.plural import SIMULATOR, PluralSimulator
from simulator.status import OrderBook, status_base_url
from tests.support.status_api import StatusSim, serve_status_sim

ACCOUNT = "shop-in"
CLIENT_ID = "client-0001"
CLIENT_SECRET = "s3cret-plural-client"
WEBHOOK_SECRET = "bWFkZS11cC1wbHVyYWwtd2ViaG9vay1zZWNyZXQ="


def account() -> PluralAccount:
    return PluralAccount.model_validate(
        {"secrets": ["env:WH"], "client_id": CLIENT_ID, "client_secret": "env:CS"},
        context={"env": {"WH": WEBHOOK_SECRET, "CS": CLIENT_SECRET}},
    )


@pytest.fixture
async def sim() -> AsyncIterator[StatusSim]:
    book = OrderBook()
    book.accounts[("plural", ACCOUNT)] = account()
    async with serve_status_sim(book, {"plural": PluralSimulator().add_status_routes}) as served:
        yield served


@pytest.fixture
async def http() -> AsyncIterator[httpx.AsyncClient]:
    # The SDK's own default client is never closed; this one is.
    async with httpx.AsyncClient() as client:
        yield client


def leftovers(model: object, path: str = "") -> list[str]:
    """Every field of an answer the SDK's models do not declare (``extra="allow"`` keeps
    them aside in ``model_extra``), at any depth."""
    found: list[str] = []
    if isinstance(model, UniversalBaseModel):
        found += [f"{path}.{name}" for name in model.model_extra or {}]
        for name in type(model).model_fields:
            found += leftovers(getattr(model, name), f"{path}.{name}")
    elif isinstance(model, list):
        for i, item in enumerate(model):
            found += leftovers(item, f"{path}[{i}]")
    return found


async def sdk_client(sim: StatusSim, http: httpx.AsyncClient) -> tuple[AsyncPinelabsApi, Any]:
    """The SDK's two-step start, as its README shows it: a bootstrap client for the token,
    then a client carrying it. (The README's ``token=""`` makes the SDK send ``Bearer ``,
    which httpx refuses as an illegal header value; the token route reads no token.)"""
    base_url = status_base_url(sim.url, "plural", ACCOUNT)
    auth = AsyncPinelabsApi(base_url=base_url, token="bootstrap", httpx_client=http)
    issued = await auth.authentication.generate_token(
        grant_type="client_credentials", client_id=CLIENT_ID, client_secret=CLIENT_SECRET
    )
    assert issued.access_token
    api = AsyncPinelabsApi(base_url=base_url, token=issued.access_token, httpx_client=http)
    return api, issued


async def test_the_sdk_reads_the_token_with_its_expiry(
    sim: StatusSim, http: httpx.AsyncClient
) -> None:
    _, issued = await sdk_client(sim, http)
    assert leftovers(issued) == []
    assert issued.expires_at is not None
    assert issued.expires_at.tzinfo is not None
    assert 3590 < (issued.expires_at - datetime.now(UTC)).total_seconds() <= 3600


@pytest.mark.parametrize("by", ["order_id", "reference"])
async def test_the_sdk_reads_get_order_with_nothing_left_over(
    sim: StatusSim, http: httpx.AsyncClient, by: str
) -> None:
    life = SIMULATOR.lifecycle(account(), "order-sdk-1", now=1718100000)
    sim.book.add("plural", ACCOUNT, life)
    api, _ = await sdk_client(sim, http)
    if by == "order_id":
        order = await api.orders.get_order_by_id(life.provider_ref)
    else:
        order = await api.orders.get_order_by_merchant_reference(life.merchant_ref)
    assert leftovers(order) == []
    assert order.data is not None
    assert (order.data.order_id, order.data.merchant_order_reference, order.data.status) == (
        life.provider_ref,
        life.merchant_ref,
        "PROCESSED",
    )
    assert order.data.order_amount is not None
    assert (order.data.order_amount.value, order.data.order_amount.currency) == (125000, "INR")
    assert order.data.updated_at is not None
    assert order.data.updated_at.tzinfo is not None


async def test_paysyncs_client_reads_what_the_sdk_reads(
    sim: StatusSim, http: httpx.AsyncClient
) -> None:
    life = SIMULATOR.lifecycle(account(), "order-sdk-2", now=1718100000)
    sim.book.add("plural", ACCOUNT, life)
    api, _ = await sdk_client(sim, http)
    order = await api.orders.get_order_by_id(life.provider_ref)
    status_api = ADAPTER.status_api
    assert status_api is not None
    ours = status_api.client(ACCOUNT, account(), status_base_url(sim.url, "plural", ACCOUNT))
    for ref in (
        PaymentRef(merchant_ref=life.merchant_ref, provider_ref=life.provider_ref),
        PaymentRef(merchant_ref=life.merchant_ref),
    ):
        [poll] = await ours.poll(sim.call, [ref], datetime.now(UTC))
        assert order.data is not None
        assert (poll.found, poll.provider_status) == (True, order.data.status)
