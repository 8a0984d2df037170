"""The worker's side of the edge: the edge process (``streams.edge``) as one of the
worker's children, its reports turned into the worker's metrics."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from segstream.schemas.settings import Settings
from segstream.streams import metrics
from segstream.streams.children import Child
from segstream.streams.edge import Stats, main


class EdgeProcess(Child):
    name = "edge"

    def __init__(self, settings: Settings, loglevel: str = "info") -> None:
        super().__init__(settings, loglevel)
        self.assigned: list[tuple[str, int]] = []  # source partitions the edge reads now

    def target(self) -> Callable[[Settings, Any, int, str], None]:
        return main

    def on_report(self, report: Any) -> None:
        apply_stats(report)
        self.assigned = report.assigned


def apply_stats(stats: Stats) -> None:
    """The edge's report, added to this process's metrics."""
    for (source, event_type), n in stats.events.items():
        metrics.EVENTS.labels(source, metrics.event_type_label(event_type)).inc(n)
    for reason, n in stats.dead.items():
        metrics.DLQ.labels(reason, "edge").inc(n)
    if stats.suppressed:
        metrics.SUPPRESSED.labels("edge").inc(stats.suppressed)
    histogram = metrics.BATCH_SECONDS.labels("edge")
    for seconds in stats.batch_seconds:
        histogram.observe(seconds)
    if stats.batch_seconds:
        metrics.LAST_BATCH.set_to_current_time()
