"""Python's cyclic garbage collector in a long-running stream process.

A collection of the oldest generation walks every object the process holds: modules,
the engine's services, its clients. In a worker those walks were a tenth of its CPU
on a backlog (1,000 users, docs/benchmarks.md) and the longest pauses of its loop.
The objects alive once a process is set up live as long as it does, so they are moved
out of the collector's way (``gc.freeze``; reference counting still frees any of them
that is dropped), and young objects are let pile up longer before a collection, so
that short-lived ones (a batch's items) are mostly gone by then. What is freed does
not change, only how often the collector looks for cycles among the rest.
"""

from __future__ import annotations

import gc

# net allocations before a young collection (Python's default: 700), then its defaults
THRESHOLDS = (10_000, 10, 10)


def settle() -> None:
    """Once the process is set up: collect what setting up left, freeze what stays."""
    gc.collect()
    gc.freeze()
    gc.set_threshold(*THRESHOLDS)
