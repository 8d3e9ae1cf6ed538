"""The ingest hot path's cheap parts: the accepted-callback log sample, request ids, the
metrics' remembered children, and what ``ingest.processes`` means."""

from __future__ import annotations

import pytest
from pydantic import ValidationError

from ingest.http import AcceptedLog, RequestIds
from paysync.metrics import Metrics
from paysync.settings import IngestSettings, usable_cpus


def test_accepted_log_samples_the_first_and_then_every_nth() -> None:
    sample = AcceptedLog(3, debug=False)
    assert [sample.due() for _ in range(7)] == [True, False, False, True, False, False, True]


def test_accepted_log_every_one() -> None:
    sample = AcceptedLog(1, debug=False)
    assert all(sample.due() for _ in range(5))


def test_request_ids_are_distinct_within_and_across_processes() -> None:
    first, second = RequestIds(), RequestIds()
    ids = {first.new() for _ in range(1000)} | {second.new() for _ in range(1000)}
    assert len(ids) == 2000


def test_metrics_child_is_the_labelled_child() -> None:
    metrics = Metrics()
    child = metrics.child(metrics.callbacks, "ccpayment", "shop", "accepted", "")
    assert child is metrics.child(metrics.callbacks, "ccpayment", "shop", "accepted", "")
    child.inc()
    metrics.child(metrics.callbacks, "ccpayment", "shop", "rejected", "bad_signature").inc()
    text = metrics.render().decode()
    assert 'outcome="accepted",provider="ccpayment",reason=""} 1.0' in text
    assert 'outcome="rejected",provider="ccpayment",reason="bad_signature"} 1.0' in text


def test_processes_setting() -> None:
    assert IngestSettings().processes == 1
    assert IngestSettings().process_count() == 1
    assert IngestSettings(processes=3).process_count() == 3
    assert IngestSettings(processes="auto").process_count() == usable_cpus() >= 1
    for wrong in (0, "many", 1000):
        with pytest.raises(ValidationError):
            IngestSettings(processes=wrong)
