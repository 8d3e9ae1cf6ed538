"""The payment state as a fold over observations. Pure: imports no I/O library.

``apply(state, observation)`` must give the same final state for any order of the same
set of observations (duplicates are removed before, by the inbox key). This is the
walking-skeleton fold: money credits are summed and compared with the amount due
(pending / underpaid / paid / overpaid), provider statuses are taken by rank, and the
status never moves to a lower rank.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from decimal import Decimal
from typing import TypeVar

from schemas.observation import Kind, Observation
from schemas.status import Status, higher

ZERO = Decimal(0)
_T = TypeVar("_T", Decimal, str)


@dataclass(frozen=True, slots=True, kw_only=True)
class PaymentState:
    status: Status | None = None
    provider_ref: str | None = None
    amount: Decimal | None = None
    currency: str | None = None
    amount_paid: Decimal = ZERO
    amount_refunded: Decimal = ZERO
    late: bool = False
    anomaly: str | None = None


def apply(state: PaymentState, obs: Observation) -> PaymentState:
    state = _terms(state, obs)
    if obs.kind is Kind.CREDIT and obs.amount is not None:
        state = replace(state, amount_paid=state.amount_paid + obs.amount)
    candidates = [s for s in (state.status, obs.status, money_status(state)) if s is not None]
    if not candidates:
        return state
    best = candidates[0]
    for candidate in candidates[1:]:
        best = higher(best, candidate)
    return replace(state, status=best)


def money_status(state: PaymentState) -> Status | None:
    """The status the money alone implies, or None when nothing was received."""
    if state.amount_paid <= ZERO:
        return None
    if state.amount is None:
        return Status.UNDERPAID
    if state.amount_paid < state.amount:
        return Status.UNDERPAID
    if state.amount_paid == state.amount:
        return Status.PAID
    return Status.OVERPAID


def _terms(state: PaymentState, obs: Observation) -> PaymentState:
    """Amount due, currency and provider reference, chosen so that arrival order cannot
    matter: the smallest value seen wins. For the amount due that is also the choice that
    keeps the status monotone (the money status only rises as credits add up and the due
    amount only falls), so conflicting reports never lower a status; they are recorded
    as anomalies for an operator."""
    anomalies: set[str] = set()
    amount = _least(state.amount, obs.amount_due)
    if None not in (state.amount, obs.amount_due) and state.amount != obs.amount_due:
        anomalies.add("amount_due_conflict")
    currency = _least(state.currency, obs.currency)
    if None not in (state.currency, obs.currency) and state.currency != obs.currency:
        anomalies.add("currency_conflict")
    return replace(
        state,
        amount=amount,
        currency=currency,
        provider_ref=_least(state.provider_ref, obs.provider_ref),
        anomaly=_with_anomalies(state.anomaly, anomalies),
    )


def _least(a: _T | None, b: _T | None) -> _T | None:
    if a is None:
        return b
    if b is None:
        return a
    return min(a, b)


def _with_anomalies(current: str | None, new: set[str]) -> str | None:
    """Anomaly codes as a sorted, comma-separated set: the same whatever came first."""
    if not new:
        return current
    codes = set(current.split(",")) if current else set()
    return ",".join(sorted(codes | new))
