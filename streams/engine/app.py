"""``Engine``: the Faust app behind a small interface, with the defences the worker owes
its users against Faust and aiokafka (docs/failure-semantics.md).

Stages register plain functions: ``agent`` hands them batches of ``Record``, ``table``
gives them ``Table``, and the hooks call them with topic-partition pairs. A checked
agent restarts the process when Faust skipped records, commits stay behind what agents
finished, ``stalled`` finds partitions Faust stopped fetching, and ``restart`` leaves
the group before the process replaces itself.
"""

from __future__ import annotations

import asyncio
import inspect
import logging
from collections.abc import Awaitable, Callable, Collection, MutableMapping
from typing import Any

import faust

from segstream.schemas.errors import EXIT_CRASHED
from segstream.schemas.settings import TOPICS, Settings, kafka_ssl_context
from segstream.streams.engine import heap
from segstream.streams.engine.agents import Work, guarded, records_of
from segstream.streams.engine.continuity import (
    Broker,
    CommitGuard,
    Continuity,
    delivered,
    describe,
)
from segstream.streams.engine.records import TP, Record
from segstream.streams.engine.restart import (
    accept_stop_signals,
    leave_group,
    restart,
    watch_stop_signals,
)
from segstream.streams.engine.stalls import StallWatch
from segstream.streams.engine.tables import Table
from segstream.streams.lag import Position

log = logging.getLogger("segstream.worker")
Hook = Callable[..., Awaitable[None] | None]


def faust_broker_credentials(settings: Settings) -> Any:
    if settings.kafka_sasl_mechanism:
        password = settings.kafka_sasl_password
        return faust.SASLCredentials(
            username=settings.kafka_sasl_username or "",
            password=password.get_secret_value() if password else "",
            mechanism=settings.kafka_sasl_mechanism,
            ssl_context=kafka_ssl_context(settings)
            if "SSL" in settings.kafka_security_protocol
            else None,
        )
    if settings.kafka_security_protocol == "SSL":
        return faust.SSLCredentials(kafka_ssl_context(settings))
    return None


def use_event_loop(settings: Settings) -> None:
    """Before a Faust worker starts: its loop is uvloop unless the settings say asyncio's."""
    if settings.event_loop == "uvloop":
        import uvloop

        asyncio.set_event_loop_policy(uvloop.EventLoopPolicy())


_FETCH_WAIT_MS: dict[str, int] = {}  # app id -> the fetch wait its consumer gets


def shorten_fetch_wait(app_id: str, max_wait_ms: int) -> None:
    """Give the worker consumer of Faust app ``app_id`` a fetch wait of ``max_wait_ms``.

    faust-streaming 0.15.3 (pinned) builds its aiokafka consumer with a fixed
    ``fetch_max_wait_ms=1500``, and aiokafka keeps one fetch in flight per broker, for
    the partitions whose records have all been handed over. A partition read while that
    fetch is held waits for it: with the agents' partitions busy and only quiet ones in
    the fetch, a batch waited up to 1.5 s (freshness p50 1.7 s at 5,000 events/s)."""
    from faust.transport.drivers.aiokafka import AIOKafkaConsumerThread

    _FETCH_WAIT_MS[app_id] = max_wait_ms
    create = AIOKafkaConsumerThread._create_worker_consumer
    if getattr(create, "shortened", False):
        return

    def shortened(self: Any, transport: Any) -> Any:
        consumer = create(self, transport)
        wait = _FETCH_WAIT_MS.get(self.app.conf.id)
        if wait is not None:
            consumer._fetch_max_wait_ms = wait  # read by ``start()``, which builds the fetcher
        return consumer

    shortened.shortened = True  # type: ignore[attr-defined]
    AIOKafkaConsumerThread._create_worker_consumer = shortened  # type: ignore[method-assign]


class Engine:
    """One Faust app (consumer group ``app_id``) with segstream's topics."""

    def __init__(self, settings: Settings, app_id: str, single_partition: Collection[str]) -> None:
        s = self.settings = settings
        self.app = faust.App(
            app_id,
            broker=[f"kafka://{h.strip()}" for h in s.kafka_bootstrap.split(",")],
            broker_credentials=faust_broker_credentials(s),
            store="memory://",
            datadir=s.data_dir,
            web_enabled=False,
            table_standby_replicas=0,
            topic_partitions=s.partitions,
            topic_replication_factor=s.replication_factor,
            processing_guarantee="at_least_once",
            broker_commit_interval=s.commit_interval_s,
            broker_session_timeout=s.kafka_session_timeout_s,
            broker_heartbeat_interval=s.kafka_session_timeout_s / 3,
            consumer_auto_offset_reset="earliest",
            producer_acks=-1,
            producer_linger=0.005,
            producer_max_batch_size=256 * 1024,
            stream_wait_empty=True,
        )
        shorten_fetch_wait(app_id, s.fetch_max_wait_ms)
        self.topics = {
            # raw codecs: Faust would otherwise JSON-decode every value (value_type=bytes does
            # not imply raw for topics) and stall the stream on bytes that are not JSON
            name: self.app.topic(
                s.topic(name),
                key_type=bytes,
                value_type=bytes,
                key_serializer="raw",
                value_serializer="raw",
                partitions=1 if name in single_partition else s.partitions,
            )
            for name in TOPICS
        }
        self.names = {name: topic.get_topic_name() for name, topic in self.topics.items()}
        self.inputs: set[str] = set()  # topics of the agents (committed by the group)
        self.busy: set[str] = set()  # topics whose agent is in the middle of a batch
        self.before_leaving: list[Callable[[], None]] = []  # run before a restart
        self._checks: list[Continuity] = []
        self._broker: Broker | None = None
        self._guard: CommitGuard | None = None
        self._stalls = StallWatch(s.stall_restart_s)
        self._revoked: list[Hook] = []
        self._restored: list[Hook] = []
        self._stopping: list[Hook] = []
        self._started: list[Callable[[], None]] = []
        self.app.on_partitions_revoked.connect(self._on_revoked)  # type: ignore[arg-type]
        self.app.on_rebalance_complete.connect(self._on_restored)  # type: ignore[arg-type]
        self.app.on_before_shutdown.connect(self._on_stopping)  # type: ignore[arg-type]

    # ------------------------------------------------------------- state
    def table(self, name: str) -> Table:
        """A table of ``partitions`` like the agents' topics, restored from its changelog."""
        parts = self.settings.partitions
        t = self.app.Table(name, key_type=bytes, value_type=bytes, partitions=parts)
        return Table(name, t.changelog_topic.get_topic_name(), parts, lambda: store_of(t))

    @property
    def should_stop(self) -> bool:
        return bool(self.app.should_stop)

    @property
    def generation(self) -> int:
        """The consumer group's generation: it changes with every rebalance."""
        return int(self.app.consumer_generation_id)

    def assignment(self) -> list[TP]:
        """Partitions of the agents' topics assigned here now (Faust also assigns table
        changelogs, read only to restore them, and its leader topic: not these)."""
        return [
            (tp.topic, tp.partition)
            for tp in self.app.consumer.assignment()
            if tp.topic in self.inputs
        ]

    def assigned(self, topic: str) -> set[int]:
        """Partitions of the logical ``topic`` assigned here now."""
        name = self.names[topic]
        return {tp.partition for tp in self.app.consumer.assignment() if tp.topic == name}

    def exit_code(self) -> int:
        """70 once the app has crashed (its services stop as on SIGTERM), else 0."""
        return EXIT_CRASHED if self.app.crash_reason is not None else 0

    # ------------------------------------------------------------- wiring
    def agent(self, topic: str, name: str, work: Work, checked: bool = True) -> None:
        """Run ``work`` on each batch of ``topic`` (``batch_size`` records, or what came
        within ``batch_within_s``), whole. ``checked``: the worker's agents, whose
        records Faust must hand over without holes and whose commits stay behind
        what they finished (needs the worker's consumer group)."""
        n, within = self.settings.batch_size, self.settings.batch_within_s
        source = self.names[topic]
        self.inputs.add(source)
        check = self._check() if checked else None

        async def checked_work(records: list[Record]) -> None:
            if check is not None:
                holes = await check.check(delivered(records))
                if holes:
                    self.restart(name, f"records never delivered ({describe(holes)})")
            await work(records)

        async def batches(stream: Any) -> None:
            async for events in stream.take_events(n, within=within):
                records = records_of(events)
                self.busy.add(source)
                try:  # the check too: an agent that raised would stop taking batches
                    await guarded(name, checked_work(records))
                finally:
                    self.busy.discard(source)
                if self._guard is not None:
                    self._guard.finished(records)

        batches.__name__ = batches.__qualname__ = name.replace("-", "_")  # Faust's log label
        self.app.agent(self.topics[topic], name=name, concurrency=1)(batches)

    def _check(self) -> Continuity:
        if self._broker is None:
            self._broker = Broker(self.settings)
            self._guard = CommitGuard(())
            self._guard.topics = self.inputs  # the same set: agents added later are capped too
            self._guard.install(self.app.consumer)
        self._checks.append(Continuity(self._broker.committed, self._broker.holds_records))
        return self._checks[-1]

    def timer(self, seconds: float) -> Callable[[Callable[[], Awaitable[None]]], Any]:
        return self.app.timer(seconds)  # type: ignore[no-any-return]

    def task(self, fn: Callable[[], Awaitable[None]]) -> Any:
        return self.app.task(fn)

    def on_revoked(self, fn: Hook) -> None:
        """``fn(tps)`` when a rebalance begins, with the partitions taken away."""
        self._revoked.append(fn)

    def on_restored(self, fn: Hook) -> None:
        """``fn()`` when a rebalance ends and the tables hold their whole changelogs."""
        self._restored.append(fn)

    def on_started(self, fn: Callable[[], None]) -> None:
        """``fn()`` once the worker handles SIGTERM and SIGINT itself (graceful stops).
        Start child processes here, not before: ``multiprocessing`` unblocks the stop
        signals a restart held back (its resource tracker), and one that arrives before
        Faust's handlers would kill the worker outright."""
        self._started.append(fn)

    def on_stopping(self, fn: Hook) -> None:
        """``fn()`` when the worker stops, before its producer does."""
        self._stopping.append(fn)

    async def _on_revoked(self, _: Any, revoked: set[Any], **__: Any) -> None:
        tps = {(tp.topic, tp.partition) for tp in revoked}
        for c in self._checks:
            c.forget(tps)
        if self._guard is not None:
            self._guard.forget(tps)
        await _call(self._revoked, tps)

    async def _on_restored(self, _: Any, **__: Any) -> None:
        await _call(self._restored)

    async def _on_stopping(self, _: Any, **__: Any) -> None:
        await _call(self._stopping)

    # ------------------------------------------------------------- restarts
    def stalled(self, positions: dict[TP, Position], now: float) -> list[TP]:
        """Partitions assigned here that Faust stopped fetching (``StallWatch``)."""
        return self._stalls.observe(positions, now, self.busy)

    def restart(self, stage: str, why: str) -> None:
        """Replace this process by a fresh worker (``restart.restart``), out of the group
        first; a worker asked to stop exits instead."""
        restart(stage, why, stopping=self.should_stop, code=self.exit_code(), leave=self.leave)

    def leave(self) -> None:
        """Out of the group before a restart (faust-streaming 0.15.3, pinned: the
        consumer thread's aiokafka consumer and loop); ``before_leaving`` runs first."""
        for fn in self.before_leaving:
            fn()
        thread = self.app.consumer._thread  # type: ignore[attr-defined]
        leave_group(thread._ensure_consumer(), thread.thread_loop)

    def run(self, loglevel: str = "info") -> None:
        """Run the worker until SIGTERM/SIGINT (graceful: commits, flushes). Exits 70
        when a task or timer crashed: Faust itself would stop cleanly and exit 0, and
        a supervisor must see the failure and start the worker again."""

        @self.app.task
        async def started() -> None:
            """The worker is up and handles stop signals: take any a restart held back,
            then run the ``on_started`` hooks."""
            watch_stop_signals()
            accept_stop_signals()
            for fn in self._started:
                fn()
            heap.settle()

        worker = faust.Worker(self.app, loglevel=loglevel, redirect_stdouts=False)
        try:
            worker.execute_from_commandline()
        except SystemExit as done:
            if done.code in (0, None) and self.exit_code():
                raise SystemExit(self.exit_code()) from self.app.crash_reason
            raise


async def _call(hooks: list[Hook], *args: Any) -> None:
    for fn in hooks:
        result = fn(*args)
        if inspect.isawaitable(result):
            await result


def store_of(table: Any) -> MutableMapping[bytes, bytes]:
    """What holds a Faust table's values: the memory store's own dict where there is one
    (its ``get`` went through ``Mapping.get`` and a ``KeyError`` per missing key, 1-2 µs),
    else the store. Faust keeps that dict for the store's life (a rebalance clears it)."""
    store = table.data
    inner = getattr(store, "data", None)
    return inner if isinstance(inner, dict) else store
