"""The benchmark's pure helpers: rates, windows, bounds and verdicts (no timing involved)."""

from __future__ import annotations

import math

import pytest

from bench.e2e import rates
from bench.load import percentile_ms
from bench.reconciler import Account
from bench.rss import Recorder, megabytes
from bench.status_sim import max_in_window, rate_of
from bench.targets import at_least, below, ratio, verdict


def test_rate_of_counts_intervals_between_first_and_last() -> None:
    assert rate_of([10.0, 10.5, 11.0]) == pytest.approx(2.0)
    assert rate_of([3.0]) is None
    assert rate_of([]) is None
    assert rate_of([5.0, 5.0]) is None


def test_max_in_window_is_half_open_and_sliding() -> None:
    # Whole-second buckets would see at most 2 here; a sliding window sees 4.
    stamps = [0.6, 0.7, 1.1, 1.2, 1.7]
    assert max_in_window(stamps) == 4
    # A stamp exactly one width later is outside the window.
    assert max_in_window([0.0, 1.0, 2.0]) == 1
    assert max_in_window([]) == 0


def test_account_bound_is_concurrency_over_latency_capped_by_rate() -> None:
    assert Account("a", concurrency=4, rate=1000.0).bound(0.02) == pytest.approx(200.0)
    assert Account("b", concurrency=8, rate=50.0).bound(0.02) == pytest.approx(50.0)
    assert Account("c", concurrency=4, rate=1000.0).payments(0.02, 3.0) == 600
    assert Account("d", concurrency=1, rate=1.0).payments(0.02, 1.0) == 20  # a floor


def test_e2e_adds_half_of_the_workers_max_only_when_it_is_the_slower_part() -> None:
    assert rates(500.0, None) == [("half of ingest's max", 500.0)]
    assert rates(500.0, 1200.0) == [("half of ingest's max", 500.0)]
    assert rates(500.0, 300.0) == [
        ("half of ingest's max", 500.0),
        ("half of the worker's max", 150.0),
    ]


def test_percentile_of_a_lost_message_is_infinite() -> None:
    ordered = [0.001 * i for i in range(1, 100)] + [math.inf]
    p50 = percentile_ms(ordered, 50)
    assert p50 == pytest.approx(50.0)
    assert percentile_ms(ordered, 99) == pytest.approx(99.0)
    assert percentile_ms(ordered, 100) == math.inf
    assert percentile_ms([], 99) is None


def test_verdict_helpers() -> None:
    assert ratio(3.0, 4.0) == pytest.approx(0.75)
    assert ratio(None, 4.0) is None
    assert ratio(3.0, 0.0) is None
    assert at_least(0.8, 0.8) is True
    assert at_least(None, 0.8) is None
    assert below(100.0, 100.0) is False
    assert below(math.inf, 100.0) is False
    assert [verdict(v) for v in (True, False, None)] == ["met", "MISSED", "unknown"]


def test_recorder_keeps_the_highest_peak_per_role_and_side() -> None:
    recorder = Recorder()
    assert recorder.note("worker", "paysync", -1, "pair 2") is None  # no such process
    assert recorder.paysync_mb("worker") is None
    assert megabytes(146_485) == pytest.approx(150.0, abs=0.01)
