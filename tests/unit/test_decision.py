"""paysync.state.decision.decide: what one receipt does to a payment, and each outcome."""

from __future__ import annotations

from dataclasses import replace
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from typing import Any

import pytest

from paysync.state.decision import ReceiptOutcome, decide, refold
from paysync.state.fold import PaymentState, fold
from schemas.observation import Kind, Observation, Source
from schemas.status import Status

DEADLINE = datetime(2026, 11, 21, 10, 0, tzinfo=UTC)
DUE = Decimal("25.00")


def receipt(kind: Kind = Kind.CREDIT, **fields: Any) -> Observation:
    base: dict[str, Any] = {
        "kind": kind,
        "source": Source.CALLBACK,
        "provider": "ccpayment",
        "account": "shop",
        "merchant_ref": "order-1",
        "dedup_key": "ccpayment:shop:order-1:credit:tx1",
        "observed_at": DEADLINE + timedelta(minutes=30),
        "amount": DUE if kind is Kind.CREDIT else None,
        "amount_due": DUE,
        "currency": "USDT",
    }
    base.update(fields)
    return Observation(**base)


TERMS = receipt(
    Kind.TERMS,
    source=Source.MERCHANT,
    dedup_key="ccpayment:shop:order-1:registration",
    observed_at=DEADLINE - timedelta(hours=1),
    expires_at=DEADLINE,
)
CALLBACK = receipt()
# The status API's report of the same transfer, at its on-chain pay_time.
POLL = receipt(source=Source.RECONCILER, observed_at=DEADLINE - timedelta(minutes=5))


def replay(receipts: list[Observation]) -> PaymentState:
    """Decide each receipt in turn, as the store does, and return the stored state."""
    state, seen = PaymentState(), list[Observation]()
    for new in receipts:
        state = decide(state, seen, new).after
        seen.append(new)
    return state


def test_the_late_case_stores_one_state_in_either_order() -> None:
    callback_first = replay([TERMS, CALLBACK, POLL])
    poll_first = replay([TERMS, POLL, CALLBACK])
    assert callback_first == poll_first == fold([TERMS, CALLBACK, POLL])
    assert (poll_first.status, poll_first.late) == (Status.PAID, False)


def test_an_earlier_report_of_a_known_fact_is_applied() -> None:
    before = fold([TERMS, CALLBACK])
    assert before.late
    decision = decide(before, [TERMS, CALLBACK], POLL)
    assert decision.outcome is ReceiptOutcome.APPLIED
    assert decision.after.late is False
    assert decision.transition is None  # the status stays paid
    assert decision.changed


def test_a_later_report_of_a_known_fact_is_a_duplicate() -> None:
    before = fold([TERMS, POLL])
    decision = decide(before, [TERMS, POLL], CALLBACK)
    assert decision.outcome is ReceiptOutcome.DUPLICATE
    assert decision.after == before
    assert not decision.changed


def test_a_new_fact_that_changes_nothing_is_stale() -> None:
    before = fold([TERMS, CALLBACK])
    pending = receipt(Kind.STATUS, dedup_key="k:pending", status=Status.PENDING)
    decision = decide(before, [TERMS, CALLBACK], pending)
    assert (decision.outcome, decision.after, decision.transition) == (
        ReceiptOutcome.STALE,
        before,
        None,
    )


def test_a_status_change_is_a_transition() -> None:
    decision = decide(None, [], CALLBACK)
    assert decision.outcome is ReceiptOutcome.APPLIED
    assert decision.transition == (None, Status.PAID)
    decision = decide(decision.after, [CALLBACK], receipt(Kind.CHARGEBACK, dedup_key="k:cb"))
    assert decision.transition == (Status.PAID, Status.CHARGED_BACK)


def test_a_new_anomaly_is_an_anomaly_with_or_without_a_status_change() -> None:
    before = fold([CALLBACK])
    other = receipt(Kind.STATUS, dedup_key="k:btc", status=Status.PENDING, currency="BTC")
    decision = decide(before, [CALLBACK], other)
    assert decision.outcome is ReceiptOutcome.ANOMALY
    assert decision.new_anomalies == ("currency_conflict",)
    assert decision.transition is None
    assert decision.after.anomalies == ("currency_conflict",)
    # The same anomaly again is not new.
    again = receipt(Kind.STATUS, dedup_key="k:btc2", status=Status.PENDING, currency="BTC")
    assert decide(decision.after, [CALLBACK, other], again).outcome is ReceiptOutcome.STALE


def test_hints_are_never_folded() -> None:
    hint = receipt(Kind.HINT, source=Source.RETURN_URL, dedup_key="k:return", status=Status.PAID)
    before = fold([TERMS])
    assert decide(before, [TERMS], hint).outcome is ReceiptOutcome.HINT
    assert decide(before, [TERMS], hint).after == before
    assert decide(None, [], hint).outcome is ReceiptOutcome.UNMATCHED_HINT


def test_a_stored_status_is_held_and_the_regression_reported() -> None:
    # A row written by something else than this fold (say, a defect) claims captured.
    stored = replace(fold([CALLBACK]), status=Status.CAPTURED)
    decision = decide(stored, [CALLBACK], POLL)
    assert decision.after.status is Status.CAPTURED
    assert decision.regression == (Status.CAPTURED, Status.PAID)
    assert decide(stored, [], receipt(Kind.TERMS, dedup_key="k:t")).regression == (
        Status.CAPTURED,
        None,
    )


@pytest.mark.parametrize(
    ("stored", "outcome"),
    [
        (fold([TERMS, CALLBACK, POLL]), ReceiptOutcome.DUPLICATE),
        (fold([TERMS, CALLBACK]), ReceiptOutcome.APPLIED),  # written before the fix
        (fold([TERMS]), ReceiptOutcome.APPLIED),
    ],
)
def test_refold_makes_a_row_the_fold_of_its_receipts(
    stored: PaymentState, outcome: ReceiptOutcome
) -> None:
    decision = refold(stored, [TERMS, CALLBACK, POLL])
    assert decision.outcome is outcome
    assert decision.after == fold([TERMS, CALLBACK, POLL])


def test_receipts_of_one_fact_that_disagree_are_an_anomaly_in_any_order() -> None:
    short = receipt(source=Source.RECONCILER, amount=Decimal("20.00"))
    assert fold([CALLBACK, short]) == fold([short, CALLBACK])
    assert "receipt_conflict" in fold([CALLBACK, short]).anomalies
    # Reports that differ only in source, time and wording agree.
    assert fold([CALLBACK, POLL, replace(POLL, provider_status="Paid")]).anomaly is None


def test_a_tie_in_time_is_broken_by_content_not_by_arrival() -> None:
    a = receipt(amount=Decimal("10.00"))
    b = receipt(amount=Decimal("30.00"), source=Source.RECONCILER)
    assert fold([a, b]) == fold([b, a])
    assert fold([a, b]).amount_paid == Decimal("10.00")  # its JSON sorts first


def test_terms_come_from_every_receipt() -> None:
    cheaper = receipt(source=Source.RECONCILER, amount_due=Decimal("20.00"))
    state = fold([CALLBACK, cheaper])
    assert state.amount == Decimal("20.00")
    assert state.anomalies == ("amount_due_conflict",)
