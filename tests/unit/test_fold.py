"""paysync.state.fold.fold: money credits and statuses fold to the same state in any order."""

from __future__ import annotations

import subprocess
import sys
from collections.abc import Iterable
from datetime import UTC, datetime
from decimal import Decimal
from typing import Any

from hypothesis import given
from hypothesis import strategies as st

from paysync.state import fold as folding
from paysync.state.fold import PaymentState, money_status
from schemas.observation import Kind, Observation, Source
from schemas.status import Status

AT = datetime(2026, 11, 21, 10, 0, tzinfo=UTC)
DUE = Decimal("25.012")


def credit(record_id: str, amount: Decimal | str, **fields: Any) -> Observation:
    base: dict[str, Any] = {
        "kind": Kind.CREDIT,
        "source": Source.CALLBACK,
        "provider": "ccpayment",
        "account": "shop",
        "merchant_ref": "order-1001",
        "dedup_key": f"ccpayment:shop:credit:{record_id}",
        "observed_at": AT,
        "provider_ref": "order-77",
        "provider_status": "success",
        "record_id": record_id,
        "amount": Decimal(amount),
        "amount_due": DUE,
        "currency": "USDT",
    }
    base.update(fields)
    return Observation(**base)


def status(record_id: str, value: Status | None = Status.PENDING, **fields: Any) -> Observation:
    base: dict[str, Any] = {
        "kind": Kind.STATUS,
        "source": Source.CALLBACK,
        "provider": "ccpayment",
        "account": "shop",
        "merchant_ref": "order-1001",
        "dedup_key": f"ccpayment:shop:tx:{record_id}:pending",
        "observed_at": AT,
        "provider_ref": "order-77",
        "status": value,
        "provider_status": "pending",
        "record_id": record_id,
        "amount_due": DUE,
        "currency": "USDT",
    }
    base.update(fields)
    return Observation(**base)


def fold(observations: Iterable[Observation]) -> PaymentState:
    return folding.fold(list(observations))


def statuses(observations: Iterable[Observation]) -> list[Status | None]:
    """The status after each observation arrives, in the given order."""
    arrived = list(observations)
    return [fold(arrived[: i + 1]).status for i in range(len(arrived))]


def test_initial_state() -> None:
    state = PaymentState()
    assert state.status is None
    assert state.amount_paid == Decimal(0)
    assert state.anomaly is None


def test_single_full_credit_is_paid() -> None:
    state = fold([credit("r1", DUE)])
    assert state.status is Status.PAID
    assert state.amount_paid == DUE
    assert state.amount == DUE
    assert state.currency == "USDT"
    assert state.provider_ref == "order-77"
    assert state.anomaly is None


def test_partial_then_rest_is_underpaid_then_paid() -> None:
    observations = [credit("r1", "10"), credit("r2", "15.012")]
    assert statuses(observations) == [Status.UNDERPAID, Status.PAID]
    state = fold(observations)
    assert state.amount_paid == Decimal("25.012")


def test_more_than_due_is_overpaid() -> None:
    assert fold([credit("r1", "25.013")]).status is Status.OVERPAID
    assert fold([credit("r1", "20"), credit("r2", "10")]).status is Status.OVERPAID


def test_partial_is_underpaid() -> None:
    state = fold([credit("r1", "0.000000000000000001")])
    assert state.status is Status.UNDERPAID
    assert state.amount_paid == Decimal("0.000000000000000001")


def test_zero_credit_changes_no_status() -> None:
    assert fold([credit("r1", "0")]).status is None


def test_pending_status_alone_is_pending() -> None:
    state = fold([status("r1")])
    assert state.status is Status.PENDING
    assert state.amount == DUE
    assert state.amount_paid == Decimal(0)


def test_unknown_status_changes_nothing_but_terms() -> None:
    state = fold([status("r1", None)])
    assert state.status is None
    assert state.amount == DUE


def test_pending_after_paid_keeps_paid() -> None:
    observations = [credit("r1", DUE), status("r2")]
    assert statuses(observations) == [Status.PAID, Status.PAID]


def test_status_never_lowers_rank() -> None:
    for lower in [s for s in Status if s.rank < Status.PAID.rank]:
        state = fold([credit("r1", DUE), status("r9", lower)])
        assert state.status is not None
        assert state.status.rank >= Status.PAID.rank
        # authorized + paid means the held funds were captured
        expected = Status.CAPTURED if lower is Status.AUTHORIZED else Status.PAID
        assert state.status is expected


def test_higher_provider_status_wins_over_money() -> None:
    state = fold([credit("r1", "10"), status("r2", Status.REFUNDED)])
    assert state.status is Status.REFUNDED
    assert state.amount_paid == Decimal(10)


def test_credit_without_amount_due_is_underpaid_until_terms_known() -> None:
    observations = [credit("r1", DUE, amount_due=None), status("r2")]
    assert statuses(observations) == [Status.UNDERPAID, Status.PAID]


def test_money_status() -> None:
    assert money_status(PaymentState()) is None
    assert money_status(PaymentState(amount_paid=Decimal(1))) is Status.UNDERPAID
    assert money_status(PaymentState(amount=DUE, amount_paid=Decimal(1))) is Status.UNDERPAID
    assert money_status(PaymentState(amount=DUE, amount_paid=DUE)) is Status.PAID
    assert money_status(PaymentState(amount=DUE, amount_paid=DUE + 1)) is Status.OVERPAID


def test_different_currency_is_an_anomaly() -> None:
    state = fold([credit("r1", "1"), credit("r2", "1", currency="BTC")])
    assert state.anomaly == "currency_conflict"


def test_conflicting_terms_resolve_to_the_smaller_in_either_order() -> None:
    # The smallest amount due wins: money status then only rises as facts arrive.
    a = credit("r1", "1", amount_due=Decimal(10), currency="BTC", provider_ref="o-1")
    b = credit("r2", "1", amount_due=Decimal(20), currency="USDT", provider_ref="o-2")
    for order in ([a, b], [b, a]):
        state = fold(order)
        assert state.amount == Decimal(10)
        assert state.currency == "BTC"
        assert state.provider_ref == "o-1"
        assert state.anomaly == "amount_due_conflict,currency_conflict"
        assert state.amount_paid == Decimal(2)


def test_missing_terms_do_not_erase_known_ones() -> None:
    blank = status("r2", amount_due=None, currency=None, provider_ref=None)
    state = fold([credit("r1", "1"), blank])
    assert state.amount == DUE
    assert state.currency == "USDT"
    assert state.provider_ref == "order-77"
    assert state.anomaly is None


# --- order independence (design §5) ------------------------------------------------------

_AMOUNTS = st.decimals(min_value=0, max_value=30, places=3, allow_nan=False, allow_infinity=False)


@st.composite
def ccpayment_observations(draw: st.DrawFn) -> list[Observation]:
    """Distinct credits of one order (same amount_due) and optional pending statuses."""
    amounts = draw(st.lists(_AMOUNTS, min_size=1, max_size=6))
    refs = st.sampled_from([None, "order-77", "order-78"])
    observations = [
        credit(f"r{i}", amount, provider_ref=draw(refs)) for i, amount in enumerate(amounts)
    ]
    pending = draw(st.integers(min_value=0, max_value=3))
    observations += [
        status(f"p{i}", amount_due=draw(st.sampled_from([DUE, None])), provider_ref=draw(refs))
        for i in range(pending)
    ]
    return observations


@given(data=st.data())
def test_every_permutation_folds_to_the_same_state(data: st.DataObject) -> None:
    observations = data.draw(ccpayment_observations())
    reference = fold(observations)
    permuted = data.draw(st.permutations(observations))
    assert fold(permuted) == reference
    assert reference.amount_paid == sum((o.amount or 0 for o in observations), Decimal(0))


@given(data=st.data())
def test_rank_never_decreases_along_any_order(data: st.DataObject) -> None:
    observations = data.draw(ccpayment_observations())
    permuted = data.draw(st.permutations(observations))
    ranks = [s.rank for s in statuses(permuted) if s is not None]
    assert ranks == sorted(ranks)
    seen = statuses(permuted)
    # Once a status is known it stays known.
    first_known = next((i for i, s in enumerate(seen) if s is not None), len(seen))
    assert all(s is not None for s in seen[first_known:])


def test_conflicting_amount_due_folds_the_same_in_any_order() -> None:
    # design §5: "the folded state depends only on the set of observations, never on
    # their order". Two credits disagreeing on the amount due (an anomaly) must still fold
    # to one state whatever order they arrive in.
    a = credit("r1", "10", amount_due=Decimal("10"))
    b = credit("r2", "5", amount_due=Decimal("20"))
    assert fold([a, b]) == fold([b, a])


def test_two_conflicts_record_the_same_anomaly_in_any_order() -> None:
    a = credit("r1", "1", amount_due=Decimal("10"), currency="USDT")
    b = credit("r2", "1", amount_due=Decimal("20"), currency="USDT")
    c = credit("r3", "1", amount_due=Decimal("10"), currency="BTC")
    assert fold([a, b, c]).anomaly == fold([a, c, b]).anomaly


_STATUSES = st.sampled_from([None, *Status])


@st.composite
def any_observations(draw: st.DrawFn) -> list[Observation]:
    """Distinct observations of one payment whose terms may disagree (anomalies)."""
    count = draw(st.integers(min_value=1, max_value=6))
    observations = []
    for i in range(count):
        terms = {
            "amount_due": draw(st.sampled_from([None, Decimal(10), Decimal(20)])),
            "currency": draw(st.sampled_from([None, "USDT", "BTC"])),
            "provider_ref": draw(st.sampled_from([None, "a", "b"])),
        }
        if draw(st.booleans()):
            observations.append(credit(f"r{i}", draw(_AMOUNTS), **terms))
        else:
            observations.append(status(f"s{i}", draw(_STATUSES), **terms))
    return observations


@given(data=st.data())
def test_any_observation_set_folds_the_same_in_every_order(data: st.DataObject) -> None:
    # The design §5 invariant in full, anomalies included.
    observations = data.draw(any_observations())
    assert fold(data.draw(st.permutations(observations))) == fold(observations)


def test_a_provider_that_reports_paid_as_a_status_has_paid_the_amount_due() -> None:
    paid = fold([status("a", Status.PAID, dedup_key="k:paid")])
    assert (paid.status, paid.amount_paid) == (Status.PAID, DUE)
    refunded = fold([status("a", Status.REFUNDED, dedup_key="k:refunded")])
    assert refunded.amount_paid == DUE


def test_a_status_short_of_paid_in_full_credits_nothing() -> None:
    for value in (Status.PENDING, Status.AUTHORIZED, Status.UNDERPAID, Status.FAILED):
        assert fold([status("a", value, dedup_key=f"k:{value}")]).amount_paid == 0
    # Without a known amount due there is nothing to credit.
    assert fold([status("a", Status.PAID, amount_due=None)]).amount_paid == 0


def test_credits_received_are_never_replaced_by_the_amount_due() -> None:
    state = fold([credit("r1", "10"), status("a", Status.PAID, dedup_key="k:paid")])
    assert state.amount_paid == Decimal("10")


def test_the_state_modules_import_no_io_library() -> None:
    # Conventions habit 3: the fold is pure. A fresh interpreter shows what it pulls in.
    probe = (
        "import sys, paysync.state.fold\n"
        "io = {'asyncpg', 'aio_pika', 'aiormq', 'aiohttp', 'structlog', 'prometheus_client'}\n"
        "print(sorted(m for m in sys.modules if m.split('.')[0] in io))"
    )
    done = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, check=True)
    assert done.stdout.strip() == "[]"
