"""Prometheus metrics of one process, in a registry of its own (no import-time globals).

With ``multiprocess_dir`` (``PROMETHEUS_MULTIPROC_DIR``, which also switches
prometheus_client to its multiprocess mode when the process starts), ``render`` sums every
process's files in that directory: ingest's processes under one supervisor answer
``/metrics`` for all of them.

Label values come from configuration or from fixed vocabularies (reason codes, statuses),
never from raw request input, so a caller cannot blow up their cardinality.
"""

from __future__ import annotations

from typing import Any, TypeVar, cast

from prometheus_client import CONTENT_TYPE_LATEST as CONTENT_TYPE
from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, generate_latest
from prometheus_client.multiprocess import MultiProcessCollector

UNKNOWN = "_unknown"

__all__ = ["CONTENT_TYPE", "UNKNOWN", "Metrics"]

M = TypeVar("M", Counter, Gauge, Histogram)


class Metrics:
    def __init__(self, multiprocess_dir: str | None = None) -> None:
        self._multiprocess_dir = multiprocess_dir
        # Labelled children by metric and label values (bounded: see above); labels()
        # takes a lock and builds a key on every call, which the hot paths skip.
        self._children: dict[tuple[int, tuple[str, ...]], Any] = {}
        self.registry = CollectorRegistry()
        r = self.registry
        self.callbacks = Counter(
            "paysync_callbacks_total",
            "Callbacks received, by provider, account, outcome"
            " (accepted|duplicate|rejected|unconfirmed) and reason code",
            ["provider", "account", "outcome", "reason"],
            registry=r,
        )
        self.verified_by = Counter(
            "paysync_callbacks_verified_total",
            "Accepted callbacks by the secret reference that verified them (rotation progress)",
            ["provider", "account", "secret_ref"],
            registry=r,
        )
        self.returns = Counter(
            "paysync_returns_total",
            "Customer return-URL redirects, by provider, account, outcome"
            " (accepted|rejected|unconfirmed) and reason code",
            ["provider", "account", "outcome", "reason"],
            registry=r,
        )
        self.publish_confirm_seconds = Histogram(
            "paysync_publish_confirm_seconds",
            "Time from publish to the broker's confirm, for inbound envelopes",
            buckets=(0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5),
            registry=r,
        )
        self.observations = Counter(
            "paysync_observations_total",
            "Observations handled by the worker, by provider and outcome"
            " (applied|stale|duplicate|anomaly|hint|unmatched_hint)",
            ["provider", "outcome"],
            registry=r,
        )
        self.transitions = Counter(
            "paysync_transitions_total",
            "Payment status changes, by provider, from, to and source",
            ["provider", "from_status", "to_status", "source"],
            registry=r,
        )
        self.unknown_statuses = Counter(
            "paysync_unknown_statuses_total",
            "Observations carrying a provider status paysync has no mapping for (recorded,"
            " changing nothing); the value is in the log event unknown_status_observed",
            ["provider"],
            registry=r,
        )
        self.dead_letters = Counter(
            "paysync_dead_letters_total",
            "Messages parked on paysync.dead, by error class",
            ["error"],
            registry=r,
        )
        self.events_published = Counter(
            "paysync_events_published_total",
            "Events confirmed by the broker on paysync.events; routed=false means no queue"
            " was bound",
            ["routed"],
            registry=r,
        )

        self.provider_api_seconds = Histogram(
            "paysync_provider_api_seconds",
            "Status-API call latency by provider and result (HTTP status, timeout, error)",
            ["provider", "code"],
            buckets=(0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30),
            registry=r,
        )
        self.provider_api_calls = Counter(
            "paysync_provider_api_calls_total",
            "Status-API calls by provider, account and result (HTTP status, timeout, error)",
            ["provider", "account", "code"],
            registry=r,
        )
        self.reconcile_checks = Counter(
            "paysync_reconcile_checks_total",
            "Payments checked against a provider's status API, by provider and outcome"
            " (in_sync|drift|not_found|failed)",
            ["provider", "outcome"],
            registry=r,
        )
        self.outbox_backlog = Gauge(
            "paysync_outbox_backlog",
            "Events committed but not yet confirmed on paysync.events (sampled by the relay)",
            registry=r,
        )
        self.outbox_oldest_age = Gauge(
            "paysync_outbox_oldest_age_seconds",
            "Age of the oldest unpublished event (0 when none; sampled by the relay)",
            registry=r,
        )
        self.relay_latency = Histogram(
            "paysync_relay_latency_seconds",
            "Time from an event's commit to the broker's confirm on paysync.events",
            buckets=(0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60),
            registry=r,
        )
        self.reconcile_due = Gauge(
            "paysync_reconcile_due_payments",
            "Payments whose next check is due now (sampled by the reconciler each round)",
            registry=r,
        )

    def child(self, metric: M, *labels: str) -> M:
        """``metric.labels(*labels)``, remembered."""
        key = (id(metric), labels)
        found = self._children.get(key)
        if found is None:
            found = self._children[key] = metric.labels(*labels)
        return cast(M, found)

    def render(self) -> bytes:
        if self._multiprocess_dir is None:
            return generate_latest(self.registry)
        registry = CollectorRegistry()
        MultiProcessCollector(registry, path=self._multiprocess_dir)  # type: ignore[no-untyped-call]
        return generate_latest(registry)
