"""The late case as CCPayment makes it: one transfer reported by its callback (observed
when paysync received it, half an hour after the deadline) and by a status-API poll
(observed at the chain's ``pay_time``, five minutes before it), under one dedup key."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from decimal import Decimal

from providers import REGISTRY
from providers.ccpayment.scheme import Terms, credit_observation
from schemas.envelope import Envelope, EnvelopeKind
from schemas.observation import Kind, Observation, Source, load_observations
from simulator.ccpayment import webhook_body
from tests.support.config import ACCOUNT
from tests.support.envelopes import callback_envelope, observations_envelope
from worker.store import Store

DEADLINE = datetime(2026, 11, 21, 10, 0, tzinfo=UTC)
PAID_ON_CHAIN = DEADLINE - timedelta(minutes=5)
CALLBACK_DELIVERED = DEADLINE + timedelta(minutes=30)
TXID = "9f" * 32
ORDER_ID = "202611210930000000000000000000077"
DUE = Decimal("25.00")


def registration(ref: str) -> Envelope:
    """The merchant registers the order an hour before its deadline."""
    terms = Observation(
        kind=Kind.TERMS,
        source=Source.MERCHANT,
        provider="ccpayment",
        account=ACCOUNT,
        merchant_ref=ref,
        dedup_key=f"ccpayment:{ACCOUNT}:{ref}:registration",
        observed_at=DEADLINE - timedelta(hours=1),
        amount_due=DUE,
        # As priced (the README's CCPayment rule): the callbacks report the price in USD.
        currency="USD",
        expires_at=DEADLINE,
    )
    return observations_envelope([terms], terms.observed_at)


def callback(ref: str, order_amount: Decimal = DUE) -> Envelope:
    """CCPayment's webhook for the transfer, delivered half an hour after the deadline."""
    body = webhook_body(
        merchant_ref=ref,
        record_id=f"rec-{ref}",
        order_id=ORDER_ID,
        order_amount=order_amount,
        paid_amount=DUE,
        txid=TXID,
    )
    return callback_envelope("ccpayment", ACCOUNT, body, CALLBACK_DELIVERED)


def poll(ref: str, *, amount_due: Decimal = DUE, currency: str = "USD") -> Envelope:
    """The reconciler's poll: the same txid, observed at the transfer's ``pay_time``."""
    seen = credit_observation(
        source=Source.RECONCILER,
        account=ACCOUNT,
        merchant_ref=ref,
        txid=TXID,
        paid=DUE,
        # The order-info API states the price and the crypto due (a rate of 1 here).
        terms=Terms(amount_due=amount_due, currency=currency, price=amount_due, due=DUE),
        observed_at=PAID_ON_CHAIN,
        provider_status="Paid",
        provider_ref=ORDER_ID,
    )
    return observations_envelope([seen], CALLBACK_DELIVERED)


def parsed(envelope: Envelope) -> list[Observation]:
    """The envelope's observations, as the worker reads them."""
    if envelope.kind is EnvelopeKind.CALLBACK:
        return REGISTRY["ccpayment"].parse_callback(envelope)
    return load_observations(envelope.body)


async def deliver(store: Store, envelope: Envelope) -> None:
    await store.apply(envelope, parsed(envelope))
