"""Reading values out of a Prometheus text exposition, failing loudly on a metric that is
not there (a typo or a renamed metric must not make ``== 0`` pass)."""

from __future__ import annotations

from prometheus_client.parser import text_string_to_metric_families


class MissingMetric(AssertionError):
    """The exposition has no such metric, or no sample with those labels."""


def sample(exposition: str, name: str, **labels: str) -> float:
    """The value of ``name`` (a sample name: ``paysync_callbacks_total``): the sum of its
    samples whose labels include ``labels``. Raises ``MissingMetric`` when none matches."""
    found = _matching(exposition, name, labels)
    if not found:
        raise MissingMetric(f"no sample {name}{labels or ''} in the exposition")
    return sum(found)


def count(exposition: str, name: str, **labels: str) -> float:
    """Like :func:`sample`, except that a labelled metric the exposition declares but has
    not yet counted with these labels is 0 (a labelled counter has no sample before its
    first increment): for polls that wait for a counter to move. A metric that is not
    declared at all still raises ``MissingMetric``."""
    found = _matching(exposition, name, labels)
    if found:
        return sum(found)
    if not _declared(exposition, name):
        raise MissingMetric(f"no metric {name} declared in the exposition")
    return 0.0


def _matching(exposition: str, name: str, labels: dict[str, str]) -> list[float]:
    return [
        float(s.value)
        for family in text_string_to_metric_families(exposition)
        for s in family.samples
        if s.name == name and all(s.labels.get(k) == v for k, v in labels.items())
    ]


def _declared(exposition: str, name: str) -> bool:
    families = {f.name for f in text_string_to_metric_families(exposition)}
    # A counter's family drops the sample's _total; a histogram's samples add suffixes.
    stems = {name, name.removesuffix("_total")}
    return bool(stems & families) or any(
        name.startswith(f"{family}_") and name.endswith(("_bucket", "_count", "_sum"))
        for family in families
    )
