"""Hosted checkouts end to end (issue 18's acceptance), per provider paysync can create a
checkout for: real ingest, worker and reconciler processes, RabbitMQ, Postgres and the
simulated providers. The merchant creates the checkout through ``POST /v1/checkouts``,
the simulated customer pays, every callback is dropped, and the reconciler still repairs
the payment from the provider's status API (PayCore by the ``cpi_`` id the create
returned), with its events in ``seq`` order."""

from __future__ import annotations

import uuid
from pathlib import Path

import aiohttp
import asyncpg
import orjson
import pytest

from simulator.status import Faults, OrderBook
from tests.support.amqp import take
from tests.support.checkouts import (
    CHECKOUT_PROVIDERS,
    checkout_body,
    post_checkout,
    simulated_providers,
)
from tests.support.config import ACCOUNT
from tests.support.process import running
from tests.support.scenario import scenario_config, statuses
from tests.support.services import BrokerNames
from tests.support.waiting import eventually

pytestmark = pytest.mark.e2e


@pytest.mark.parametrize("provider", CHECKOUT_PROVIDERS)
async def test_a_checkout_paid_with_every_callback_lost_is_repaired_from_the_status_api(
    provider: str, tmp_path: Path, db_url: str, names: BrokerNames, db: asyncpg.Connection
) -> None:
    book, ref = OrderBook(), f"e2e-co-{provider}"
    async with simulated_providers(book, Faults()) as sim:
        config = scenario_config(tmp_path, db_url, names, sim.url, book)
        events = await names.bind_events_queue()
        async with running(config, "ingest"), running(config, "worker", log_name="worker.log"):
            status, answer = await post_checkout(
                config.url, config, checkout_body(provider, ref), str(uuid.uuid4())
            )
            assert status == 201, answer
            checkout = answer["checkout"]
            order = sim.desk.find_created(provider, ACCOUNT, ref)
            assert order is not None
            assert checkout["redirect_url"] == order.redirect_url

            async def registered() -> bool:
                return ref in await statuses(db)

            await eventually(registered, what="the checkout's payment registered")
            row = await db.fetchrow(
                "SELECT provider_ref, status, amount FROM payments WHERE merchant_ref = $1", ref
            )
            assert row is not None
            assert (row["provider_ref"], row["status"]) == (checkout["provider_ref"], None)
            # The customer pays on the hosted page; every callback about it is lost.
            life = sim.desk.pay(provider, ACCOUNT, ref)
            assert life.callbacks, "a payment the provider would have called back about"
            await db.execute("UPDATE payments SET next_check_at = now()")
            async with running(config, "reconciler", log_name="reconciler.log"):

                async def repaired() -> bool:
                    return (await statuses(db))[ref][0] == life.statuses[-1]

                await eventually(repaired, timeout=30, what="the reconciler repaired it")

                async def relayed() -> bool:
                    return not await db.fetchval(
                        "SELECT count(*) FROM outbox WHERE published_at IS NULL"
                    )

                await eventually(relayed, what="every event relayed")
    assert sim.desk.creates[(provider, ACCOUNT)] == 1
    sources = await db.fetch("SELECT DISTINCT source FROM transitions")
    assert {r["source"] for r in sources} == {"reconciler"}
    published = await db.fetchval("SELECT count(*) FROM outbox")
    bodies = [orjson.loads(m.body) for m in await take(events, published, timeout=30)]
    got = [(e["payment"]["seq"], e["payment"]["status"]) for e in bodies]
    assert got == list(enumerate(life.statuses, start=1))
    assert {e["payment"]["merchant_ref"] for e in bodies} == {ref}


@pytest.mark.parametrize("provider", CHECKOUT_PROVIDERS)
async def test_a_merchants_whole_flow_create_redirect_pay_callback_event(
    provider: str, tmp_path: Path, db_url: str, names: BrokerNames, db: asyncpg.Connection
) -> None:
    """The README's flow: the create names paysync's webhook route (``public_url``), the
    customer pays, the provider's callback reaches paysync, the event follows."""
    book, ref = OrderBook(), f"e2e-flow-{provider}"
    async with simulated_providers(book, Faults()) as sim:
        config = scenario_config(tmp_path, db_url, names, sim.url, book)
        config.env["PAYSYNC_API__PUBLIC_URL"] = config.url
        events = await names.bind_events_queue()
        async with running(config, "ingest"), running(config, "worker", log_name="worker.log"):
            status, answer = await post_checkout(
                config.url, config, checkout_body(provider, ref), str(uuid.uuid4())
            )
            assert status == 201, answer
            order = sim.desk.find_created(provider, ACCOUNT, ref)
            assert order is not None
            webhook = f"{config.url}/webhooks/{provider}/{ACCOUNT}"
            # HDFC and Plural take the webhook URL from their dashboards, not per order.
            assert order.notify_url == (None if provider in ("hdfc", "plural") else webhook)
            async with (
                aiohttp.ClientSession() as session,
                session.get(answer["checkout"]["redirect_url"]) as page,
            ):
                assert page.status == 200  # the customer lands on the hosted page
            async with (
                aiohttp.ClientSession() as session,
                session.post(
                    f"{sim.url}/customer/{provider}/{ACCOUNT}/{ref}/pay",
                    params={"webhook_url": webhook},
                ) as paid,
            ):
                report = await paid.json()
            assert report["callbacks_sent"] >= 1
            assert set(report["callbacks_answered"]) == {200}
            [message] = await take(events, 1, timeout=30)
    event = orjson.loads(message.body)
    assert (event["source"], event["payment"]["status"], event["payment"]["seq"]) == (
        "callback",
        report["statuses"][-1],
        1,
    )
    assert event["payment"]["provider_ref"] == answer["checkout"]["provider_ref"] or (
        provider == "ccpayment"
    )
