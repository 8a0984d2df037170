"""``segstream worker``: wires the stages to the engine's agents, timers and hooks, and
runs it with the edge and trainer processes beside it."""

from __future__ import annotations

import logging
import os
import time
from collections.abc import Awaitable, Callable
from functools import partial

from segstream.schemas.errors import EXIT_CRASHED
from segstream.schemas.settings import Settings
from segstream.streams import metrics, stages
from segstream.streams.app import Pipeline
from segstream.streams.children import GaveUp
from segstream.streams.engine import TP, Record, use_event_loop
from segstream.streams.lag import Offsets, export_lag
from segstream.streams.topics import ensure_topics

log = logging.getLogger("segstream.worker")
Work = Callable[[list[Record]], Awaitable[None]]
LAG_EVERY_S = 5.0
CHILD_CHECK_S = 1.0


def build(settings: Settings, loglevel: str = "info") -> Pipeline:
    """The app with every agent, timer and task registered (not started); the edge and
    trainer processes (``p.children``) start with the worker."""
    p = Pipeline(settings)
    engine = p.engine
    for child in p.children:
        child.loglevel = loglevel
        engine.on_started(child.start)  # once stop signals are handled: ``Engine.on_started``
        engine.before_leaving.append(child.stop)  # the restarted worker starts its own

    def forget(_: set[TP]) -> None:
        p.tables_ready = False  # a rebalance begins: the tables will be restored
        p.decoded.clear()

    def rescore_gained() -> None:
        """Tables restored after a rebalance: profiles of partitions gained may still
        carry a model older than the one the previous owner was rescoring to."""
        p.tables_ready = True
        p.decoded.clear()  # restored from the changelogs: decode what they hold
        p.snapshot_changed.set()

    async def drain() -> None:
        """Stopping, before the producer stops: let the batch or rescore chunk in hand
        write all its effects (a rescore starts no new chunk once the app stops)."""
        async with p.lock:
            pass

    engine.on_revoked(forget)
    engine.on_restored(rescore_gained)
    engine.on_stopping(drain)

    def stage(work: Work) -> Work:
        async def run(records: list[Record]) -> None:
            await work(records)
            stages.batch_done()

        return run

    engine.agent("identity", "identity", stage(partial(stages.identity_batch, p)))
    engine.agent("events", "profiles", stage(partial(stages.profile_batch, p)))
    engine.agent("erasures", "erasures", stage(partial(stages.dispatch_erasures, p)))

    offsets = Offsets(settings)

    @engine.timer(LAG_EVERY_S)
    async def lag() -> None:
        """The group's lag on the partitions assigned here, the edge's included (gone ones
        are dropped); a partition left unread while the others move restarts the worker."""
        tps = engine.assignment() + p.edge.assigned
        if p.trainer.owner:
            tps.append((p.names["training"], 0))
        try:
            positions = await offsets.read_async(tps)
        except Exception as exc:  # Kafka unreachable: keep the last figures
            log.warning("could not read the group's offsets: %s", exc)
            return
        export_lag(positions)
        if stalled := engine.stalled(positions, time.monotonic()):
            where = ", ".join(f"{topic}[{part}]" for topic, part in stalled)
            why = f"partitions not read for {settings.stall_restart_s:.0f} s: {where}"
            async with p.lock:  # not in the middle of a profile batch
                engine.restart("lag", why)

    @engine.timer(CHILD_CHECK_S)
    async def supervise_children() -> None:
        """The edge and trainer processes run while the worker does: started again when
        one died."""
        if engine.should_stop:
            return
        try:
            for child in p.children:
                child.check()
        except GaveUp as exc:
            log.critical("%s: exiting", exc)
            for child in p.children:
                child.stop()
            logging.shutdown()
            os._exit(EXIT_CRASHED)

    @engine.task
    async def follow_model() -> None:
        await p.kafka_retry(stages.follow_model, p)  # starts again after an outage

    @engine.task
    async def follow_erasures() -> None:
        await p.kafka_retry(stages.follow_erasures, p)

    @engine.task
    async def rescore() -> None:
        await stages.rescore_forever(p)

    return p


def run(settings: Settings, loglevel: str = "info") -> None:
    """Create topics, serve metrics, run until SIGTERM/SIGINT (graceful: commits, flushes)."""
    metrics.serve_metrics(settings, settings.metrics_port, setting="SEGSTREAM_METRICS_PORT")
    created = ensure_topics(settings)
    if created:
        log.info("created topics: %s", ", ".join(created))
    for kind in ("feature", "segment", "centroid"):
        metrics.DRIFT_DETECTED.labels(kind)  # exported at 0, so increase() sees the first
    metrics.MODEL_OWNER.set(0)
    use_event_loop(settings)
    p = build(settings, loglevel)
    try:
        p.engine.run(loglevel)
    finally:
        for child in p.children:
            child.stop()  # each finishes what it is doing, commits and leaves its group
