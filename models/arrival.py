"""Arrival orders and outsiders: the inputs that test a clusterer's robustness.

Online k-means ends where the order of its data led it. Kafka hands a consumer
its partitions' batches interleaved, so one population arrives in many orders.
:func:`interleave` draws such orders (chunks kept, nearby chunks swapped);
:func:`browsers` adds a small group unlike any persona of
:class:`~models.synthetic.Generator` (short anonymous browsing sessions, nothing
bought), as a CSV export replayed from another tool would; :func:`replay` runs the
in-memory pipeline (:mod:`models.oracle`) over one such order.

>>> order = interleave(list(range(200)), seed=1, chunk=10)
>>> sorted(order) == list(range(200)) and order != list(range(200))
True
>>> len({e.key for e in browsers(1_780_000_000_000, users=3, seed=5)})
3
"""

from __future__ import annotations

import random
from collections.abc import Iterator, Sequence
from datetime import UTC, datetime, timedelta
from typing import TypeVar

import orjson

from segstream.models.features import FeatureSpace
from segstream.models.oracle import OracleResult, run
from segstream.models.segments import SegmentLearner
from segstream.models.synthetic import Generated
from segstream.models.trainer import Trainer
from segstream.schemas.parse import EventParser

T = TypeVar("T")


def interleave(records: Sequence[T], seed: int, chunk: int = 50, spread: float = 5) -> list[T]:
    """``records`` in chunks of ``chunk``, each chunk moved up to ``spread`` chunks away."""
    rng = random.Random(seed)  # noqa: S311 - sampling, not security
    chunks = [records[i : i + chunk] for i in range(0, len(records), chunk)]
    order = sorted(range(len(chunks)), key=lambda i: i + rng.uniform(-spread, spread))
    return [r for i in order for r in chunks[i]]


def browsers(end_ms: int, users: int = 20, seed: int = 5) -> Iterator[Generated]:
    """Anonymous visitors (``csv-visitor-<n>``): three sessions each in the last 20 days
    before ``end_ms``, 3 to 6 page views apiece, organic, nothing else."""
    rng = random.Random(seed)  # noqa: S311 - sampling, not security
    end = datetime.fromtimestamp(end_ms / 1000, tz=UTC)
    for u in range(users):
        visitor = f"csv-visitor-{u}"
        for s in range(3):
            start = end - timedelta(days=rng.uniform(1, 20))
            for i in range(rng.randint(3, 6)):
                value = {
                    "event_id": f"csv-{u}-{s}-{i}",
                    "source": "web",
                    "type": "page_view",
                    "ts": int((start + timedelta(seconds=30 * i)).timestamp() * 1000),
                    "anonymous_id": visitor,
                    "session_id": f"csv-s-{u}-{s}",
                    "page": f"/p/{rng.randrange(50)}",
                    "device_type": "desktop",
                    "channel": "organic",
                }
                yield Generated("web", visitor, value)


def replay(
    events: Sequence[Generated],
    order: int,
    space: FeatureSpace,
    learner: SegmentLearner,
    cycle_every: int = 500,
) -> OracleResult:
    """The in-memory pipeline over ``events`` in arrival order ``order`` (the seed of
    :func:`interleave` and of the trainer's sampling), a model cycle every
    ``cycle_every`` observations; the parser's clock is a day after the last event."""
    records = interleave([(e.source, orjson.dumps(e.value)) for e in events], seed=order)
    end = datetime.fromtimestamp(max(e.value["ts"] for e in events) / 1000, tz=UTC)
    parser = EventParser(b"arrival-key", now=lambda: end + timedelta(days=1))
    trainer = Trainer(space, learner, seed=order)
    return run(records, parser, space, trainer=trainer, cycle_every=cycle_every)
