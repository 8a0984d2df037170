"""The trainer in a process of its own beside each worker.

Learning a step, cycling a model version and judging drift are CPU work in Python;
on the worker's event loop they took turns with the agents (about a tenth of its time
at 5,000 events/s, more during a cycle), and every batch waited behind them. Here they
hold their own GIL.

Every worker runs one; one of them trains: the one whose trainer holds partition 0 of
``training`` in the trainer group (``Lease``). The lease's consumer never fetches
(the partition is paused): the trainer reads the topic whole with a plain consumer, as
before, and the lease only says who trains and records how far it has read (the lag
figures). When that process stops or dies, the group gives the lease to another
worker's trainer, which resumes from the last checkpoint and reads the topic whole.

The process reports to its worker once a second (``Report``): the model-level series
(owner, segment health, drift, quality) as they are, and the counters' increments.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import signal
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from threading import Event as Flag
from typing import Any

from confluent_kafka import Consumer, KafkaException, TopicPartition
from prometheus_client import Counter, Gauge

from segstream.schemas.settings import Settings, kafka_client_config
from segstream.streams import metrics, training
from segstream.streams.children import Child, child_setup
from segstream.streams.engine import heap
from segstream.streams.lag import Offsets

log = logging.getLogger("segstream.trainer")
REPORT_EVERY_S = 1.0
STOP_CHECK_S = 0.1
LEASE_POLL_S = 0.5
MARK_EVERY_S = 1.0  # how often the read position is committed (lag figures only)
GAUGES: tuple[Gauge, ...] = (
    metrics.MODEL_OWNER,
    *training.SEGMENT_GAUGES,
    metrics.FEATURE_DRIFT,
    metrics.SEGMENT_DRIFT,
    metrics.DRIFT_CHECKED,
    metrics.CLUSTER_QUALITY,
)
COUNTERS: tuple[Counter, ...] = (
    metrics.DRIFT_DETECTED,
    metrics.DLQ,
    metrics.REDIS_ERRORS,
    metrics.KAFKA_SEND_ERRORS,
)
LABELLED: tuple[Gauge, ...] = (
    *training.SEGMENT_GAUGES,
    metrics.FEATURE_DRIFT,
    metrics.CLUSTER_QUALITY,
)
Labels = tuple[tuple[str, str], ...]  # a series' labels, in the metric's order
Series = dict[Labels, float]


@dataclass
class Report:
    """The trainer's state for its worker: gauges whole, counters as increments."""

    gauges: dict[str, Series] = field(default_factory=dict)
    counters: dict[str, Series] = field(default_factory=dict)
    owner: bool = False


def name_of(metric: Gauge | Counter) -> str:
    return str(next(iter(metric.describe())).name)


def series(metric: Gauge | Counter) -> Series:
    """The series of ``metric`` in this process, by labels (counters: their totals)."""
    out: Series = {}
    for family in metric.collect():
        for s in family.samples:
            if s.name.endswith("_created"):
                continue
            out[tuple(s.labels.items())] = s.value
    return out


class Reporter:
    """Builds the reports in the trainer process (counters: what each added since)."""

    def __init__(self) -> None:
        self.totals: dict[str, Series] = {name_of(c): {} for c in COUNTERS}

    def take(self, owner: bool) -> Report:
        report = Report(owner=owner)
        for gauge in GAUGES:
            report.gauges[name_of(gauge)] = series(gauge)
        for counter in COUNTERS:
            name = name_of(counter)
            now, before = series(counter), self.totals[name]
            added = {k: v - before.get(k, 0.0) for k, v in now.items()}
            report.counters[name] = {k: v for k, v in added.items() if v}
            self.totals[name] = now
        return report


def apply_report(report: Report) -> None:
    """A trainer's report, in the worker's metrics: its gauges replace the worker's
    (series it no longer has are removed), its counters are added."""
    for gauge in GAUGES:
        new = report.gauges.get(name_of(gauge))
        if new is None:
            continue
        for labels in series(gauge).keys() - new.keys():
            if labels:
                with contextlib.suppress(KeyError):
                    gauge.remove(*(v for _, v in labels))
        for labels, value in new.items():
            (gauge.labels(**dict(labels)) if labels else gauge).set(value)
    for counter in COUNTERS:
        for labels, added in report.counters.get(name_of(counter), {}).items():
            (counter.labels(**dict(labels)) if labels else counter).inc(added)


def gone_report() -> Report:
    """What a trainer that is gone reports: not the owner, no segment or drift series
    (a new trainer process, or another worker's, reports again)."""
    report = Report(owner=False)
    report.gauges = {name_of(g): {} for g in LABELLED}
    report.gauges[name_of(metrics.MODEL_OWNER)] = {(): 0.0}
    return report


class Lease:
    """Partition 0 of ``training`` in the trainer group: its holder trains. A consumer
    that never fetches (the partition is paused once assigned); its thread polls to stay
    in the group and commits the position ``mark`` was last given."""

    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self.held = Flag()
        self.position: int | None = None
        self.consumer = Consumer(
            {
                **kafka_client_config(settings),
                "group.id": settings.trainer_group,
                "enable.auto.commit": False,
                "session.timeout.ms": int(settings.kafka_session_timeout_s * 1000),
            }
        )

    def mark(self, position: int) -> None:
        self.position = position

    def keep(self, stop: Flag) -> None:
        """The lease's thread: until ``stop``, then leave the group (the lease moves)."""

        def assigned(consumer: Consumer, tps: list[TopicPartition]) -> None:
            consumer.assign(tps)
            consumer.pause(tps)
            if tps:
                log.info("training lease taken: this worker trains")
                self.held.set()

        def revoked(consumer: Consumer, tps: list[TopicPartition]) -> None:
            if tps and self.held.is_set():
                log.info("training lease given up: another worker trains")
            self.held.clear()
            consumer.unassign()

        self.consumer.subscribe(
            [self.settings.topic("training")],
            on_assign=assigned,
            on_revoke=revoked,
            on_lost=revoked,
        )
        marked: int | None = None
        try:
            while not stop.wait(0):
                try:
                    self.consumer.poll(LEASE_POLL_S)
                except KafkaException as exc:  # the broker is away: librdkafka reconnects
                    log.warning("training lease: %s", exc)
                    stop.wait(LEASE_POLL_S)
                if self.held.is_set() and self.position not in (None, marked):
                    marked = self._commit(self.position)
                    stop.wait(MARK_EVERY_S)
        finally:
            self.held.clear()
            self.consumer.close()  # leaves the group: the lease moves at once

    def _commit(self, position: int | None) -> int | None:
        assert position is not None
        tp = TopicPartition(self.settings.topic("training"), 0, position)
        try:
            self.consumer.commit(offsets=[tp], asynchronous=False)
        except KafkaException as exc:  # the next one will: these offsets feed lag only
            log.warning("could not record the trainer's position: %s", exc)
            return None
        return position


def main(settings: Settings, conn: Any, parent: int, loglevel: str) -> None:
    """The trainer process (``multiprocessing`` spawn target): reports on ``conn``."""
    stopping, report = child_setup("trainer", conn, loglevel, parent)
    for sig in (signal.SIGTERM, signal.SIGINT):
        signal.signal(sig, lambda *_: stopping.set())
    try:
        asyncio.run(serve(settings, report, stopping))
    finally:
        conn.close()


async def serve(settings: Settings, report: Callable[[Report], None], stopping: Flag) -> None:
    """Train while holding the lease, until ``stopping`` (set too once the worker is gone:
    ``children.watch_parent``)."""
    lease = Lease(settings)
    keeper = threading.Thread(target=lease.keep, args=(stopping,), name="lease", daemon=True)
    keeper.start()
    runtime = training.TrainerRuntime(settings)
    offsets = Offsets(settings)
    stage = training.TrainerStage(runtime, offsets, lease.held.is_set, lease.mark)
    reporter = Reporter()
    heap.settle()

    async def tick() -> None:
        while True:
            await asyncio.sleep(settings.publish_every_s)
            await stage.tick()

    tasks = [asyncio.ensure_future(stage.run()), asyncio.ensure_future(tick())]
    reported = 0.0
    try:
        while not stopping.is_set():
            done = [t for t in tasks if t.done()]
            for t in done:
                t.result()  # an exception ends the process (the worker starts another)
            if time.monotonic() - reported >= REPORT_EVERY_S:
                report(reporter.take(lease.held.is_set()))
                reported = time.monotonic()
            await asyncio.sleep(STOP_CHECK_S)  # a stopping worker waits for this process
    finally:
        for t in tasks:
            t.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        stopping.set()
        keeper.join()
        report(gone_report())
        await runtime.redis.aclose()
        offsets.close()


class TrainerProcess(Child):
    """The worker's side of its trainer: its reports become the worker's model series."""

    name = "trainer"

    def __init__(self, settings: Settings, loglevel: str = "info") -> None:
        super().__init__(settings, loglevel)
        self.owner = False

    def target(self) -> Callable[[Settings, Any, int, str], None]:
        return main

    def on_report(self, report: Any) -> None:
        apply_report(report)
        self.owner = report.owner

    def on_exit(self) -> None:
        apply_report(gone_report())
        self.owner = False
