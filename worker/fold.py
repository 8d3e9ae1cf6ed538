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

from schemas.observation import Kind, Observation
from schemas.status import Status, higher

ZERO = Decimal(0)


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
    """Amount due, currency and provider reference: first known value wins, and two
    different values are an anomaly resolved deterministically (the larger), so the
    result does not depend on arrival order."""
    anomaly = state.anomaly
    amount = state.amount
    if obs.amount_due is not None:
        if amount is not None and amount != obs.amount_due:
            anomaly = anomaly or "amount_due_conflict"
        amount = obs.amount_due if amount is None else max(amount, obs.amount_due)
    currency = state.currency
    if obs.currency is not None:
        if currency is not None and currency != obs.currency:
            anomaly = anomaly or "currency_conflict"
        currency = obs.currency if currency is None else max(currency, obs.currency)
    provider_ref = state.provider_ref
    if obs.provider_ref is not None:
        provider_ref = (
            obs.provider_ref if provider_ref is None else max(provider_ref, obs.provider_ref)
        )
    return replace(
        state, amount=amount, currency=currency, provider_ref=provider_ref, anomaly=anomaly
    )
