"""bench/local_optima.py runs on a small population and scores what it should."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "bench"))

from local_optima import WithoutSwap, orders, swap_cost_ms

from segstream.models.segments import SegmentLearner


def test_both_learners_are_scored_in_every_order() -> None:
    args = argparse.Namespace(users=40, seed=3, clusters=5, orders=2, browsers=False)
    for cls in (WithoutSwap, SegmentLearner):
        scores = orders(args, cls)
        assert len(scores) == 2
        assert all(-1.0 <= a <= 1.0 for a in scores)


def test_swap_cost_is_a_positive_time() -> None:
    assert swap_cost_ms(3, 4, repeat=1) > 0
