"""``segstream worker``: wires the agents to their stages and runs the Faust worker."""

from __future__ import annotations

import logging
import os
import time
from collections.abc import Awaitable, Callable
from functools import partial
from typing import Any

import faust

from segstream.schemas.errors import EXIT_CRASHED
from segstream.schemas.settings import Settings
from segstream.streams import metrics, stages, training
from segstream.streams.app import Pipeline, use_event_loop
from segstream.streams.continuity import (
    Broker,
    CommitGuard,
    Continuity,
    accept_stop_signals,
    delivered,
    leave_group,
    restart,
    restart_for,
)
from segstream.streams.edge_process import EdgeGaveUp
from segstream.streams.lag import Offsets, StallWatch, export_lag
from segstream.streams.topics import ensure_topics

log = logging.getLogger("segstream.worker")
Work = Callable[[list[Any]], Awaitable[None]]
LAG_EVERY_S = 5.0
EDGE_CHECK_S = 1.0


def build(settings: Settings, loglevel: str = "info") -> Pipeline:
    """The app with every agent, timer and task registered (not started); the edge
    process (``p.edge``) is started by ``run``."""
    p = Pipeline(settings)
    p.edge.loglevel = loglevel
    app = p.app
    n, within = settings.batch_size, settings.batch_within_s
    broker = Broker(settings)
    seen: list[Continuity] = []
    busy: set[str] = set()  # topics whose agent is in the middle of a batch

    def continuity() -> Continuity:
        seen.append(Continuity(broker.committed, broker.holds_records))
        return seen[-1]

    async def whole(stage: str, c: Continuity, events: list[Any]) -> None:
        """Restart the process if Faust skipped records before or inside this batch."""
        holes = await c.check(delivered(events))
        if holes:
            restart(stage, holes, stopping=app.should_stop, code=exit_code(p), leave=leave)

    def leave() -> None:
        """Out of the group before a restart (faust-streaming 0.15.3, pinned: the
        consumer thread's aiokafka consumer and loop); the edge stops first (the
        restarted worker starts its own)."""
        p.edge.stop()
        thread = app.consumer._thread  # type: ignore[attr-defined]
        leave_group(thread._ensure_consumer(), thread.thread_loop)

    guard = CommitGuard(p.names.values())
    guard.install(app.consumer)

    async def forget(_: Any, revoked: set[Any], **__: Any) -> None:
        p.tables_ready = False  # a rebalance begins: the tables will be restored
        p.decoded.clear()
        for c in seen:
            c.forget((tp.topic, tp.partition) for tp in revoked)
        guard.forget((tp.topic, tp.partition) for tp in revoked)

    app.on_partitions_revoked.connect(forget)  # type: ignore[arg-type]  # faust's stub

    async def rescore_gained(_: Any, **__: Any) -> None:
        """Tables restored after a rebalance: profiles of partitions gained may still
        carry a model older than the one the previous owner was rescoring to."""
        p.tables_ready = True
        p.decoded.clear()  # restored from the changelogs: decode what they hold
        p.snapshot_changed.set()

    app.on_rebalance_complete.connect(rescore_gained)  # type: ignore[arg-type]  # faust's stub

    async def drain(_: Any, **__: Any) -> None:
        """Stopping, before the producer stops: let the batch or rescore chunk in hand
        write all its effects (a rescore starts no new chunk once the app stops)."""
        async with p.lock:
            pass

    app.on_before_shutdown.connect(drain)  # type: ignore[arg-type]  # faust's stub

    def batch_agent(topic: str, name: str, stage: str, work: Work) -> None:
        """An agent that checks each batch for holes and runs ``work`` on it, whole."""

        async def agent(stream: Any) -> None:
            c = continuity()
            async for events in stream.take_events(n, within=within):
                busy.add(p.names[topic])
                try:
                    await whole(stage, c, events)
                    await stages.guarded(stage, work(events))
                finally:
                    busy.discard(p.names[topic])
                guard.finished(events)
                stages.batch_done()

        agent.__name__ = agent.__qualname__ = name.replace("-", "_")  # Faust's log label
        app.agent(p.topics[topic], name=name, concurrency=1)(agent)

    batch_agent("identity", "identity", "identity", partial(stages.identity_batch, p))
    batch_agent("events", "profiles", "profiles", partial(stages.profile_batch, p))
    batch_agent("erasures", "erasures", "erasures", partial(stages.dispatch_erasures, p))

    offsets = Offsets(settings)
    trainer = training.TrainerStage(p, offsets)

    @app.task
    async def train() -> None:
        """The worker holding ``events`` partition 0 trains (``TrainerStage``)."""
        await trainer.run()

    @app.timer(settings.publish_every_s)
    async def publish() -> None:
        await trainer.tick()

    stalls = StallWatch(settings.stall_restart_s)
    # the agents' inputs; Faust also assigns table changelogs (read only to restore them,
    # never committed) and its leader topic, which would read as lag that never drains
    inputs = set(p.names.values())

    @app.timer(LAG_EVERY_S)
    async def lag() -> None:
        """The group's lag on the partitions assigned here, the edge's included (gone ones
        are dropped); a partition left unread while the others move restarts the worker."""
        tps = [(tp.topic, tp.partition) for tp in app.consumer.assignment() if tp.topic in inputs]
        tps += p.edge.assigned
        if trainer.owns_training():
            tps.append((p.names["training"], 0))
        try:
            positions = await offsets.read_async(tps)
        except Exception as exc:  # Kafka unreachable: keep the last figures
            log.warning("could not read the group's offsets: %s", exc)
            return
        export_lag(positions)
        if stalled := stalls.observe(positions, time.monotonic(), busy):
            where = ", ".join(f"{topic}[{part}]" for topic, part in stalled)
            why = f"partitions not read for {settings.stall_restart_s:.0f} s: {where}"
            async with p.lock:  # not in the middle of a profile batch
                restart_for("lag", why, stopping=app.should_stop, code=exit_code(p), leave=leave)

    @app.task
    async def started() -> None:
        """The worker is up and handles stop signals: take any a restart held back."""
        accept_stop_signals()

    @app.timer(EDGE_CHECK_S)
    async def supervise_edge() -> None:
        """The edge process runs while the worker does: started again when it died."""
        if app.should_stop:
            return
        try:
            p.edge.check()
        except EdgeGaveUp as exc:
            log.critical("%s: exiting", exc)
            p.edge.stop()
            logging.shutdown()
            os._exit(EXIT_CRASHED)

    @app.task
    async def follow_model() -> None:
        await p.kafka_retry(stages.follow_model, p)  # starts again after an outage

    @app.task
    async def follow_erasures() -> None:
        await p.kafka_retry(stages.follow_erasures, p)

    @app.task
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
    worker = faust.Worker(p.app, loglevel=loglevel, redirect_stdouts=False)
    p.edge.start()
    try:
        worker.execute_from_commandline()
    except SystemExit as done:
        if done.code in (0, None) and exit_code(p):
            # Faust stops cleanly after a crash of a task or timer and exits 0; a
            # supervisor must see the failure and start the worker again
            raise SystemExit(exit_code(p)) from p.app.crash_reason
        raise
    finally:
        p.edge.stop()  # it finishes its batch, commits and leaves its group


def exit_code(p: Pipeline) -> int:
    """70 once the app has crashed (its services stop as on SIGTERM), else 0."""
    return EXIT_CRASHED if p.app.crash_reason is not None else 0
