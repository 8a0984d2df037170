"""streams/histograms.py: a batch-fed histogram is exposed as prometheus_client's own."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st
from prometheus_client import CollectorRegistry, Histogram, generate_latest

from segstream.streams.histograms import BatchHistogram

BUCKETS = (0.005, 0.01, 0.1, 1, 2.5, 86400)
values = st.lists(st.floats(0, 1e6, allow_nan=False) | st.sampled_from(BUCKETS), max_size=40)


def exposition(registry: CollectorRegistry) -> list[str]:
    """The exposition's lines, without the ``_created`` series (ours has none)."""
    text = generate_latest(registry).decode()
    return [line for line in text.splitlines() if "_created" not in line]


@given(st.lists(st.tuples(st.sampled_from(["event", "ingest"]), values), max_size=6))
def test_exposed_as_the_library_histogram_fed_one_value_at_a_time(batches) -> None:
    ours, theirs = CollectorRegistry(), CollectorRegistry()
    h = BatchHistogram("lat_seconds", "Latency", "clock", BUCKETS, registry=ours)
    ref = Histogram("lat_seconds", "Latency", ["clock"], buckets=BUCKETS, registry=theirs)
    for label, batch in batches:
        h.observe(label, batch)
        child = ref.labels(label)
        for v in batch:
            child.observe(v)
    ours_lines, theirs_lines = exposition(ours), exposition(theirs)
    # the same series and counts; sums agree to float rounding (added in another order)
    assert [x.rsplit(" ", 1)[0] for x in ours_lines] == [x.rsplit(" ", 1)[0] for x in theirs_lines]
    for a, b in zip(ours_lines, theirs_lines, strict=True):
        if a.startswith("#"):
            assert a == b
        else:
            assert float(a.rsplit(" ", 1)[1]) == pytest.approx(float(b.rsplit(" ", 1)[1]))


def test_buckets_must_increase() -> None:
    with pytest.raises(ValueError, match="increasing"):
        BatchHistogram("x_seconds", "x", "clock", (1, 0.5), registry=None)
