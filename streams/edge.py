"""The stateless edge: source records in; envelopes and dead letters out (confluent-kafka).

Parsing, validation, email hashing and the first routing hop need no state, so they
run outside the stream engine, in a process of their own (parsing holds the GIL; a
thread would take it from the engine's loop). ``segstream worker`` starts and
supervises it (``streams.edge_process``); users still start one command.

Each batch: consume up to ``batch_size`` records (waiting at most ``batch_within_s``),
parse and route each (``schemas.parse``, ``models.identity``), pack what goes on to the
internal topics into one envelope per destination partition (``schemas.envelope``),
produce, wait until the broker holds every record, then commit the batch's offsets in
the edge's own consumer group (``Settings.edge_group``). A crash in between replays the
batch: the idempotent producer and the stages' per-event dedupe make that harmless.
"""

from __future__ import annotations

import contextlib
import logging
import os
import signal
import time
from collections import Counter
from collections.abc import Iterable
from dataclasses import dataclass, field, replace
from threading import Event as Flag
from threading import Thread
from typing import Any

from confluent_kafka import Consumer, KafkaException, Producer, TopicPartition

from segstream.models.identity import Out, SentLinks, route
from segstream.schemas.envelope import Packer, Source
from segstream.schemas.parse import EventParser, Rejection, parser_for
from segstream.schemas.records import DeadLetter
from segstream.schemas.settings import SOURCES, Settings, kafka_client_config
from segstream.streams.children import child_setup
from segstream.streams.engine import heap
from segstream.streams.produce import producer_config

log = logging.getLogger("segstream.edge")
ENVELOPED = ("identity", "events")  # the internal topics that carry envelopes
RETRY_MAX_S = 5.0
FLUSH_WAIT_S = 10.0
STATS_EVERY_S = 1.0
Record = tuple[str, int | None, bytes | None, bytes | None]  # topic, partition, key, value


@dataclass
class Stats:
    """What the edge did since the last report (the worker turns it into metrics)."""

    events: Counter[tuple[str, str]] = field(default_factory=Counter)  # (source, type)
    dead: Counter[str] = field(default_factory=Counter)  # reason
    suppressed: int = 0
    batch_seconds: list[float] = field(default_factory=list)
    assigned: list[tuple[str, int]] = field(default_factory=list)  # now, not a delta

    def take(self) -> Stats:
        """This report; the counters start again from zero."""
        out = replace(self, events=Counter(self.events), dead=Counter(self.dead))
        out.batch_seconds, out.assigned = list(self.batch_seconds), list(self.assigned)
        self.suppressed = 0
        self.events.clear()
        self.dead.clear()
        self.batch_seconds.clear()
        return out


class Edge:
    """One batch of source records to the records the edge sends (pure, no I/O)."""

    def __init__(self, settings: Settings, parser: EventParser, erased: set[str]) -> None:
        self.settings = settings
        self.parser = parser
        self.erased = erased
        self.links = SentLinks(settings.link_cache_size)
        self.source_of = {settings.topic(s): s for s in SOURCES}
        self.names = {name: settings.topic(name) for name in (*ENVELOPED, "dlq")}
        self.stats = Stats()

    def batch(self, messages: Iterable[Any]) -> tuple[list[Record], list[Out]]:
        """The records to send for ``messages`` (confluent-kafka messages without errors),
        and the outs whose links are to be remembered once the broker has them."""
        packer = Packer(self.settings.partitions, self.settings.envelope_max_bytes)
        letters: list[Record] = []
        sent: list[Out] = []
        stats = self.stats
        for m in messages:
            topic = m.topic()
            source = self.source_of[topic]
            where: Source = (topic, m.partition(), m.offset())
            try:
                kind, ts = m.timestamp()  # the broker's: the time freshness is measured from
                parsed = self.parser.parse(m.value(), source, ts if kind else None)
                if isinstance(parsed, Rejection):
                    letters.append(self.letter(where, m, parsed.reason, parsed.detail))
                    continue
                stats.events[(source, parsed.type)] += 1
                outs = self.links.fresh(route(parsed))  # the event first, then new links
                if outs[0].key in self.erased:  # the person it belongs to was erased
                    stats.suppressed += 1
                    continue
                for out in outs:
                    packer.add(out.topic, out.key, out.value, where)
                sent += outs
            except Exception as exc:  # a bug must not stop the partition: dead-letter it
                log.exception("edge failed on %s/%s@%s", *where)
                letters.append(self.letter(where, m, "processing_error", type(exc).__name__))
        records: list[Record] = [
            (self.names[topic], part, None, value) for topic, part, value in packer.envelopes()
        ]
        return records + letters, sent

    def letter(self, where: Source, m: Any, reason: str, detail: str) -> Record:
        self.stats.dead[reason] += 1
        key, letter = DeadLetter.of(
            reason, detail, where, m.key(), m.value(), "edge", int(time.time() * 1000)
        )
        return self.names["dlq"], None, key, letter.to_json()


class Delivery:
    """A producer that returns only once the broker holds every record of a batch."""

    def __init__(self, settings: Settings) -> None:
        self.config = producer_config(settings)
        self.producer = Producer(self.config)

    def send(self, records: list[Record]) -> None:
        """Produce ``records`` and wait until the broker holds each one; failed deliveries
        are retried with backoff, a fatal producer error starts a new producer."""
        pending, delay = records, 0.1
        while pending:
            failed: list[Record] = []
            fatal: list[Any] = []
            prod = self.producer
            for rec in pending:
                self._produce(prod, rec, failed, fatal)
            while prod.flush(FLUSH_WAIT_S):
                log.warning("the broker has not taken this batch yet; still waiting")
            if fatal:  # an idempotent producer's fatal error is final
                log.error("producer failed (%s); starting a new one", fatal[0])
                self.producer = Producer(self.config)
            if failed:
                log.warning("retrying %d failed sends in %.1fs", len(failed), delay)
                time.sleep(delay)
                delay = min(delay * 2, RETRY_MAX_S)
            pending = failed

    @staticmethod
    def _produce(prod: Producer, rec: Record, failed: list[Record], fatal: list[Any]) -> None:
        def done(err: Any, _msg: Any) -> None:
            if err is not None:
                failed.append(rec)
                if err.fatal():
                    fatal.append(err)

        topic, part, key, value = rec
        while True:
            try:
                if part is None:
                    prod.produce(topic, value, key, on_delivery=done)
                else:
                    prod.produce(topic, value, key, part, on_delivery=done)
                return
            except BufferError:  # the local queue is full: let deliveries drain
                prod.poll(0.1)
            except KafkaException as exc:
                log.warning("could not queue a record for %s: %s", topic, exc)
                failed.append(rec)
                return

    def close(self) -> None:
        self.producer.flush(FLUSH_WAIT_S)


def follow_erasures(settings: Settings, erased: set[str], loaded: Flag, stop: Flag) -> None:
    """Keep ``erased`` equal to the ``erasures`` topic (a thread); ``loaded`` once the
    records it held at the start were read. Kafka errors are waited out."""
    while not stop.is_set():
        try:
            _follow_erasures(settings, erased, loaded, stop)
        except KafkaException as exc:
            log.warning("could not read the erasures topic (%s); retrying", exc)
            stop.wait(1.0)


def _follow_erasures(settings: Settings, erased: set[str], loaded: Flag, stop: Flag) -> None:
    consumer = Consumer(
        {**kafka_client_config(settings), "group.id": f"{settings.edge_group}-erasures",
         "enable.auto.commit": False, "auto.offset.reset": "earliest"}
    )  # fmt: skip
    tp = TopicPartition(settings.topic("erasures"), 0, 0)
    try:
        consumer.assign([tp])
        _, end = consumer.get_watermark_offsets(tp, timeout=30)
        while not stop.is_set():
            for m in consumer.consume(500, 0.5):
                if m.error():
                    continue
                alias = (m.key() or b"").decode()
                if m.value() is None:
                    erased.discard(alias)
                else:
                    erased.add(alias)
            if not loaded.is_set():
                (now,) = consumer.position([tp])
                if end == 0 or now.offset >= end:
                    loaded.set()
    finally:
        consumer.close()


def consumer_for(settings: Settings, stats: Stats) -> Consumer:
    def assigned(_: Any, tps: list[TopicPartition]) -> None:
        stats.assigned = sorted({*stats.assigned, *((tp.topic, tp.partition) for tp in tps)})

    def revoked(_: Any, tps: list[TopicPartition]) -> None:
        gone = {(tp.topic, tp.partition) for tp in tps}
        stats.assigned = [tp for tp in stats.assigned if tp not in gone]

    consumer = Consumer(
        {
            **kafka_client_config(settings),
            "group.id": settings.edge_group,
            "enable.auto.commit": False,
            "auto.offset.reset": "earliest",
            "session.timeout.ms": int(settings.kafka_session_timeout_s * 1000),
            "isolation.level": "read_committed",
        }
    )
    consumer.subscribe([settings.topic(s) for s in SOURCES], on_assign=assigned, on_revoke=revoked)
    return consumer


def main(settings: Settings, conn: Any, parent: int, loglevel: str) -> None:
    """The edge process (``multiprocessing`` spawn target): ``run`` with reports on
    ``conn``."""
    stopping, report = child_setup("edge", conn, loglevel, parent)
    try:
        code = run(settings, report, parent, stopping)
    finally:
        conn.close()
    raise SystemExit(code)


def run(settings: Settings, report: Any, parent: int, stopping: Flag | None = None) -> int:
    """The edge's loop until SIGTERM/SIGINT, ``stopping``, or its parent is gone;
    ``report(stats)`` is called about once a second with what was done meanwhile."""
    stopping = stopping or Flag()
    for sig in (signal.SIGTERM, signal.SIGINT):
        signal.signal(sig, lambda *_: stopping.set())
    erased: set[str] = set()
    loaded = Flag()
    Thread(
        target=follow_erasures, args=(settings, erased, loaded, stopping), daemon=True,
        name="erasures",
    ).start()  # fmt: skip
    edge = Edge(settings, parser_for(settings), erased)
    delivery = Delivery(settings)
    while not loaded.wait(0.5):  # the suppression list, read whole before any batch
        if stopping.is_set() or os.getppid() != parent:
            return 0
    consumer = consumer_for(settings, edge.stats)
    heap.settle()
    last_report = time.monotonic()
    committed: dict[tuple[str, int], TopicPartition] = {}
    try:
        while not stopping.is_set() and os.getppid() == parent:
            try:
                messages = consumer.consume(settings.batch_size, settings.batch_within_s)
            except KafkaException as exc:  # the broker is away: wait, librdkafka reconnects
                log.warning("consume failed (%s); retrying", exc)
                stopping.wait(0.5)
                continue
            good = []
            for m in messages:
                if m.error() is None:
                    good.append(m)
                else:
                    log.warning("consume error: %s", m.error())
            if good:
                started = time.perf_counter()
                records, sent = edge.batch(good)
                delivery.send(records)
                edge.links.remember(sent)
                committed.update({(tp.topic, tp.partition): tp for tp in commit(consumer, good)})
                edge.stats.batch_seconds.append(time.perf_counter() - started)
            if time.monotonic() - last_report >= STATS_EVERY_S:
                report(edge.stats.take())
                last_report = time.monotonic()
    finally:
        report(edge.stats.take())
        mine = {(t, p) for t, p in edge.stats.assigned}
        if last := [tp for where, tp in committed.items() if where in mine]:
            with contextlib.suppress(KafkaException):  # the broker may be away: replayed
                consumer.commit(offsets=last, asynchronous=False)
        consumer.close()  # leaves the group: its partitions go to the others at once
        delivery.close()
    return 0


def commit(consumer: Consumer, messages: list[Any]) -> list[TopicPartition]:
    """Commit the offsets after ``messages`` (their effects are at the broker); returns
    them. Asynchronous by default: the next batch need not wait (a commit lost in a crash
    only replays the batch); the last one is committed again, synchronously, at the
    stop."""
    nxt: dict[tuple[str, int], int] = {}
    for m in messages:
        nxt[(m.topic(), m.partition())] = m.offset() + 1
    offsets = [TopicPartition(t, p, o) for (t, p), o in nxt.items()]
    try:
        consumer.commit(offsets=offsets, asynchronous=True)
    except KafkaException as exc:  # a rebalance took them away: their new owner replays
        log.warning("commit failed (%s); the batch will be read again", exc)
    return offsets
