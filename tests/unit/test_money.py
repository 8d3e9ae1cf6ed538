"""Money stays exact: the fold sums credits without rounding (Python's default decimal
context keeps 28 significant digits), and CCPayment's credits are valued in the order's
price currency by the rule in providers/ccpayment/scheme.py."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from decimal import Decimal, Inexact, getcontext, localcontext
from typing import Any

import pytest

from paysync.state.fold import fold
from providers.ccpayment.adapter import ADAPTER
from providers.ccpayment.scheme import price_value
from schemas.envelope import Envelope, EnvelopeKind
from schemas.money import exact
from schemas.observation import Kind, Observation, Source
from schemas.status import Status

AT = datetime(2026, 11, 21, 10, 0, tzinfo=UTC)
WIDE = "12345678901.123456789012345678"  # 29 significant digits


def credit(key: str, amount: str, due: str) -> Observation:
    return Observation(
        kind=Kind.CREDIT,
        source=Source.CALLBACK,
        provider="ccpayment",
        account="shop",
        merchant_ref="order-1",
        dedup_key=key,
        observed_at=AT,
        amount=Decimal(amount),
        amount_due=Decimal(due),
        currency="USD",
    )


def test_a_payment_wider_than_the_default_context_is_paid_exactly() -> None:
    assert getcontext().prec == 28
    state = fold([credit("c1", WIDE, WIDE)])
    assert (state.status, state.amount_paid) == (Status.PAID, Decimal(WIDE))


def test_parts_wider_than_the_default_context_sum_exactly() -> None:
    parts = ["0.000000000000000001", "12345678901.123456789012345677"]
    state = fold([credit(f"c{i}", part, WIDE) for i, part in enumerate(parts)])
    assert (state.status, state.amount_paid) == (Status.PAID, Decimal(WIDE))
    # One unit of the 18th decimal more is more than due.
    more = fold([credit("c1", WIDE, WIDE), credit("c2", "0.000000000000000001", WIDE)])
    assert more.status is Status.OVERPAID


def test_exact_arithmetic_refuses_to_round_instead_of_rounding() -> None:
    @exact
    def add(a: Decimal, b: Decimal) -> Decimal:
        with localcontext() as ctx:
            ctx.prec = 5  # a narrower context inside still traps: never silently rounded
            return a + b

    assert getcontext().prec == 28
    with pytest.raises(Inexact):
        add(Decimal("1.0001"), Decimal("100000"))


# --- CCPayment: a transfer's value in the price's currency -------------------------------


@pytest.mark.parametrize(
    ("paid", "price", "due", "value"),
    [
        # providers/ccpayment.md's example: 25 USD due as 25.012 USDT (token rate 0.9995).
        ("25.012", "25", "25.012", "25.00"),
        ("10", "25", "25.012", "10.00"),  # 9.9952...
        ("15.012", "25", "25.012", "15.00"),  # 15.0047...
        ("25.013", "25", "25.012", "25.00"),  # 25.00099...: overpaid by less than a cent
        ("26", "25", "25.012", "25.99"),  # 25.9875...
        ("0.000001", "25", "25.012", "0.00"),
        ("20", "19.99", "20", "19.99"),
        # At a rate of one, a transfer is its own value, every digit kept.
        ("10.5", "25", "25", "10.5"),
        ("0.000000000000000001", "25.012", "25.012", "0.000000000000000001"),
        # The price's own decimals are kept when it has more than a cent's.
        (WIDE, WIDE, WIDE, WIDE),
        ("0.5", "0.00050000", "1", "0.00025000"),
    ],
)
def test_a_transfer_is_valued_as_its_share_of_the_order(
    paid: str, price: str, due: str, value: str
) -> None:
    got = price_value(Decimal(paid), price=Decimal(price), due=Decimal(due))
    # Equal, and with exactly these decimals (as events show money: format "f").
    assert (got, format(got, "f")) == (Decimal(value), value)


def test_halves_round_to_even() -> None:
    # 1 of 8 due, price 0.10: 0.0125 exactly, rounded to 0.01 (even), not 0.02.
    assert price_value(Decimal(1), price=Decimal("0.10"), due=Decimal(8)) == Decimal("0.01")
    assert price_value(Decimal(3), price=Decimal("0.10"), due=Decimal(8)) == Decimal("0.04")


def envelope(doc: dict[str, Any]) -> Envelope:
    return Envelope(
        message_id="m-1",
        kind=EnvelopeKind.CALLBACK,
        provider="ccpayment",
        account="shop",
        received_at=AT,
        body=json.dumps(doc).encode(),
        content_type="application/json",
        verified_by="env:S",
        http_headers={"Timestamp": "1700000000"},
    )


BASE: dict[str, Any] = {
    "pay_status": "success",
    "record_id": "r1",
    "order_id": "o1",
    "product_price": "25",
    "denominated_currency": "USD",
    "order_amount": "25.012",
    "paid_amount": "10",
    "token_rate": "0.9995",
    "crypto": "USDT",
    "txid": "abc",
    "extend": {"merchant_order_id": "order-1"},
}


def test_the_callback_speaks_in_the_price_not_the_crypto() -> None:
    [obs] = ADAPTER.parse_callback(envelope(BASE))
    assert (obs.amount, obs.amount_due, obs.currency) == (
        Decimal("10.00"),
        Decimal(25),
        "USD",
    )


def test_a_two_part_payment_of_the_crypto_due_is_the_price() -> None:
    parts = [BASE, BASE | {"record_id": "r2", "txid": "def", "paid_amount": "15.012"}]
    state = fold([o for doc in parts for o in ADAPTER.parse_callback(envelope(doc))])
    assert (state.status, state.amount_paid, state.amount, state.currency, state.anomaly) == (
        Status.PAID,
        Decimal("25.00"),
        Decimal(25),
        "USD",
        None,
    )
