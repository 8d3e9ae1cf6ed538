"""What one receipt does to a payment: one pure decision, taken under the payment's lock.

``decide(before, receipts, new, policy)`` is given the stored state, every receipt already
recorded for the payment (duplicates included) and the new one. The new state is the fold
of all of them, so the stored row is the fold of the set of receipts, whatever order they
arrived in. The store only writes what the decision says (design §5).

Outcomes (the inbox's ``outcome`` column, and the worker's metrics):

- ``applied``: the payment row changed;
- ``anomaly``: it brought an anomaly the payment did not have (the row changed too);
- ``stale``: a new fact that changed nothing;
- ``duplicate``: another receipt of a known fact, changing nothing;
- ``hint``: a verified return URL; never folded, it asks for a poll;
- ``unmatched_hint``: a hint about a payment paysync does not know; dropped.

Events: a status change emits ``payment.status_changed``; an anomaly that is new while
the status stays emits ``payment.flagged`` (``Decision.event``). No change, no event.

``refold`` is the same decision for a stored row against its own receipts (rows written
before the store folded every receipt).
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, replace
from enum import StrEnum

from paysync.state.fold import DEFAULT_POLICY, PaymentState, Policy, fold
from schemas.event import EventType
from schemas.observation import Kind, Observation
from schemas.status import Status


class ReceiptOutcome(StrEnum):
    APPLIED = "applied"
    STALE = "stale"
    ANOMALY = "anomaly"
    DUPLICATE = "duplicate"
    HINT = "hint"
    UNMATCHED_HINT = "unmatched_hint"


Transition = tuple[Status | None, Status]


@dataclass(frozen=True, slots=True, kw_only=True)
class Decision:
    outcome: ReceiptOutcome
    after: PaymentState
    # (from, to) when the status changes: a transition row and a status_changed event.
    transition: Transition | None = None
    # Anomalies the payment did not have before, sorted.
    new_anomalies: tuple[str, ...] = ()
    # (stored status, the fold's) when the stored status was held against a lower one, or
    # none at all. The fold never lowers a rank by itself; receipts of one fact that
    # contradict each other, or a defect, can: the caller reports it loudly.
    regression: tuple[Status, Status | None] | None = None

    @property
    def changed(self) -> bool:
        """Whether the payment row must be written."""
        return self.outcome in (ReceiptOutcome.APPLIED, ReceiptOutcome.ANOMALY)

    @property
    def event(self) -> EventType | None:
        """The event to emit: a status change; else a new anomaly while the status stays.
        A payment without a status has had no event yet: its first one carries them."""
        if self.transition is not None:
            return EventType.STATUS_CHANGED
        if self.new_anomalies and self.after.status is not None:
            return EventType.FLAGGED
        return None


def decide(
    before: PaymentState | None,
    receipts: Iterable[Observation],
    new: Observation,
    policy: Policy = DEFAULT_POLICY,
) -> Decision:
    """The decision for receipt ``new``; ``before`` is None when paysync has no such
    payment (only hints are decided then: a fact creates its payment)."""
    if new.kind is Kind.HINT:
        if before is None:
            return Decision(outcome=ReceiptOutcome.UNMATCHED_HINT, after=PaymentState())
        return Decision(outcome=ReceiptOutcome.HINT, after=before)
    known = list(receipts)
    repeat = any(r.dedup_key == new.dedup_key for r in known)
    return _settle(before or PaymentState(), fold([*known, new], policy), repeat=repeat)


def refold(
    before: PaymentState, receipts: Iterable[Observation], policy: Policy = DEFAULT_POLICY
) -> Decision:
    """The decision that makes a stored row the fold of its receipts again (``duplicate``
    when it already is)."""
    return _settle(before, fold(receipts, policy), repeat=True)


def _settle(before: PaymentState, folded: PaymentState, *, repeat: bool) -> Decision:
    after, regression = _never_lower(before, folded)
    new_anomalies = tuple(sorted(set(after.anomalies) - set(before.anomalies)))
    if new_anomalies:
        outcome = ReceiptOutcome.ANOMALY
    elif after != before:
        outcome = ReceiptOutcome.APPLIED
    else:
        outcome = ReceiptOutcome.DUPLICATE if repeat else ReceiptOutcome.STALE
    transition = None
    if after.status is not None and after.status != before.status:
        transition = (before.status, after.status)
    return Decision(
        outcome=outcome,
        after=after,
        transition=transition,
        new_anomalies=new_anomalies,
        regression=regression,
    )


def _never_lower(
    before: PaymentState, after: PaymentState
) -> tuple[PaymentState, tuple[Status, Status | None] | None]:
    """A stored status never moves down, nor back to none: it is held."""
    kept = before.status
    if kept is None or (after.status is not None and after.status.rank >= kept.rank):
        return after, None
    return replace(after, status=kept), (kept, after.status)
