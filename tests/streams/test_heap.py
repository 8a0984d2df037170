"""engine.heap.settle: what a process holds once set up leaves the collector's walks."""

from __future__ import annotations

import gc
from collections.abc import Iterator

import pytest

from segstream.streams.engine import heap


@pytest.fixture
def restored() -> Iterator[None]:
    before = gc.get_threshold()
    yield
    gc.unfreeze()
    gc.set_threshold(*before)


def test_settle_freezes_what_lives_and_keeps_collecting_cycles(restored: None) -> None:
    held = [{"n": i} for i in range(1000)]  # alive at settle: frozen
    heap.settle()
    assert gc.get_freeze_count() >= len(held)
    assert gc.get_threshold() == heap.THRESHOLDS
    walked = {id(o) for o in gc.get_objects()}  # what a collection walks
    assert not any(id(x) in walked for x in held)

    class Node:
        other: object = None

    a, b = Node(), Node()
    a.other, b.other = b, a  # a cycle made after settle is still found and freed
    del a, b
    assert gc.collect() >= 2
