"""The whole pipeline in one process, in memory: the reference the real one must equal.

Runs the same pure steps the Faust agents run (parse, route, identity,
profile, learn, snapshot, assign), with in-memory queues standing in for the
topics. Tests use it as the oracle: final features from the real pipeline,
after crashes, restarts and duplicates, must equal these.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Iterable
from dataclasses import dataclass, field

import orjson

from segstream.models.features import DEDUPE_WINDOW, FeatureSpace, Profile
from segstream.models.identity import Out, link, resolve, route
from segstream.models.profiles import assign, handle
from segstream.models.segments import Snapshot
from segstream.models.trainer import Trainer
from segstream.schemas.parse import EventParser, Rejection


@dataclass
class OracleResult:
    profiles: dict[str, Profile]  # live profiles (merged-away ones left out)
    aliases: dict[str, str]
    rejections: list[Rejection] = field(default_factory=list)
    snapshot: Snapshot | None = None
    segments: dict[str, int] = field(default_factory=dict)
    watermark_ms: int = 0


def run(
    records: Iterable[tuple[str, bytes]],
    parser: EventParser,
    space: FeatureSpace,
    trainer: Trainer | None = None,
    cycle_every: int = 2000,
    settle_cycles: int = 5,
    hysteresis: float = 0.0,
    window: int = DEDUPE_WINDOW,
) -> OracleResult:
    """Process ``(source, raw bytes)`` records; learn and assign if a trainer is given."""
    table: dict[str, Profile] = {}
    aliases: dict[str, str] = {}
    rejections: list[Rejection] = []
    queue: deque[Out] = deque()
    watermark = 0
    for source, raw in records:
        parsed = parser.parse(raw, source)
        if isinstance(parsed, Rejection):
            rejections.append(parsed)
            continue
        queue.extend(route(parsed))
        while queue:
            out = queue.popleft()
            # the same bytes the real topics carry
            value = orjson.loads(orjson.dumps(out.value))
            if out.topic == "identity":
                if value["k"] == "event":
                    queue.extend(resolve(aliases.get(out.key), out.key, value["e"]))
                else:
                    res = link(aliases.get(out.key), out.key, value["to"])
                    if res.entry is not None:
                        aliases[out.key] = res.entry
                    queue.extend(res.outs)
                continue
            step = handle(table.get(out.key), out.key, value, window=window)
            queue.extend(step.outs)
            if step.state is not None:
                table[out.key] = step.state
                if value["k"] == "event" and not step.state.merged_into:
                    watermark = max(watermark, step.state.last_seen_ms)
                    if trainer is not None:
                        trainer.observe(
                            out.key,
                            space.raw(step.state, step.state.last_seen_ms),
                            step.state.last_seen_ms,
                        )
                        if trainer.pending >= cycle_every:
                            trainer.cycle()
                elif value["k"] == "absorb" and trainer is not None:
                    trainer.observe(
                        out.key,
                        space.raw(step.state, step.state.last_seen_ms),
                        step.state.last_seen_ms,
                    )
            if step.gone and trainer is not None:
                trainer.forget(out.key)
    live = {k: p for k, p in table.items() if not p.merged_into}
    result = OracleResult(live, aliases, rejections, watermark_ms=watermark)
    if trainer is not None:
        snap = trainer.cycle(watermark)
        for _ in range(settle_cycles):  # as the worker's timer does while unsettled
            if not trainer.unsettled:
                break
            snap = trainer.cycle(watermark)
        result.snapshot = snap
        if snap is not None:
            for key, p in live.items():
                p2, _, _ = assign(p, snap, space.vector(p, watermark), hysteresis)
                result.segments[key] = p2.segment if p2.segment is not None else -1
    return result
