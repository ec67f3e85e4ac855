"""The Prometheus registry and dbfw's metrics. Labels have bounded cardinality: listener, identity (only
identities from the config), class, action, outcome, rule — never SQL text or values.

dbfw runs one process per instance; several instances are scraped separately and summed by
Prometheus (every series is a counter, a gauge of the instance, or a histogram).
"""

from __future__ import annotations

from bisect import bisect_left
from collections.abc import Callable, Iterable

from prometheus_client import CollectorRegistry, Counter, Gauge
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, HistogramMetricFamily
from prometheus_client.registry import Collector
from prometheus_client.utils import floatToGoString

from . import __version__

# Sub-millisecond first: dbfw's own overhead is measured in tens of microseconds.
FAST_BUCKETS = (0.00001, 0.000025, 0.00005, 0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05,
                0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0)
STATEMENT_BUCKETS = (0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0,
                     2.5, 5.0, 10.0, 30.0, 60.0)

REGISTRY = CollectorRegistry(auto_describe=True)


# The metrics that move with every statement or every read are kept as plain numbers, updated only on
# the event loop's thread (no lock, no per-call label checks) and turned into samples when scraped.
# prometheus_client's own Counter.inc/Histogram.observe cost 1-3 µs each, several times per statement.

class _CounterChild:
    __slots__ = ("value",)

    def __init__(self) -> None:
        self.value = 0.0

    def inc(self, amount: float = 1.0) -> None:
        self.value += amount


class _HistogramChild:
    __slots__ = ("bounds", "counts", "sum")

    def __init__(self, bounds: tuple[float, ...]) -> None:
        self.bounds = bounds
        self.counts = [0] * (len(bounds) + 1)  # the last one is +Inf
        self.sum = 0.0

    def observe(self, value: float) -> None:
        self.counts[bisect_left(self.bounds, value)] += 1  # bucket i holds bounds[i-1] < value <= bounds[i]
        self.sum += value


class _LiteFamily(Collector):
    def __init__(self, name: str, documentation: str, labelnames: list[str],
                 buckets: tuple[float, ...] | None = None, registry: CollectorRegistry = REGISTRY):
        self.name, self.documentation, self.labelnames, self.buckets = name, documentation, labelnames, buckets
        self._children: dict[tuple[str, ...], _CounterChild | _HistogramChild] = {}
        registry.register(self)

    def labels(self, *values: str) -> _CounterChild | _HistogramChild:
        if len(values) != len(self.labelnames):
            raise ValueError(f"{self.name} takes labels {self.labelnames}")
        child = self._children.get(values)
        if child is None:
            child = self._children[values] = (_HistogramChild(self.buckets) if self.buckets is not None
                                              else _CounterChild())
        return child

    def describe(self) -> Iterable[CounterMetricFamily | HistogramMetricFamily]:
        return [self._empty()]

    def _empty(self) -> CounterMetricFamily | HistogramMetricFamily:
        if self.buckets is None:
            return CounterMetricFamily(self.name, self.documentation, labels=self.labelnames)
        return HistogramMetricFamily(self.name, self.documentation, labels=self.labelnames)

    def collect(self) -> Iterable[CounterMetricFamily | HistogramMetricFamily]:
        return list(self._families())

    def _families(self) -> Iterable[CounterMetricFamily | HistogramMetricFamily]:
        family = self._empty()
        for values, child in list(self._children.items()):
            if isinstance(child, _CounterChild):
                family.add_metric(list(values), child.value)  # type: ignore[call-arg]
                continue
            cumulative, buckets = 0, []
            for bound, n in zip((*child.bounds, float("inf")), child.counts, strict=True):
                cumulative += n
                buckets.append((floatToGoString(bound), cumulative))
            family.add_metric(list(values), buckets, child.sum)  # type: ignore[arg-type]
        yield family


def LiteCounter(name: str, documentation: str, labelnames: list[str]) -> _LiteFamily:
    return _LiteFamily(name, documentation, labelnames)


def LiteHistogram(name: str, documentation: str, labelnames: list[str],
                  buckets: tuple[float, ...]) -> _LiteFamily:
    return _LiteFamily(name, documentation, labelnames, tuple(sorted(buckets)))


connections_active = Gauge("dbfw_connections_active", "Client connections open now", ["listener"],
                           registry=REGISTRY)
connections_total = Counter("dbfw_connections_total", "Client connections, by how they ended",
                            ["listener", "outcome"], registry=REGISTRY)
statements_total = LiteCounter("dbfw_statements_total", "Statements decided by the firewall",
                               ["listener", "identity", "class", "action"])
statement_duration = LiteHistogram("dbfw_statement_duration_seconds",
                                   "Time from a statement's arrival to the end of its response, as the client sees it",
                                   ["listener", "class"], buckets=STATEMENT_BUCKETS)
overhead = LiteHistogram("dbfw_overhead_seconds",
                         "Time spent inside dbfw per statement (parse, policy, masking plan)", ["listener"],
                         buckets=FAST_BUCKETS)
parse_failures = Counter("dbfw_parse_failures_total", "Statements dbfw could not parse (classified unknown)",
                         ["listener"], registry=REGISTRY)
approvals_total = Counter("dbfw_approvals_total", "Approval events", ["outcome"], registry=REGISTRY)
bytes_total = LiteCounter("dbfw_bytes_total", "Bytes relayed", ["listener", "direction"])
upstream_errors = Counter("dbfw_upstream_errors_total", "Upstream connections that failed or were lost",
                          ["listener"], registry=REGISTRY)
rules_reloads = Counter("dbfw_rules_reloads_total", "Rule reloads", ["result"], registry=REGISTRY)
build_info = Gauge("dbfw_build_info", "dbfw's version", ["version"], registry=REGISTRY)
build_info.labels(__version__).set(1)


class _Callbacks(Collector):
    """Metrics read from state that other parts keep anyway (caches, counters, the store)."""

    def __init__(self) -> None:
        self.cache_stats: Callable[[], dict[str, int]] = dict
        self.masked_counts: Callable[[], dict[str, int]] = dict
        self.pending: Callable[[], int] = lambda: 0

    def collect(self) -> Iterable[CounterMetricFamily | GaugeMetricFamily]:
        cache = CounterMetricFamily("dbfw_classify_cache", "Classifications by cache outcome", labels=["result"])
        for result, n in self.cache_stats().items():
            cache.add_metric([result], n)
        yield cache
        masked = CounterMetricFamily("dbfw_masked_values", "Values masked, by masking rule", labels=["rule"])
        for rule, n in self.masked_counts().items():
            masked.add_metric([rule], n)
        yield masked
        yield GaugeMetricFamily("dbfw_approvals_pending", "Approval requests waiting for a decision",
                                value=self.pending())


callbacks = _Callbacks()
REGISTRY.register(callbacks)


def init_series(listeners: list[str]) -> None:
    """Create every bounded series at zero, so dashboards and alerts see them before the first event."""
    for name in listeners:
        connections_active.labels(name)
        upstream_errors.labels(name)
        parse_failures.labels(name)
        overhead.labels(name)
        for direction in ("client_to_upstream", "upstream_to_client"):
            bytes_total.labels(name, direction)
    for result in ("ok", "failed"):
        rules_reloads.labels(result)
    for outcome in ("requested", "approved", "vote", "denied", "consumed", "expired", "token_refused",
                    "self_review_refused"):
        approvals_total.labels(outcome)
