"""The workers' producer: librdkafka (confluent-kafka), awaited per batch.

Faust's own producer (aiokafka) costs a future, a metadata lookup and a partitioner
call in Python per record; here ``produce`` queues each record in C, a thread of the
sender's own serves the delivery reports, and ``send`` returns once every record of
its batch is acknowledged. Each batch waits for its own records only: a ``flush`` would
also wait for every other stage's records in the queue (an identity batch of ten
records waited up to 160 ms behind a profile batch's thousands). confluent-kafka's
``AIOProducer`` would cost a future per record. Records keyed for ``identity``,
``events`` and the tables' changelogs must land on the partition
``Runtime.partition_of`` computes, so the partitioner is the Java client's murmur2
(``schemas.envelope.partition_for``).
"""

from __future__ import annotations

import asyncio
import logging
import threading
import time
from collections.abc import Iterable
from typing import Any

from confluent_kafka import KafkaException, Producer

from segstream.schemas.settings import Settings
from segstream.streams import metrics
from segstream.streams.produce import producer_config

log = logging.getLogger("segstream.worker")
Record = tuple[str, bytes | None, bytes | None, int | None]  # topic, key, value, partition
RETRY_MAX_S = 5.0
WAIT_WARN_S = 10.0  # a batch not acknowledged by then is logged (and waited for)
MESSAGE_TIMEOUT_MS = 30_000  # a delivery not done by then fails, and ``send`` retries it
REPORTS_LOST_S = 4 * MESSAGE_TIMEOUT_MS / 1000  # reports still missing then never come
REPORT_WAIT_S = 0.1
QUEUE_FULL_WAIT_S = 0.005


class Pending:
    """The delivery reports one batch still waits for (counted in the reporting thread)."""

    def __init__(self, loop: asyncio.AbstractEventLoop) -> None:
        self.loop = loop
        self.lock = threading.Lock()
        self.left = 0
        self.all_queued = False
        self.done = loop.create_future()

    def queued(self) -> None:
        with self.lock:
            self.left += 1

    def reported(self) -> None:  # the reporting thread
        with self.lock:
            self.left -= 1
            finished = self.all_queued and self.left == 0
        if finished:
            self.loop.call_soon_threadsafe(self._finish)

    def close(self) -> None:  # the event loop, once every record is queued
        with self.lock:
            self.all_queued = True
            finished = self.left == 0
        if finished:
            self._finish()

    def _finish(self) -> None:
        if not self.done.done():
            self.done.set_result(None)


class Sender:
    """Send records and wait until the broker has every one; failures are retried."""

    def __init__(self, settings: Settings) -> None:
        # a delivery not done by then fails, and ``send`` retries it; the batches are
        # formed already, so librdkafka need not linger for more
        self.config = {
            **producer_config(settings),
            "message.timeout.ms": MESSAGE_TIMEOUT_MS,
            "linger.ms": 1,
        }
        self.producer = Producer(self.config)
        self.polled = [self.producer]  # a replaced producer is served until it is empty
        self.reporter = threading.Thread(target=self._report, name="sender", daemon=True)
        self.reporter.start()

    def _report(self) -> None:
        """Serve delivery reports (they call ``Pending.reported``) for the process's life.

        Nothing may end this thread: every batch waits on its reports. A chaos run (broker
        restart) saw ``poll`` raise ``SystemError: _PyErr_SetObject: exception <class
        'str'> is not a BaseException subclass`` from inside confluent-kafka 2.16; the
        thread died and the worker waited for the broker forever."""
        while True:
            for prod in list(self.polled):
                try:
                    prod.poll(REPORT_WAIT_S / len(self.polled))
                except Exception:
                    log.exception("serving delivery reports failed; serving them on")
                    time.sleep(REPORT_WAIT_S)
                if prod is not self.producer and len(prod) == 0:
                    self.polled.remove(prod)

    async def send(self, records: Iterable[Record]) -> None:
        """Duplicates a retry may cause are harmless: every consumer dedupes."""
        pending = list(records)
        delay = 0.1
        while pending:
            failed = await self._attempt(pending)
            if failed:
                metrics.KAFKA_SEND_ERRORS.inc(len(failed))
                log.warning("retrying %d failed sends in %.1fs", len(failed), delay)
                await asyncio.sleep(delay)
                delay = min(delay * 2, RETRY_MAX_S)
            pending = failed

    async def _attempt(self, records: list[Record]) -> list[Record]:
        failed: list[Record] = []
        fatal: list[Any] = []
        batch = Pending(asyncio.get_running_loop())

        def done(err: Any, msg: Any) -> None:  # runs in the reporting thread
            if err is not None:
                part = msg.partition()
                failed.append((msg.topic(), msg.key(), msg.value(), part if part >= 0 else None))
                if err.fatal():
                    fatal.append(err)
            batch.reported()

        prod = self.producer  # waited for below even if a fatal error replaces it meanwhile
        produce = prod.produce
        for topic, key, value, partition in records:
            while True:
                try:
                    batch.queued()
                    if partition is None:
                        produce(topic, value, key, on_delivery=done)
                    else:
                        produce(topic, value, key, partition, on_delivery=done)
                    break
                except BufferError:  # the local queue is full: let deliveries drain
                    batch.reported()
                    await asyncio.sleep(QUEUE_FULL_WAIT_S)
                except KafkaException as exc:
                    batch.reported()
                    log.warning("could not queue a record for %s: %s", topic, exc)
                    failed.append((topic, key, value, partition))
                    break
        batch.close()
        waited = 0.0
        while True:  # still waiting: the broker is away (``message.timeout.ms`` ends it)
            try:
                await asyncio.wait_for(asyncio.shield(batch.done), WAIT_WARN_S)
                break
            except TimeoutError:
                waited += WAIT_WARN_S
                if waited >= REPORTS_LOST_S:  # past every timeout: a report went missing
                    log.error(
                        "%d delivery reports missing after %.0f s; sending the batch again",
                        batch.left,
                        waited,
                    )
                    # duplicates are harmless; a batch waited on forever is not
                    return list(records)
                log.warning("the broker has not taken this batch yet; still waiting")
        if fatal and self.producer is prod:  # an idempotent producer's fatal error is final
            log.error("producer failed (%s); starting a new one", fatal[0])
            self.producer = Producer(self.config)
            self.polled.append(self.producer)
        return failed
