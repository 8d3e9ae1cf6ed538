"""A CCPayment order registered at its price, paid in crypto, end to end through ingest, the
queue, the worker's store and the outbox (real RabbitMQ and Postgres).

The merchant registers what it priced (``25 USD``); CCPayment's callbacks report the same
price (``product_price``, ``denominated_currency``) beside the crypto amounts
(``order_amount`` due, ``paid_amount`` per transfer). The payment must end as CCPayment
sees it (paid in full, in the price's currency), with no anomaly, and money exact at any
size.
"""

from __future__ import annotations

import time
from decimal import Decimal
from typing import Any

import aiohttp
import asyncpg
import orjson
import pytest

from simulator import SIMULATORS
from tests.support.config import ACCOUNT, TOKEN_ENV, RunConfig
from tests.support.ingest import apply_published, post, serving
from tests.support.services import BrokerNames
from worker.store import Store

pytestmark = pytest.mark.integration


def webhook(ref: str, record: str, paid: str, **fields: str) -> bytes:
    """A v1 "API Deposit" webhook shaped like providers/ccpayment.md's example: an order of
    25 USD, due as 25.012 USDT at a token rate of 0.9995."""
    doc: dict[str, Any] = {
        "pay_status": "success",
        "order_type": "API Deposit",
        "record_id": record,
        "order_id": "202405171000000000000000000000007",
        "product_price": "25",
        "denominated_currency": "USD",
        "order_amount": "25.012",
        "fiat_rate": "1",
        "paid_amount": paid,
        "token_rate": "0.9995",
        "chain": "TRX",
        "contract": "TR7NHqjeKQxGTCi8q8ZY4pL8otSzgjLj6t",
        "crypto": "USDT",
        "txid": f"tx-{record}",
        "extend": {"merchant_order_id": ref},
    }
    return orjson.dumps(doc | fields)


async def pay(
    config: RunConfig,
    names: BrokerNames,
    store: Store,
    registration: dict[str, str],
    *bodies: bytes,
) -> None:
    """Register, send the signed callbacks through ingest, apply what was published."""
    account = config.settings.account("ccpayment", ACCOUNT)
    assert account is not None
    token = {"Authorization": f"Bearer {config.env[TOKEN_ENV]}"}
    async with serving(config.settings) as (url, broker):
        await broker.wait_connected(10)
        async with (
            aiohttp.ClientSession() as session,
            session.post(f"{url}/v1/payments", json=registration, headers=token) as reply,
        ):
            assert reply.status == 202, await reply.text()
        for body in bodies:
            headers = SIMULATORS["ccpayment"].sign_callback(account, body, now=int(time.time()))
            status, answer, _ = await post(f"{url}/webhooks/ccpayment/{ACCOUNT}", body, headers)
            assert (status, answer) == (200, b"success")
    await apply_published(names.topology.inbound_queue, store, 1 + len(bodies))


async def test_an_order_registered_at_its_price_and_paid_in_crypto_ends_paid(
    api_config: RunConfig, names: BrokerNames, store: Store, db: asyncpg.Connection
) -> None:
    ref = "ord-20240517-0042"
    registration = {
        "provider": "ccpayment",
        "account": ACCOUNT,
        "merchant_ref": ref,
        "amount": "25",
        "currency": "USD",
    }
    # 10 + 15.012 USDT: the whole 25.012 USDT due, in two transfers.
    await pay(api_config, names, store, registration, webhook(ref, "r1", "10"))
    await pay(api_config, names, store, registration, webhook(ref, "r2", "15.012"))

    row = await db.fetchrow("SELECT * FROM payments WHERE merchant_ref = $1", ref)
    assert row is not None
    assert (row["status"], row["anomaly"], row["currency"]) == ("paid", None, "USD")
    assert (row["amount"], row["amount_paid"]) == (Decimal(25), Decimal("25.00"))
    events = await db.fetch("SELECT body FROM outbox ORDER BY seq")
    assert [
        {k: orjson.loads(e["body"])["payment"][k] for k in ("status", "amount_paid", "currency")}
        for e in events
    ] == [
        {"status": "underpaid", "amount_paid": "10.00", "currency": "USD"},
        {"status": "paid", "amount_paid": "25.00", "currency": "USD"},
    ]


async def test_an_exact_payment_of_many_digits_is_paid_exactly(
    api_config: RunConfig, names: BrokerNames, store: Store, db: asyncpg.Connection
) -> None:
    # 29 significant digits: more than Python's default decimal context keeps (28).
    amount = "12345678901.123456789012345678"
    ref = "order-29-digits"
    registration = {
        "provider": "ccpayment",
        "account": ACCOUNT,
        "merchant_ref": ref,
        "amount": amount,
        "currency": "USD",
    }
    body = webhook(ref, "r1", amount, product_price=amount, order_amount=amount, token_rate="1")
    await pay(api_config, names, store, registration, body)

    row = await db.fetchrow("SELECT * FROM payments WHERE merchant_ref = $1", ref)
    assert row is not None
    assert (row["status"], row["anomaly"]) == ("paid", None)
    assert row["amount_paid"] == row["amount"] == Decimal(amount)
    [event] = await db.fetch("SELECT body FROM outbox")
    payment = orjson.loads(event["body"])["payment"]
    assert (payment["amount"], payment["amount_paid"]) == (amount, amount)
