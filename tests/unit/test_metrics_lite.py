"""The hot-path metrics are exposed exactly as prometheus_client's own Counter and Histogram would be."""

from __future__ import annotations

from hypothesis import given
from hypothesis import strategies as st
from prometheus_client import CollectorRegistry, Counter, Histogram, generate_latest

from dbfw import metrics

BOUNDS = (0.001, 0.01, 0.1, 1.0)


def _samples(registry: CollectorRegistry) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    out = {}
    for family in registry.collect():
        for s in family.samples:
            if not s.name.endswith("_created"):
                out[(s.name, tuple(sorted(s.labels.items())))] = s.value
    return out


@given(st.lists(st.floats(min_value=0, max_value=5, allow_nan=False), max_size=40))
def test_histogram_matches_prometheus_client(values: list[float]) -> None:
    ours, theirs = CollectorRegistry(), CollectorRegistry()
    lite = metrics._LiteFamily("t_seconds", "doc", ["listener"], BOUNDS, registry=ours)
    reference = Histogram("t_seconds", "doc", ["listener"], buckets=BOUNDS, registry=theirs)
    lite.labels("pg")
    reference.labels("pg")
    for v in values:
        lite.labels("pg").observe(v)
        reference.labels("pg").observe(v)
    a, b = _samples(ours), _samples(theirs)
    assert a.keys() == b.keys()
    for key in a:
        assert abs(a[key] - b[key]) < 1e-9, key


def test_counter_matches_prometheus_client_and_checks_labels() -> None:
    ours, theirs = CollectorRegistry(), CollectorRegistry()
    lite = metrics._LiteFamily("t_bytes_total", "doc", ["listener", "direction"], registry=ours)
    reference = Counter("t_bytes_total", "doc", ["listener", "direction"], registry=theirs)
    for n in (3, 4, 5):
        lite.labels("pg", "in").inc(n)
        reference.labels("pg", "in").inc(n)
    assert _samples(ours) == _samples(theirs)
    assert b"# TYPE t_bytes_total counter" in generate_latest(ours)
    try:
        lite.labels("pg")
    except ValueError as e:
        assert "labels" in str(e)
    else:
        raise AssertionError("a missing label must be refused")
