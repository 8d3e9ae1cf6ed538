"""The payment state as a fold over the *set* of its receipts (design §5). Pure.

``fold(receipts)`` depends only on which receipts there are, never on their order. A
receipt is one source's report of one fact (its ``dedup_key``); a fact may be reported
several times, by several sources, at several times (a provider's retry, a callback and a
status-API poll of the same transfer). Every part of the state is a set function:

- one receipt stands for each fact: the earliest observed (ties broken by a fixed order of
  the receipts' content), so the time a fact happened does not depend on which report
  arrived first. Receipts of one fact that disagree on what it is (kind, status, amount)
  are a ``receipt_conflict`` anomaly;
- terms (amount due, currency, provider reference, expiry): the smallest value any receipt
  reported; different reports are an anomaly. The smallest amount due is also the choice
  that keeps the money status monotone;
- money: ``amount_paid`` is the sum of distinct credits, ``amount_refunded`` of refunds;
- the status is the highest rank among what providers said (``status`` observations,
  already mapped to canonical statuses by the adapter) and what the facts imply: money
  (underpaid / paid / overpaid), a passed deadline (``clock``: expired / overdue), refunds,
  chargebacks, and "paid after authorized" meaning captured.

Each derivation only rises as receipts are added (reports of one fact that contradict
each other aside: they are flagged), so applying receipts one by one never lowers the rank
either. The property tests check both, with reports of one fact from different sources at
different times, on both sides of a deadline.
"""

from __future__ import annotations

import json
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime
from decimal import Decimal
from typing import TypeVar

from schemas.money import exact
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
    # Comma-separated, sorted (the payments.anomaly column); see ``anomalies``.
    anomaly: str | None = None

    @property
    def anomalies(self) -> tuple[str, ...]:
        return tuple(self.anomaly.split(",")) if self.anomaly else ()


@exact  # sums of credits and refunds are never rounded (schemas/money.py)
def fold(observations: Iterable[Observation], policy: Policy = DEFAULT_POLICY) -> PaymentState:
    """The state implied by a set of receipts of one payment (hints are ignored)."""
    receipts = [o for o in observations if o.kind is not Kind.HINT]
    facts, conflicting = _facts(receipts)
    anomalies: set[str] = {"receipt_conflict"} if conflicting else set()
    amount = _least((o.amount_due for o in receipts), "amount_due_conflict", anomalies)
    terms = PaymentState(
        amount=amount,
        currency=_least((o.currency for o in receipts), "currency_conflict", anomalies),
        provider_ref=_least((o.provider_ref for o in receipts), None, anomalies),
        expires_at=_least((o.expires_at for o in receipts), None, anomalies),
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


def _facts(receipts: Iterable[Observation]) -> tuple[list[Observation], bool]:
    """One receipt per fact (the earliest), in a fixed order; and whether receipts of one
    fact disagree on what it is. Hints are not facts: a return URL never changes a
    payment (design §6 rule 6); the caller has left them out."""
    chosen: dict[str, Observation] = {}
    conflicting = False
    for obs in receipts:
        held = chosen.get(obs.dedup_key)
        if held is None:
            chosen[obs.dedup_key] = obs
            continue
        # The first receipt that differs from the others is compared with one of them.
        conflicting = conflicting or _substance(obs) != _substance(held)
        if _earlier(obs, held):
            chosen[obs.dedup_key] = obs
    return sorted(chosen.values(), key=_when), conflicting


def _substance(obs: Observation) -> tuple[object, ...]:
    """What a fact is; its reports may differ in source, time, provider wording, terms."""
    return obs.kind, obs.status, obs.amount


def _earlier(a: Observation, b: Observation) -> bool:
    """A total order of receipts: observation time, then content (only on a tie)."""
    if a.observed_at != b.observed_at:
        return a.observed_at < b.observed_at
    return _canonical(a) < _canonical(b)


def _canonical(obs: Observation) -> str:
    return json.dumps(obs.to_json(), sort_keys=True, default=str)


def _when(obs: Observation) -> tuple[datetime, str]:
    return obs.observed_at, obs.dedup_key


def _least(values: Iterable[_T | None], conflict: str | None, anomalies: set[str]) -> _T | None:
    present = {v for v in values if v is not None}
    if not present:
        return None
    if conflict is not None and len(present) > 1:
        anomalies.add(conflict)
    return min(present)
