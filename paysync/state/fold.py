"""The payment state as a fold over the *set* of its observations (design §5). Pure.

``fold(observations)`` depends only on which observations there are: duplicates (same
``dedup_key``) count once and the order of arrival is irrelevant, because every part of
the state is a set function:

- terms (amount due, currency, provider reference, expiry): the smallest value reported;
  different reports are an anomaly. The smallest amount due is also the choice that keeps
  the money status monotone;
- money: ``amount_paid`` is the sum of distinct credits, ``amount_refunded`` of refunds;
- the status is the highest rank among what providers said (``status`` observations,
  already mapped to canonical statuses by the adapter) and what the facts imply: money
  (underpaid / paid / overpaid), a passed deadline (``clock``: expired / overdue), refunds,
  chargebacks, and "paid after authorized" meaning captured.

Each derivation only rises when an observation is added, so applying observations one by
one never lowers the rank either (the property tests check both).
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime
from decimal import Decimal
from typing import TypeVar

from schemas.observation import Kind, Observation
from schemas.status import Status

ZERO = Decimal(0)
_T = TypeVar("_T", Decimal, str, datetime)

# Facts that say the customer's money reached the merchant.
_SUCCESS = frozenset({Status.PAID, Status.CAPTURED, Status.OVERPAID})


@dataclass(frozen=True, slots=True, kw_only=True)
class Policy:
    """What a provider's statuses mean beyond the mapping (data beside each provider)."""

    # True when a failed order can never succeed later (money after it is an anomaly).
    failure_is_final: bool = False


DEFAULT_POLICY = Policy()


@dataclass(frozen=True, slots=True, kw_only=True)
class PaymentState:
    status: Status | None = None
    provider_ref: str | None = None
    amount: Decimal | None = None
    currency: str | None = None
    expires_at: datetime | None = None
    amount_paid: Decimal = ZERO
    amount_refunded: Decimal = ZERO
    late: bool = False
    anomaly: str | None = None


def fold(observations: Iterable[Observation], policy: Policy = DEFAULT_POLICY) -> PaymentState:
    """The state implied by a set of observations of one payment."""
    facts = _distinct(observations)
    anomalies: set[str] = set()
    amount = _least((o.amount_due for o in facts), "amount_due_conflict", anomalies)
    terms = PaymentState(
        amount=amount,
        currency=_least((o.currency for o in facts), "currency_conflict", anomalies),
        provider_ref=_least((o.provider_ref for o in facts), None, anomalies),
        expires_at=_least((o.expires_at for o in facts), None, anomalies),
        amount_paid=sum((o.amount or ZERO for o in facts if o.kind is Kind.CREDIT), ZERO),
        amount_refunded=sum((o.amount or ZERO for o in facts if o.kind is Kind.REFUND), ZERO),
    )
    said = {o.status for o in facts if o.kind is Kind.STATUS and o.status is not None}
    implied = _implied(terms, facts)
    candidates = said | implied
    if Status.AUTHORIZED in candidates and candidates & {Status.PAID}:
        candidates.add(Status.CAPTURED)
    anomalies |= _incompatible(candidates, terms, policy)
    return PaymentState(
        status=max(candidates, key=lambda s: s.rank) if candidates else None,
        provider_ref=terms.provider_ref,
        amount=terms.amount,
        currency=terms.currency,
        expires_at=terms.expires_at,
        amount_paid=_amount_paid(terms, said),
        amount_refunded=terms.amount_refunded,
        late=_late(terms, facts),
        anomaly=",".join(sorted(anomalies)) or None,
    )


def _amount_paid(terms: PaymentState, said: set[Status]) -> Decimal:
    """Credits received; or, when a provider reports outcomes as statuses and never as
    credits (PayCore, HDFC, Plural), the amount due once it says the order was paid."""
    if terms.amount_paid == ZERO and terms.amount is not None and said & _PAID_IN_FULL:
        return terms.amount
    return terms.amount_paid


def money_status(state: PaymentState, *, deadline_passed: bool = False) -> Status | None:
    """The status the money alone implies (None when nothing was received)."""
    if state.amount_paid <= ZERO:
        return Status.EXPIRED if deadline_passed else None
    if state.amount is None or state.amount_paid < state.amount:
        return Status.OVERDUE if deadline_passed else Status.UNDERPAID
    if state.amount_paid == state.amount:
        return Status.PAID
    return Status.OVERPAID


def _implied(terms: PaymentState, facts: list[Observation]) -> set[Status]:
    implied: set[Status] = set()
    # A clock observation is the reconciler's statement that the valid period is over
    # (it emits one only after the deadline and a confirming poll). Judging it against an
    # expiry that might arrive later would let a status fall back, so it stands alone.
    deadline_passed = any(o.kind is Kind.CLOCK for o in facts)
    money = money_status(terms, deadline_passed=deadline_passed)
    if money is not None:
        implied.add(money)
    if terms.amount_refunded > ZERO:
        # Only against a known amount due: it only falls as facts arrive, so "refunded"
        # can never turn back into "partially refunded" when more facts show up.
        full = terms.amount is not None and terms.amount_refunded >= terms.amount
        implied.add(Status.REFUNDED if full else Status.PARTIALLY_REFUNDED)
    if any(o.kind is Kind.CHARGEBACK for o in facts):
        implied.add(Status.CHARGED_BACK)
    return implied


# Statuses a provider only reports about an order that was paid in full.
_PAID_IN_FULL = frozenset(
    {Status.PAID, Status.CAPTURED, Status.PARTIALLY_REFUNDED, Status.REFUNDED, Status.CHARGED_BACK}
)


def _incompatible(candidates: set[Status], terms: PaymentState, policy: Policy) -> set[str]:
    found = set()
    if Status.CANCELLED in candidates and candidates & _SUCCESS:
        found.add("cancelled_and_paid")
    if (
        policy.failure_is_final
        and Status.FAILED in candidates
        and (candidates & _SUCCESS or terms.amount_paid > ZERO)
    ):
        found.add("paid_after_final_failure")
    return found


def _late(terms: PaymentState, facts: list[Observation]) -> bool:
    """Paid in full only after the valid period ended (judged by observation times)."""
    if terms.expires_at is None:
        return False
    paid_at: list[datetime] = [
        o.observed_at for o in facts if o.kind is Kind.STATUS and o.status in _SUCCESS
    ]
    if terms.amount is not None:
        running = ZERO
        for credit in sorted((o for o in facts if o.kind is Kind.CREDIT), key=_when):
            running += credit.amount or ZERO
            if running >= terms.amount:
                paid_at.append(credit.observed_at)
                break
    return bool(paid_at) and min(paid_at) > terms.expires_at


def _distinct(observations: Iterable[Observation]) -> list[Observation]:
    """One observation per dedup key (the first by a fixed order), in a fixed order.
    Hints are not facts: a return URL never changes a payment (design §6 rule 6)."""
    chosen: dict[str, Observation] = {}
    for obs in sorted((o for o in observations if o.kind is not Kind.HINT), key=_when):
        chosen.setdefault(obs.dedup_key, obs)
    return list(chosen.values())


def _when(obs: Observation) -> tuple[datetime, str]:
    return obs.observed_at, obs.dedup_key


def _least(values: Iterable[_T | None], conflict: str | None, anomalies: set[str]) -> _T | None:
    present = {v for v in values if v is not None}
    if not present:
        return None
    if conflict is not None and len(present) > 1:
        anomalies.add(conflict)
    return min(present)
