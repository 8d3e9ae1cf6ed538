"""The broker link against a real RabbitMQ: publishes the broker keeps refusing make the
link start afresh (RabbitMQ 3.10 nacks every publish for good on a channel opened during a
quorum-queue leader election; the cluster fault test found it)."""

from __future__ import annotations

import asyncio

import pytest

from paysync.broker import Broker, publish_envelope
from paysync.errors import BrokerUnavailable
from schemas.envelope import Envelope
from tests.support.config import ACCOUNT
from tests.support.envelopes import callback_envelope
from tests.support.services import BrokerNames
from tests.support.waiting import eventually

pytestmark = pytest.mark.integration


def _envelope() -> Envelope:
    return callback_envelope("ccpayment", ACCOUNT, b"{}")


async def _rabbitmqctl(*args: str) -> None:
    proc = await asyncio.create_subprocess_exec(
        "rabbitmqctl", "-q", *args, stdout=asyncio.subprocess.DEVNULL
    )
    assert await proc.wait() == 0


async def test_publishes_refused_again_and_again_make_the_link_start_afresh(
    broker: Broker, names: BrokerNames
) -> None:
    policy = f"refuse-{names.prefix}"
    pattern = "^" + names.topology.inbound_queue.replace(".", r"\.") + "$"
    first = broker.connection
    await publish_envelope(broker, _envelope(), timeout=5)
    # A length limit of 0 with reject-publish: the queue nacks every publish.
    await _rabbitmqctl("set_policy", "--apply-to", "queues", policy, pattern, '{"max-length":0}')
    try:

        async def refused() -> bool:
            try:
                await publish_envelope(broker, _envelope(), timeout=5)
            except BrokerUnavailable:
                return True
            return False

        for _ in range(3):
            await eventually(refused, what="a refused publish")

        async def relinked() -> bool:
            return broker.ready and broker.connection is not first

        await eventually(relinked, what="a new link after three refusals")
    finally:
        await _rabbitmqctl("clear_policy", policy)

    async def accepted() -> bool:
        try:
            await publish_envelope(broker, _envelope(), timeout=5)
        except BrokerUnavailable:
            return False
        return True

    await eventually(accepted, what="publishes confirmed once the queue takes them again")


async def test_wait_up_answers_false_once_stop_is_set_even_while_the_link_is_up(
    broker: Broker,
) -> None:
    # A loop ``while await broker.wait_up(stop)`` must end at shutdown: the demo's event
    # printer spun on a live link after SIGTERM until its role's drain timed out.
    stop = asyncio.Event()
    assert broker.ready
    assert await broker.wait_up(stop) is True
    stop.set()
    assert await broker.wait_up(stop) is False
