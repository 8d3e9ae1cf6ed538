"""tests/support/metrics.py fails loudly: a metric that is not there is never 0."""

from __future__ import annotations

import pytest

from paysync.metrics import Metrics
from tests.support.metrics import MissingMetric, count, sample


def exposition() -> str:
    metrics = Metrics()
    metrics.callbacks.labels("hdfc", "shop", "accepted", "").inc()
    metrics.callbacks.labels("hdfc", "other", "accepted", "").inc(2)
    return metrics.render().decode()


def test_a_sample_is_the_sum_of_the_matching_ones() -> None:
    text = exposition()
    assert sample(text, "paysync_callbacks_total", provider="hdfc", account="shop") == 1
    assert sample(text, "paysync_callbacks_total", outcome="accepted") == 3
    assert sample(text, "paysync_outbox_backlog") == 0  # a gauge is always there


@pytest.mark.parametrize(
    ("name", "labels"),
    [
        ("paysync_callback_total", {}),  # a typo
        ("paysync_callbacks_total", {"outcome": "rejected"}),  # never counted
        ("paysync_callbacks_total", {"provider": "hdfc", "acount": "shop"}),  # a label typo
    ],
)
def test_a_missing_sample_raises(name: str, labels: dict[str, str]) -> None:
    with pytest.raises(MissingMetric):
        sample(exposition(), name, **labels)


def test_count_is_zero_only_for_a_declared_metric_not_yet_counted() -> None:
    text = exposition()
    assert count(text, "paysync_callbacks_total", outcome="rejected") == 0
    assert count(text, "paysync_transitions_total", source="reconciler") == 0
    assert count(text, "paysync_relay_latency_seconds_count") == 0
    assert count(text, "paysync_callbacks_total", outcome="accepted") == 3
    with pytest.raises(MissingMetric):
        count(text, "paysync_transition_total")
