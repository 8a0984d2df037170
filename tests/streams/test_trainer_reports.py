"""streams/trainer_process: what the trainer process reports, and how the worker turns
it into its own metrics (the model series are scraped from the worker's port)."""

from __future__ import annotations

import pickle

import pytest

from segstream.streams import metrics, training
from segstream.streams.trainer_process import (
    Reporter,
    apply_report,
    gone_report,
    series,
)

SEGMENT = (("segment", "3"),)
LETTER = (("reason", "processing_error"), ("stage", "trainer"))


@pytest.fixture(autouse=True)
def clean() -> None:
    training.forget_model_series()
    metrics.MODEL_OWNER.set(0)


def wire(report: object) -> object:
    """As the pipe carries it."""
    return pickle.loads(pickle.dumps(report))  # noqa: S301 - our own bytes


def test_gauges_travel_whole_and_counters_as_increments() -> None:
    reporter = Reporter()
    reporter.take(owner=True)  # what the process counted before: not reported again
    metrics.MODEL_OWNER.set(1)
    metrics.SEGMENT_USERS.labels("3").set(10)
    metrics.FEATURE_DRIFT.labels("recency_days").set(0.25)
    metrics.DLQ.labels("processing_error", "trainer").inc(2)
    first = wire(reporter.take(owner=True))
    assert first.owner
    assert first.gauges["segstream_model_owner"] == {(): 1.0}
    assert first.gauges["segstream_segment_users"] == {SEGMENT: 10.0}
    assert first.gauges["segstream_feature_drift"] == {(("feature", "recency_days"),): 0.25}
    assert first.counters["segstream_dlq"] == {LETTER: 2.0}
    metrics.DLQ.labels("processing_error", "trainer").inc(1)
    second = reporter.take(owner=True)
    assert second.counters["segstream_dlq"] == {LETTER: 1.0}
    third = reporter.take(owner=True)
    assert third.counters["segstream_dlq"] == {}  # nothing new: nothing added


def test_the_worker_takes_the_trainers_series_and_drops_the_ones_it_lost() -> None:
    reporter = Reporter()
    metrics.MODEL_OWNER.set(1)
    metrics.SEGMENT_USERS.labels("3").set(10)
    report = wire(reporter.take(owner=True))
    # the worker's own metrics, before the report: a segment that has since vanished
    training.forget_model_series()
    metrics.SEGMENT_USERS.labels("9").set(5)
    dlq_before = series(metrics.DLQ).get(LETTER, 0.0)
    report.counters["segstream_dlq"] = {LETTER: 2.0}
    apply_report(report)
    assert series(metrics.SEGMENT_USERS) == {SEGMENT: 10.0}
    assert series(metrics.MODEL_OWNER) == {(): 1.0}
    assert series(metrics.DLQ)[LETTER] == dlq_before + 2.0
    apply_report(report)  # the next report: gauges the same, counters added again
    assert series(metrics.SEGMENT_USERS) == {SEGMENT: 10.0}
    assert series(metrics.DLQ)[LETTER] == dlq_before + 4.0


def test_a_trainer_that_is_gone_leaves_no_model_series() -> None:
    metrics.MODEL_OWNER.set(1)
    metrics.SEGMENT_USERS.labels("3").set(10)
    metrics.CLUSTER_QUALITY.labels("silhouette").set(0.4)
    apply_report(wire(gone_report()))
    assert series(metrics.MODEL_OWNER) == {(): 0.0}
    assert series(metrics.SEGMENT_USERS) == {}
    assert series(metrics.CLUSTER_QUALITY) == {}
