"""When to check a payment next: the ladder (pure; no I/O).

A payment is checked a minute after paysync first hears of it (the column's default), then
after each check at the next step of the ladder — by default 1 m, 5 m, 15 m, 1 h, 6 h,
24 h, then daily — and once more exactly at its ``expires_at``, where the check confirms
the deadline passed without full payment and the reconciler adds a ``clock`` observation.
A payment is no longer checked once it is settled (paid in full, captured, refunded,
charged back, cancelled) or once it is older than ``give_up_after``.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta

from schemas.status import Status

# Nothing a status API can still say changes what fulfilment does with these (a refund or
# chargeback of a settled payment arrives by callback, or an operator's job finds it).
SETTLED = frozenset(
    {
        Status.PAID,
        Status.CAPTURED,
        Status.OVERPAID,
        Status.PARTIALLY_REFUNDED,
        Status.REFUNDED,
        Status.CHARGED_BACK,
        Status.CANCELLED,
    }
)


@dataclass(frozen=True, slots=True, kw_only=True)
class Ladder:
    steps: tuple[float, ...] = (60, 300, 900, 3600, 6 * 3600, 24 * 3600)
    give_up_after: float = 7 * 24 * 3600

    def next_check(
        self,
        *,
        status: Status | None,
        attempts: int,
        created_at: datetime,
        expires_at: datetime | None,
        now: datetime,
    ) -> datetime | None:
        """The next check after ``attempts`` checks (1 after the first), or None."""
        if status in SETTLED or (now - created_at).total_seconds() > self.give_up_after:
            return None
        step = self.steps[min(max(attempts, 1), len(self.steps)) - 1]
        at = now + timedelta(seconds=step)
        if expires_at is not None and now < expires_at < at:
            return expires_at
        return at


def deadline_passed(expires_at: datetime | None, now: datetime) -> bool:
    return expires_at is not None and now >= expires_at
