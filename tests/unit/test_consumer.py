"""The worker's settle decision (worker/settle.py) as a value, and the consumer's message
handling (worker/handler.py) over fakes: a list-backed store and a recording broker, no
RabbitMQ, no Postgres."""

from __future__ import annotations

import asyncio
import time
from dataclasses import dataclass
from datetime import UTC, datetime

import pytest

from paysync.errors import (
    DatabaseUnavailable,
    MalformedMessage,
    UnknownAccount,
)
from paysync.metrics import Metrics
from paysync.settings import WorkerSettings
from providers import REGISTRY
from schemas.envelope import H_DEAD_AT, H_ERROR, Envelope, EnvelopeKind
from schemas.observation import Kind, Observation, Source
from schemas.status import Status
from simulator import SIMULATORS
from tests.support.envelopes import callback_envelope, observations_envelope
from tests.support.fakes import DELIVERY_LIMIT, FakeBroker, FakeMessage, FakeStore
from tests.support.metrics import count, sample
from worker.handler import MessageHandler
from worker.settle import ACK, REQUEUE, Action, Settlement, Stopping, settle

LIMIT = DELIVERY_LIMIT

# --- settle --------------------------------------------------------------------------------


def test_applied_is_acked() -> None:
    assert settle(None, deliveries=None, delivery_limit=LIMIT) == ACK


@pytest.mark.parametrize("deliveries", [None, 0, LIMIT - 1, LIMIT + 5])
def test_a_permanent_error_is_dead_lettered_with_its_reason_on_any_delivery(
    deliveries: int | None,
) -> None:
    error = MalformedMessage("extend.merchant_order_id is missing or not a string")
    assert settle(error, deliveries=deliveries, delivery_limit=LIMIT) == Settlement(
        action=Action.DEAD_LETTER,
        reason="MalformedMessage: extend.merchant_order_id is missing or not a string",
    )


def test_an_unknown_account_is_permanent() -> None:
    found = settle(UnknownAccount("acme", "shop"), deliveries=None, delivery_limit=LIMIT)
    assert found == Settlement(
        action=Action.DEAD_LETTER, reason="UnknownAccount: unknown provider account acme/shop"
    )


def test_stopping_gives_the_message_back() -> None:
    assert settle(Stopping(), deliveries=LIMIT - 1, delivery_limit=LIMIT) == REQUEUE


@pytest.mark.parametrize(
    ("deliveries", "expected"),
    [
        (None, Settlement(action=Action.REQUEUE, unexpected=True)),
        (0, Settlement(action=Action.REQUEUE, unexpected=True)),
        (LIMIT - 2, Settlement(action=Action.REQUEUE, unexpected=True)),
        (
            LIMIT - 1,
            Settlement(action=Action.DEAD_LETTER, reason="KeyError: 'x'", unexpected=True),
        ),
        (LIMIT, Settlement(action=Action.DEAD_LETTER, reason="KeyError: 'x'", unexpected=True)),
        # A header that is not a count never makes a delivery the last.
        ("2", Settlement(action=Action.REQUEUE, unexpected=True)),
    ],
)
def test_our_bug_is_retried_until_the_last_allowed_delivery(
    deliveries: object, expected: Settlement
) -> None:
    assert settle(KeyError("x"), deliveries=deliveries, delivery_limit=LIMIT) == expected


def test_with_a_limit_of_one_the_first_delivery_is_the_last() -> None:
    found = settle(RuntimeError("boom"), deliveries=None, delivery_limit=1)
    assert found.action is Action.DEAD_LETTER


@dataclass
class World:
    store: FakeStore
    broker: FakeBroker
    metrics: Metrics
    stop: asyncio.Event
    handler: MessageHandler

    def counted(self, name: str, **labels: str) -> float:
        return count(self.metrics.render().decode(), name, **labels)


def world(failures: list[Exception] | None = None, *, confirms: bool = True) -> World:
    store, broker = FakeStore(failures=failures or []), FakeBroker(confirms=confirms)
    metrics, stop = Metrics(), asyncio.Event()
    settings = WorkerSettings(retry_initial_seconds=0.001, retry_max_seconds=0.002)
    handler = MessageHandler(store, REGISTRY, broker, settings, metrics, stop)
    return World(store, broker, metrics, stop, handler)


def hdfc_callback(ref: str = "order-1") -> Envelope:
    body = SIMULATORS["hdfc"].callback_body(ref, now=int(time.time()))
    return callback_envelope("hdfc", "shop", body)


# --- the handler ---------------------------------------------------------------------------


async def test_a_callback_is_parsed_applied_counted_and_acked() -> None:
    w = world()
    message = FakeMessage.of(hdfc_callback())
    await w.handler.handle(message)
    assert message.settled == ["ack"]
    [(envelope, observations)] = w.store.applied
    assert envelope.message_id == message.message_id
    assert [(o.kind, o.merchant_ref, o.status) for o in observations] == [
        (Kind.STATUS, "order-1", Status.PAID)
    ]
    assert w.broker.published == []
    assert w.counted("paysync_observations_total", provider="hdfc", outcome="applied") == 1
    assert w.counted("paysync_transitions_total", provider="hdfc", to_status="paid") == 1


async def test_an_unparseable_authenticated_body_is_dead_lettered_raw_and_acked() -> None:
    w = world()
    envelope = callback_envelope("ccpayment", "shop", b'{"pay_status": "success"}')
    message = FakeMessage.of(envelope)
    await w.handler.handle(message)
    assert message.settled == ["ack"]
    assert w.store.attempts == 0
    [(exchange, dead, routing_key)] = w.broker.published
    assert (exchange, routing_key) == (w.broker.topology.dead_exchange, "")
    assert dead.body == envelope.body
    assert dead.message_id == envelope.message_id
    assert dead.headers is not None
    assert str(dead.headers[H_ERROR]).startswith("MalformedMessage: extend.merchant_order_id")
    assert datetime.fromisoformat(str(dead.headers[H_DEAD_AT])).tzinfo is not None
    assert sample(w.metrics.render().decode(), "paysync_dead_letters_total") == 1


async def test_an_envelope_of_an_unknown_provider_is_dead_lettered() -> None:
    w = world()
    await w.handler.handle(message := FakeMessage.of(callback_envelope("acme", "shop", b"{}")))
    assert message.settled == ["ack"]
    [(_, dead, _)] = w.broker.published
    assert dead.headers is not None
    assert dead.headers[H_ERROR] == "UnknownAccount: unknown provider account acme/shop"


async def test_a_message_without_envelope_headers_is_dead_lettered() -> None:
    w = world()
    message = FakeMessage(body=b"{}", headers={}, message_id="m-1")
    await w.handler.handle(message)
    assert message.settled == ["ack"]
    [(_, dead, _)] = w.broker.published
    assert dead.headers is not None
    assert str(dead.headers[H_ERROR]).startswith("MalformedMessage: invalid envelope")


async def test_a_dead_letter_the_broker_did_not_confirm_is_requeued_not_acked() -> None:
    w = world(confirms=False)
    message = FakeMessage.of(callback_envelope("acme", "shop", b"{}"))
    await w.handler.handle(message)
    assert message.settled == ["requeue"]
    assert w.counted("paysync_dead_letters_total") == 0


async def test_a_database_outage_is_retried_holding_the_message_then_acked_once() -> None:
    w = world([DatabaseUnavailable("down"), DatabaseUnavailable("still down")])
    message = FakeMessage.of(hdfc_callback())
    await w.handler.handle(message)
    assert message.settled == ["ack"]
    assert w.store.attempts == 3
    assert len(w.store.applied) == 1


async def test_an_outage_during_shutdown_gives_the_message_back() -> None:
    w = world([DatabaseUnavailable("down")])
    w.stop.set()
    message = FakeMessage.of(hdfc_callback())
    await w.handler.handle(message)
    assert message.settled == ["requeue"]
    assert w.store.applied == []
    assert w.broker.published == []


async def test_our_bug_is_requeued_and_dead_lettered_on_the_last_delivery() -> None:
    w = world([RuntimeError("boom"), RuntimeError("boom")])
    first = FakeMessage.of(hdfc_callback())
    await w.handler.handle(first)
    assert first.settled == ["requeue"]
    assert w.broker.published == []
    last = FakeMessage.of(hdfc_callback(), **{"x-delivery-count": LIMIT - 1})
    await w.handler.handle(last)
    assert last.settled == ["ack"]
    [(_, dead, _)] = w.broker.published
    assert dead.headers is not None
    assert dead.headers[H_ERROR] == "RuntimeError: boom"
    # Nothing was applied, so nothing was counted as applied.
    assert w.counted("paysync_observations_total", outcome="applied") == 0


async def test_a_return_url_is_recorded_as_a_hint() -> None:
    w = world()
    body = b"order_id=ord-9&status=CHARGED&signature=x&signature_algorithm=HMAC-SHA256"
    envelope = callback_envelope("hdfc", "shop", body, kind=EnvelopeKind.RETURN_URL)
    await w.handler.handle(message := FakeMessage.of(envelope))
    assert message.settled == ["ack"]
    [(_, hint)] = w.store.hints
    assert (hint.merchant_ref, hint.provider_status) == ("ord-9", "CHARGED")
    assert w.counted("paysync_observations_total", provider="hdfc", outcome="hint") == 1


async def test_a_return_url_of_a_provider_without_one_is_dead_lettered() -> None:
    w = world()
    envelope = callback_envelope("paycore", "shop", b"a=1", kind=EnvelopeKind.RETURN_URL)
    await w.handler.handle(message := FakeMessage.of(envelope))
    assert message.settled == ["ack"]
    [(_, dead, _)] = w.broker.published
    assert dead.headers is not None
    assert dead.headers[H_ERROR] == "MalformedMessage: paycore has no return-URL scheme"


async def test_observations_published_by_paysync_are_applied_as_they_are() -> None:
    w = world()
    terms = Observation(
        kind=Kind.TERMS,
        source=Source.MERCHANT,
        provider="plural",
        account="shop",
        merchant_ref="order-7",
        dedup_key="plural:shop:order-7:registration",
        observed_at=datetime.now(UTC),
    )
    await w.handler.handle(message := FakeMessage.of(observations_envelope([terms])))
    assert message.settled == ["ack"]
    [(_, applied)] = w.store.applied
    assert applied == [terms]


async def test_an_authentic_callback_about_nothing_tracked_is_acked_without_a_write() -> None:
    w = world()
    payout = b'{"data": {"type": "payout-invoices", "id": "cpo_1", "attributes": {}}}'
    await w.handler.handle(message := FakeMessage.of(callback_envelope("paycore", "shop", payout)))
    assert message.settled == ["ack"]
    assert w.store.attempts == 0
