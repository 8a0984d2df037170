"""The workers' producer: librdkafka (confluent-kafka), one flush per batch.

Faust's own producer (aiokafka) costs a future, a metadata lookup and a partitioner
call in Python per record; here ``produce`` queues each record in C and one
``flush`` per batch, in a thread of its own, waits until the broker holds them all.
Records keyed for ``identity``, ``events`` and the tables' changelogs must land on the
partition ``Runtime.partition_of`` computes, so the partitioner is the Java client's
murmur2, as aiokafka's.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Iterable
from concurrent.futures import ThreadPoolExecutor
from typing import Any

from confluent_kafka import KafkaException, Producer

from segstream.schemas.settings import Settings
from segstream.streams import metrics
from segstream.streams.produce import producer_config

log = logging.getLogger("segstream.worker")
Record = tuple[str, bytes | None, bytes | None, int | None]  # topic, key, value, partition
RETRY_MAX_S = 5.0
FLUSH_WAIT_S = 10.0


class Sender:
    """Send records and wait until the broker has every one; failures are retried."""

    def __init__(self, settings: Settings) -> None:
        # a delivery not done by then fails, and ``send`` retries it
        self.config = {**producer_config(settings), "message.timeout.ms": 30_000}
        self.producer = Producer(self.config)
        self.pool = ThreadPoolExecutor(4, thread_name_prefix="flush")

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

        def done(err: Any, msg: Any) -> None:  # runs in the flushing thread
            if err is not None:
                part = msg.partition()
                failed.append((msg.topic(), msg.key(), msg.value(), part if part >= 0 else None))
                if err.fatal():
                    fatal.append(err)

        prod = self.producer  # flushed below even if a fatal error replaces it meanwhile
        produce = prod.produce
        for topic, key, value, partition in records:
            while True:
                try:
                    if partition is None:
                        produce(topic, value, key, on_delivery=done)
                    else:
                        produce(topic, value, key, partition, on_delivery=done)
                    break
                except BufferError:  # the local queue is full: let deliveries drain
                    await self._flush(prod, 1.0)
                except KafkaException as exc:
                    log.warning("could not queue a record for %s: %s", topic, exc)
                    failed.append((topic, key, value, partition))
                    break
        while await self._flush(prod, FLUSH_WAIT_S):  # still queued: the broker is away
            log.warning("the broker has not taken this batch yet; still waiting")
        if fatal and self.producer is prod:  # an idempotent producer's fatal error is final
            log.error("producer failed (%s); starting a new one", fatal[0])
            self.producer = Producer(self.config)
        return failed

    async def _flush(self, prod: Producer, timeout: float) -> int:
        loop = asyncio.get_running_loop()
        left: int = await loop.run_in_executor(self.pool, prod.flush, timeout)
        return left
