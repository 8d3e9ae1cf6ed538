"""CCPayment parse_callback on envelopes built directly, and the simulator round trip."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from decimal import Decimal
from typing import Any

import pytest

from paysync.errors import AuthenticationError, MalformedMessage
from paysync.state.fold import fold
from providers.ccpayment.adapter import CCPaymentAdapter
from providers.ccpayment.scheme import HEADER_TIMESTAMP, CCPaymentAccount
from schemas.envelope import Envelope, EnvelopeKind
from schemas.observation import Kind, Observation, Source
from schemas.status import Status
from simulator.ccpayment import lifecycle, webhook_body

ADAPTER = CCPaymentAdapter()
RECEIVED_AT = datetime(2024, 1, 1, 12, 0, 0, tzinfo=UTC)
ACCOUNT = "shop-1"


def envelope(body: bytes, *, account: str = ACCOUNT) -> Envelope:
    return Envelope(
        message_id="msg-1",
        kind=EnvelopeKind.CALLBACK,
        provider="ccpayment",
        account=account,
        received_at=RECEIVED_AT,
        body=body,
        content_type="application/json; charset=utf-8",
        verified_by="env:CCP_SECRET",
        http_headers={HEADER_TIMESTAMP: "1700000000"},
    )


def doc(**overrides: Any) -> dict[str, Any]:
    base: dict[str, Any] = {
        "pay_status": "success",
        "order_type": "API Deposit",
        "record_id": "202401011200000000000000000000002",
        "order_id": "202401011100000000000000000000003",
        "product_price": "25",
        "denominated_currency": "USD",
        "order_amount": "25.012",
        "fiat_rate": "1",
        "paid_amount": "10",
        "token_rate": "0.9995",
        "chain": "TRX",
        "txid": "abc123",
        "contract": "TR7NHqjeKQxGTCi8q8ZY4pL8otSzgjLj6t",
        "crypto": "USDT",
        "extend": {"merchant_order_id": "order-1001"},
    }
    base.update(overrides)
    return base


def body_of(document: object) -> bytes:
    return json.dumps(document).encode()


def parse(document: object) -> list[Any]:
    return ADAPTER.parse_callback(envelope(body_of(document)))


def test_success_is_one_credit() -> None:
    [obs] = parse(doc())
    assert obs.kind is Kind.CREDIT
    assert obs.source is Source.CALLBACK
    assert obs.provider == "ccpayment"
    assert obs.account == ACCOUNT
    # The order's price (25 USD), not its crypto due (25.012 USDT): 10 USDT is 10/25.012
    # of it, 9.9952... USD, rounded half-even to the cent.
    assert obs.amount == Decimal("10.00")
    assert isinstance(obs.amount, Decimal)
    assert obs.amount_due == Decimal("25")
    assert isinstance(obs.amount_due, Decimal)
    assert obs.currency == "USD"
    assert obs.record_id == "202401011200000000000000000000002"
    assert obs.merchant_ref == "order-1001"
    assert obs.provider_ref == "202401011100000000000000000000003"
    assert obs.provider_status == "success"
    assert obs.status is None
    assert obs.observed_at == RECEIVED_AT
    assert obs.dedup_key == "ccpayment:shop-1:order-1001:credit:abc123"


def test_dedup_key_depends_on_account_order_and_txid_only() -> None:
    # The status API lists trades by txid only: keyed by it, a credit seen by callback and by
    # poll is one credit.
    [a] = ADAPTER.parse_callback(envelope(body_of(doc(record_id="r1")), account="a"))
    [b] = ADAPTER.parse_callback(
        envelope(body_of(doc(record_id="r2", paid_amount="3")), account="a")
    )
    [c] = ADAPTER.parse_callback(envelope(body_of(doc()), account="b"))
    [d] = ADAPTER.parse_callback(envelope(body_of(doc(txid="other")), account="a"))
    [e] = ADAPTER.parse_callback(
        envelope(body_of(doc(extend={"merchant_order_id": "order-2"})), account="a")
    )
    assert a.dedup_key == b.dedup_key
    assert len({a.dedup_key, c.dedup_key, d.dedup_key, e.dedup_key}) == 4


@pytest.mark.parametrize(
    "unpriced",
    [
        {"product_price": None},
        {"denominated_currency": None},
        # Priced in the very token it is paid in: nothing to convert.
        {"denominated_currency": "USDT", "product_price": "25.012"},
    ],
    ids=["no_price", "no_price_currency", "priced_in_the_token"],
)
def test_without_a_price_in_another_currency_the_token_amounts_stay(
    unpriced: dict[str, Any],
) -> None:
    [obs] = parse(doc(**unpriced))
    assert (obs.amount, obs.amount_due, obs.currency) == (
        Decimal("10"),
        Decimal("25.012"),
        "USDT",
    )


def test_amounts_keep_all_decimals() -> None:
    [obs] = parse(
        doc(
            paid_amount="0.000000000000000001",
            order_amount="1.123456789012345678",
            product_price="1.123456789012345678",
            denominated_currency="USDT",
        )
    )
    assert obs.amount == Decimal("0.000000000000000001")
    assert obs.amount_due == Decimal("1.123456789012345678")
    # Priced in USD at the same figure, the 18 decimals of the price are kept.
    [obs] = parse(
        doc(
            paid_amount="0.000000000000000001",
            order_amount="1.123456789012345678",
            product_price="1.123456789012345678",
        )
    )
    assert obs.amount == Decimal("0.000000000000000001")
    assert obs.currency == "USD"


@pytest.mark.parametrize("pay_status", ["pending", "processing"])
def test_pending_and_processing_are_pending_status(pay_status: str) -> None:
    [obs] = parse(doc(pay_status=pay_status))
    assert obs.kind is Kind.STATUS
    assert obs.status is Status.PENDING
    assert obs.provider_status == pay_status
    assert obs.amount is None
    assert obs.merchant_ref == "order-1001"
    assert obs.dedup_key.startswith("ccpayment:shop-1:")
    assert "credit" not in obs.dedup_key


def test_status_dedup_keys_differ_per_status() -> None:
    [pending] = parse(doc(pay_status="pending"))
    [processing] = parse(doc(pay_status="processing"))
    [credit] = parse(doc(pay_status="success"))
    assert len({pending.dedup_key, processing.dedup_key, credit.dedup_key}) == 3


def test_unknown_pay_status_is_kept_without_status() -> None:
    [obs] = parse(doc(pay_status="refunding_soon"))
    assert obs.kind is Kind.STATUS
    assert obs.status is None
    assert obs.provider_status == "refunding_soon"
    assert obs.amount is None


def test_unknown_fields_are_ignored() -> None:
    [obs] = parse(doc(service_fee="0.1", memo="hi", something={"nested": [1, 2]}))
    assert obs.kind is Kind.CREDIT


def _without(key: str) -> dict[str, Any]:
    document = doc()
    del document[key]
    return document


@pytest.mark.parametrize(
    "document",
    [
        doc(extend={}),
        doc(extend={"merchant_order_id": ""}),
        doc(extend={"merchant_order_id": 1001}),
        doc(extend="order-1001"),
        _without("extend"),
    ],
    ids=["empty-extend", "empty-id", "number-id", "extend-string", "no-extend"],
)
def test_missing_merchant_order_id_is_malformed(document: dict[str, Any]) -> None:
    with pytest.raises(MalformedMessage, match="merchant_order_id"):
        parse(document)


@pytest.mark.parametrize(
    "document",
    [_without("record_id"), doc(record_id=""), doc(record_id=None)],
    ids=["absent", "empty", "null"],
)
def test_missing_record_id_is_malformed(document: dict[str, Any]) -> None:
    with pytest.raises(MalformedMessage, match="record_id"):
        parse(document)


def test_missing_pay_status_is_malformed() -> None:
    with pytest.raises(MalformedMessage):
        parse(_without("pay_status"))


@pytest.mark.parametrize(
    "amount",
    ["abc", "-1", "-0.5", "NaN", "nan", "sNaN", "Infinity", "-Infinity", "inf", "", True, [], {}],
)
def test_bad_paid_amount_is_malformed(amount: object) -> None:
    with pytest.raises(MalformedMessage, match="paid_amount"):
        parse(doc(paid_amount=amount))


def test_missing_paid_amount_on_success_is_malformed() -> None:
    with pytest.raises(MalformedMessage, match="paid_amount"):
        parse(_without("paid_amount"))


@pytest.mark.parametrize("raw", [b"NaN", b"Infinity", b"-Infinity", b"-1.5", b"-2"])
def test_non_finite_or_negative_json_number_amount_is_malformed(raw: bytes) -> None:
    body = body_of(doc(paid_amount="PLACEHOLDER")).replace(b'"PLACEHOLDER"', raw)
    with pytest.raises(MalformedMessage, match="paid_amount"):
        ADAPTER.parse_callback(envelope(body))


@pytest.mark.parametrize("amount", ["abc", "-1", "NaN", "Infinity"])
def test_bad_order_amount_is_malformed(amount: str) -> None:
    with pytest.raises(MalformedMessage, match="order_amount"):
        parse(doc(order_amount=amount))


def test_order_amount_may_be_absent() -> None:
    [obs] = parse(_without("order_amount"))
    assert obs.amount_due is None
    assert obs.amount == Decimal("10")


@pytest.mark.parametrize(
    ("raw", "expected"),
    [
        (b"10.000000000000000001", Decimal("10.000000000000000001")),
        (b"0.1", Decimal("0.1")),
        (b"0.30000000000000004", Decimal("0.30000000000000004")),
        (b"25", Decimal(25)),
        (b"123456789012345678901234567890", Decimal("123456789012345678901234567890")),
    ],
)
def test_json_number_amount_stays_exact(raw: bytes, expected: Decimal) -> None:
    body = body_of(doc(paid_amount="A", order_amount="B", denominated_currency="USDT"))
    body = body.replace(b'"A"', raw).replace(b'"B"', raw)
    [obs] = ADAPTER.parse_callback(envelope(body))
    assert obs.amount == expected
    assert obs.amount_due == expected
    assert str(obs.amount) == raw.decode()


def test_non_string_crypto_and_order_id_are_dropped() -> None:
    [obs] = parse(doc(crypto=5, order_id=7, denominated_currency=None))
    assert obs.currency is None
    assert obs.provider_ref is None


# --- simulator round trip -------------------------------------------------------------------

SIM_APP_ID = "202401010000000000000000000000001"
SIM_SECRET = "0123456789abcdef0123456789abcdef"
SIM_TS = 1700000000


def sim_account() -> CCPaymentAccount:
    return CCPaymentAccount.model_validate(
        {"app_id": SIM_APP_ID, "secrets": ["env:SIM"]}, context={"env": {"SIM": SIM_SECRET}}
    )


def test_simulator_webhook_body_parses() -> None:
    body = webhook_body(
        merchant_ref="order-7",
        record_id="r-1",
        order_id="o-1",
        order_amount=Decimal("25.012"),
        paid_amount=Decimal("10.5"),
    )
    [obs] = ADAPTER.parse_callback(envelope(body))
    assert obs.kind is Kind.CREDIT
    assert obs.merchant_ref == "order-7"
    assert obs.record_id == "r-1"
    assert obs.provider_ref == "o-1"
    # Priced at its crypto due (the default: a token rate of 1), in USD.
    assert str(obs.amount) == "10.5"
    assert obs.amount_due == Decimal("25.012")
    assert obs.currency == "USD"


def test_simulator_pending_body_parses_as_pending() -> None:
    body = webhook_body(
        merchant_ref="order-7",
        record_id="r-1",
        order_id="o-1",
        order_amount=Decimal(25),
        paid_amount=Decimal(25),
        pay_status="pending",
    )
    [obs] = ADAPTER.parse_callback(envelope(body))
    assert obs.kind is Kind.STATUS
    assert obs.status is Status.PENDING


@pytest.mark.parametrize(
    ("parts", "final"),
    [
        ([Decimal("25.012")], Status.PAID),
        ([Decimal("10"), Decimal("15.012")], Status.PAID),
        ([Decimal("10"), Decimal("5")], Status.UNDERPAID),
        ([Decimal("20"), Decimal("10")], Status.OVERPAID),
    ],
)
def test_simulator_lifecycle_verifies_parses_and_folds(parts: list[Decimal], final: Status) -> None:
    acct = sim_account()
    callbacks = lifecycle(
        app_id=SIM_APP_ID,
        app_secret=SIM_SECRET,
        merchant_ref="order-42",
        amount=Decimal("25.012"),
        parts=parts,
        timestamp=SIM_TS,
    )
    assert len(callbacks) == len(parts)
    now = datetime.fromtimestamp(SIM_TS, tz=UTC)
    seen: list[Observation] = []
    keys = set()
    for callback, part in zip(callbacks, parts, strict=True):
        verified = ADAPTER.verify_callback(acct, callback.headers, callback.body, now)
        assert verified.secret_ref == "env:SIM"
        env = Envelope(
            message_id=callback.record_id,
            kind=EnvelopeKind.CALLBACK,
            provider="ccpayment",
            account=ACCOUNT,
            received_at=now,
            body=callback.body,
            verified_by=verified.secret_ref,
            http_headers=verified.http_headers,
        )
        [obs] = ADAPTER.parse_callback(env)
        assert obs.record_id == callback.record_id
        assert obs.amount == part
        assert obs.merchant_ref == "order-42"
        keys.add(obs.dedup_key)
        seen.append(obs)
    assert len(keys) == len(parts)
    state = fold(seen)
    assert state.status is final
    assert state.amount_paid == sum(parts, Decimal(0))
    assert state.amount == Decimal("25.012")


def test_simulator_lifecycle_rejects_tampered_body() -> None:
    [callback] = lifecycle(
        app_id=SIM_APP_ID,
        app_secret=SIM_SECRET,
        merchant_ref="order-42",
        amount=Decimal(25),
        parts=[Decimal(25)],
        timestamp=SIM_TS,
    )
    tampered = callback.body.replace(b'"paid_amount":"25"', b'"paid_amount":"250"')
    assert tampered != callback.body
    now = datetime.fromtimestamp(SIM_TS, tz=UTC)
    with pytest.raises(AuthenticationError, match="bad_signature"):
        ADAPTER.verify_callback(sim_account(), callback.headers, tampered, now)
