"""Each provider's full lifecycle, signed by its simulator, through real paysync processes,
RabbitMQ and Postgres: the events on ``paysync.events`` are the documented statuses in
``seq`` order, and a return URL on the way changes nothing."""

from __future__ import annotations

import time
from decimal import Decimal

import aiohttp
import asyncpg
import orjson
import pytest

from providers import REGISTRY
from simulator import SIMULATORS
from simulator.base import Request
from simulator.sender import send_request
from tests.support.amqp import depth, take
from tests.support.config import ACCOUNT, RunConfig
from tests.support.db import one
from tests.support.lifecycles import CLAIMED_FAILURE, SCENARIOS
from tests.support.process import running
from tests.support.services import BrokerNames
from tests.support.waiting import eventually

pytestmark = pytest.mark.e2e


async def _send(config: RunConfig, provider: str, request: Request) -> int:
    async with aiohttp.ClientSession() as session:
        return (await send_request(session, config.url, provider, ACCOUNT, request)).status


# Every registered provider: one without a scenario fails here (KeyError), not silently.
@pytest.mark.parametrize("provider", sorted(REGISTRY))
async def test_a_full_lifecycle_becomes_its_events_in_seq_order(
    config: RunConfig, names: BrokerNames, db: asyncpg.Connection, provider: str
) -> None:
    events = await names.bind_events_queue()
    sim = SIMULATORS[provider]
    account = config.settings.account(provider, ACCOUNT)
    assert account is not None
    life = sim.lifecycle(account, f"{provider}-order-1", now=int(time.time()))
    assert life.statuses == list(SCENARIOS[provider])
    assert len(life.callbacks) == len(life.statuses)
    messages = []
    async with running(config, "all"):
        for callback, status in zip(life.callbacks, life.statuses, strict=True):
            assert await _send(config, provider, callback) == 200
            # One event per callback, awaited before the next one is sent, as in life.
            [message] = await take(events, 1)
            assert message.routing_key == f"payment.{status}"
            messages.append(message)
        if sim.returns is not None:
            # The customer comes back claiming failure: a hint, never a status change.
            order_id = life.provider_ref if provider == "plural" else life.merchant_ref
            redirect = sim.returns.signed_return(
                account, order_id=order_id, status=CLAIMED_FAILURE[provider]
            )
            assert await _send(config, provider, redirect) == 303

            async def hint_recorded() -> bool:
                count = await db.fetchval("SELECT count(*) FROM inbox WHERE outcome = 'hint'")
                return bool(count == 1)

            await eventually(hint_recorded, what="the return URL recorded as a hint")

    payments = [orjson.loads(m.body)["payment"] for m in messages]
    assert [(p["seq"], p["previous_status"], p["status"]) for p in payments] == [
        (i + 1, life.statuses[i - 1] if i else None, status)
        for i, status in enumerate(life.statuses)
    ]
    assert {(p["provider"], p["merchant_ref"], p["currency"]) for p in payments} == {
        (provider, life.merchant_ref, life.currency)
    }
    assert {Decimal(p["amount"]) for p in payments} == {life.amount}
    # Paid in full at the end, whether the provider reports credits or statuses.
    assert Decimal(payments[-1]["amount_paid"]) == life.amount
    row = await one(
        db, "SELECT status, seq FROM payments WHERE merchant_ref = $1", life.merchant_ref
    )
    assert dict(row) == {"status": life.statuses[-1], "seq": len(life.statuses)}
    assert await depth(events) == 0
