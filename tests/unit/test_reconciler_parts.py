"""The reconciler's pure parts: the check ladder, the rate limiter, durations."""

from __future__ import annotations

import itertools
import math
from datetime import UTC, datetime, timedelta

import pytest
from hypothesis import given
from hypothesis import strategies as st

from paysync.rate import RateLimiter
from reconciler.job import parse_duration
from reconciler.schedule import SETTLED, Ladder
from schemas.status import Status

T0 = datetime(2026, 11, 21, 10, 0, tzinfo=UTC)
LADDER = Ladder(steps=(60, 300, 900), give_up_after=86400)


def _gap(attempts: int) -> float:
    at = LADDER.next_check(
        status=Status.PENDING, attempts=attempts, created_at=T0, expires_at=None, now=T0
    )
    assert at is not None
    return (at - T0).total_seconds()


def test_checks_climb_the_ladder_and_stay_on_its_last_step() -> None:
    gaps = [_gap(n) for n in (1, 2, 3, 4, 10)]
    assert gaps == [60, 300, 900, 900, 900]


def test_the_deadline_gets_its_own_check() -> None:
    expires = T0 + timedelta(seconds=100)
    at = LADDER.next_check(
        status=Status.PENDING, attempts=3, created_at=T0, expires_at=expires, now=T0
    )
    assert at == expires
    # Once past it, the ladder goes on (late money is still possible).
    later = expires + timedelta(seconds=1)
    at = LADDER.next_check(
        status=Status.EXPIRED, attempts=4, created_at=T0, expires_at=expires, now=later
    )
    assert at == later + timedelta(seconds=900)


@pytest.mark.parametrize("status", sorted(SETTLED, key=lambda s: str(s)))
def test_a_settled_payment_is_not_checked_again(status: Status) -> None:
    assert (
        LADDER.next_check(status=status, attempts=1, created_at=T0, expires_at=None, now=T0) is None
    )


def test_checks_stop_after_give_up() -> None:
    late = T0 + timedelta(seconds=86401)
    assert (
        LADDER.next_check(status=None, attempts=9, created_at=T0, expires_at=None, now=late) is None
    )


class Clock:
    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


@given(
    rate=st.integers(min_value=1, max_value=200) | st.floats(min_value=0.5, max_value=200),
    n=st.integers(min_value=2, max_value=200),
)
def test_reserved_starts_never_put_more_than_the_rate_in_any_second(rate: float, n: int) -> None:
    clock = Clock()
    limiter = RateLimiter(rate, clock=clock)
    starts = [clock.now + limiter.reserve() for _ in range(n)]
    for i, start in enumerate(starts):
        in_window = [s for s in starts[i:] if s < start + 1.0]
        # Integer rates: never more than the rate; others: never more than rounded up.
        assert len(in_window) <= math.ceil(rate)


@given(lateness=st.lists(st.floats(min_value=0, max_value=0.2), min_size=2, max_size=40))
async def test_starts_a_busy_loop_delayed_never_bunch_up_with_the_next(
    lateness: list[float],
) -> None:
    clock = Clock()
    late = iter(lateness)

    async def oversleep(seconds: float) -> None:
        clock.now += seconds + next(late, 0.0)  # the loop wakes the waiter late

    limiter = RateLimiter(10, clock=clock, sleep=oversleep)
    starts = []
    for _ in lateness:
        await limiter.wait()
        starts.append(clock.now)
    gaps = [b - a for a, b in itertools.pairwise(starts)]
    assert all(gap >= 0.1 for gap in gaps), gaps


def test_an_idle_limiter_lets_the_next_request_go_at_once() -> None:
    clock = Clock()
    limiter = RateLimiter(2, clock=clock)
    assert limiter.reserve() == 0
    assert limiter.reserve() == pytest.approx(0.51)
    clock.now += 10
    assert limiter.reserve() == 0


@pytest.mark.parametrize(
    ("text", "seconds"), [("90s", 90), ("30m", 1800), ("24h", 86400), ("7d", 604800)]
)
def test_durations(text: str, seconds: int) -> None:
    assert parse_duration(text) == timedelta(seconds=seconds)


@pytest.mark.parametrize("text", ["", "24", "h", "1.5h", "-1h", "2w"])
def test_bad_durations_say_what_is_expected(text: str) -> None:
    with pytest.raises(ValueError, match="is not a duration"):
        parse_duration(text)
