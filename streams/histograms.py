"""A Prometheus histogram fed a batch of values at a time.

``prometheus_client.Histogram.observe`` takes one value and a lock per call, about
2.3 µs; the profile stage observes two latencies per event, which at 100,000 users
cost more than any single step of its own. This one counts a batch's values into its
buckets in a plain loop (about 0.3 µs a value) and adds them under one lock. It is
exposed exactly as a ``Histogram`` with the same name, labels and buckets would be
(``_bucket``, ``_count``, ``_sum``), so rules and dashboards read it unchanged.
"""

from __future__ import annotations

import threading
from bisect import bisect_left
from collections.abc import Iterable, Iterator, Sequence

from prometheus_client import REGISTRY, CollectorRegistry
from prometheus_client.metrics_core import HistogramMetricFamily, Metric
from prometheus_client.registry import Collector
from prometheus_client.utils import floatToGoString


class BatchHistogram(Collector):
    """A histogram with one label, observed a batch at a time."""

    def __init__(
        self,
        name: str,
        documentation: str,
        label: str,
        buckets: Sequence[float],
        registry: CollectorRegistry | None = REGISTRY,
    ) -> None:
        if list(buckets) != sorted(set(buckets)):
            raise ValueError("buckets must be distinct and in increasing order")
        self.name, self.documentation, self.label = name, documentation, label
        self.bounds = [float(b) for b in buckets]  # +Inf is implied
        # as the library names them (0.005, 1.0, +Inf): the same series as a Histogram
        self.names = [floatToGoString(b) for b in self.bounds] + ["+Inf"]  # type: ignore[no-untyped-call]
        self._series: dict[str, tuple[list[int], list[float]]] = {}  # counts, [sum]
        self._lock = threading.Lock()  # the exposition thread reads while a batch adds
        if registry is not None:
            registry.register(self)

    def observe(self, label_value: str, values: Iterable[float]) -> None:
        """Count ``values`` (a batch's) into the series ``label_value``."""
        bounds = self.bounds
        counts = [0] * (len(bounds) + 1)
        total = 0.0
        for v in values:
            counts[bisect_left(bounds, v)] += 1  # le: the first bound >= v
            total += v
        with self._lock:
            held, held_sum = self._series.setdefault(label_value, ([0] * len(counts), [0.0]))
            for i, n in enumerate(counts):
                held[i] += n
            held_sum[0] += total

    def collect(self) -> Iterator[Metric]:
        family = HistogramMetricFamily(self.name, self.documentation, labels=[self.label])
        with self._lock:
            series = [(v, list(c), s[0]) for v, (c, s) in self._series.items()]
        for value, counts, total in series:
            cumulative, buckets = 0, []
            for name, n in zip(self.names, counts, strict=True):
                cumulative += n
                buckets.append((name, cumulative))
            family.add_metric([value], buckets, total)
        yield family

    def describe(self) -> Iterator[Metric]:
        yield HistogramMetricFamily(self.name, self.documentation, labels=[self.label])
