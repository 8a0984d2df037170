"""Reading whole compacted topics outside the consumer group (model, training, segments)."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from dataclasses import dataclass

from aiokafka import AIOKafkaConsumer, TopicPartition
from aiokafka.errors import KafkaError

from segstream.schemas.settings import Settings, kafka_ssl_context

READ_ERRORS = (KafkaError, OSError)  # what a reader raises while the broker is away


def aiokafka_config(settings: Settings) -> dict[str, object]:
    conf: dict[str, object] = {
        "bootstrap_servers": settings.kafka_bootstrap,
        "security_protocol": settings.kafka_security_protocol,
    }
    if settings.kafka_sasl_mechanism:
        conf["sasl_mechanism"] = settings.kafka_sasl_mechanism
        conf["sasl_plain_username"] = settings.kafka_sasl_username
        if settings.kafka_sasl_password:
            conf["sasl_plain_password"] = settings.kafka_sasl_password.get_secret_value()
    if "SSL" in settings.kafka_security_protocol:
        conf["ssl_context"] = kafka_ssl_context(settings)
    return conf


async def read_all(
    settings: Settings, topic: str, partitions: int = 1
) -> AsyncIterator[tuple[bytes, bytes | None]]:
    """Every record of ``topic`` (partitions 0..n-1) from the beginning up to its end now."""
    consumer = AIOKafkaConsumer(
        group_id=None, enable_auto_commit=False, **aiokafka_config(settings)
    )
    await consumer.start()
    try:
        tps = [TopicPartition(topic, p) for p in range(partitions)]
        consumer.assign(tps)
        await consumer.seek_to_beginning(*tps)
        ends = await consumer.end_offsets(tps)
        remaining = {tp for tp in tps if ends[tp] > 0}
        while remaining:
            batch = await consumer.getmany(*remaining, timeout_ms=1000)
            for tp, msgs in batch.items():
                for m in msgs:
                    if m.key is not None:
                        yield m.key, m.value
                if msgs and msgs[-1].offset >= ends[tp] - 1:
                    remaining.discard(tp)
            for tp in list(remaining):
                if await consumer.position(tp) >= ends[tp]:
                    remaining.discard(tp)
    finally:
        await _stop(consumer)


async def follow(
    settings: Settings,
    topic: str,
    from_start: bool = False,
    caught_up: Callable[[], None] | None = None,
) -> AsyncIterator[tuple[bytes, bytes | None]]:
    """The latest record of a one-partition compacted topic (every record, ``from_start``),
    then every new one, forever. ``caught_up`` is called once the records the topic held
    at the start have been yielded."""
    async with _assigned(settings, topic) as (consumer, (tp,)):
        end = (await consumer.end_offsets([tp]))[tp]
        if end > 0 and not from_start:
            consumer.seek(tp, end - 1)
        else:
            await consumer.seek_to_beginning(tp)
        while True:
            if caught_up is not None and await consumer.position(tp) >= end:
                caught_up()
                caught_up = None
            batch = await consumer.getmany(tp, timeout_ms=1000)
            for msgs in batch.values():
                for m in msgs:
                    if m.key is not None:
                        yield m.key, m.value


@dataclass
class Batch:
    """What ``follow_batches`` read since the last batch (maybe nothing)."""

    records: list[tuple[int, bytes, bytes | None]]  # offset, key, value
    caught_up: bool  # the records the topic held when following began are all read
    position: int  # the next offset to read
    lag: int  # records between the position and the end, as last seen


async def follow_batches(
    settings: Settings, topic: str, wait_ms: int = 200, max_records: int = 10_000
) -> AsyncIterator[Batch]:
    """Every record of a one-partition topic from its start, then every new one, in
    batches: one at least every ``wait_ms``, empty when nothing came (so the reader can
    look up from it). A plain consumer outside any group: nothing is committed."""
    async with _assigned(settings, topic) as (consumer, (tp,)):
        await consumer.seek_to_beginning(tp)
        end = (await consumer.end_offsets([tp]))[tp]
        caught_up = False
        while True:
            got = await consumer.getmany(tp, timeout_ms=wait_ms, max_records=max_records)
            records = [(m.offset, m.key, m.value) for m in got.get(tp, ()) if m.key is not None]
            position = await consumer.position(tp)
            caught_up = caught_up or position >= end
            last = consumer.last_stable_offset(tp) or consumer.highwater(tp) or end
            yield Batch(records, caught_up, position, max(0, last - position))


@asynccontextmanager
async def _assigned(
    settings: Settings, topic: str
) -> AsyncIterator[tuple[AIOKafkaConsumer, tuple[TopicPartition]]]:
    """A started consumer outside any group, assigned partition 0 of ``topic``."""
    consumer = AIOKafkaConsumer(
        group_id=None, enable_auto_commit=False, **aiokafka_config(settings)
    )
    await consumer.start()
    try:
        tp = TopicPartition(topic, 0)
        consumer.assign([tp])
        yield consumer, (tp,)
    finally:
        await _stop(consumer)


async def _stop(consumer: AIOKafkaConsumer) -> None:
    """Stop a group-less consumer.

    aiokafka 0.14's ``NoGroupCoordinator.close`` awaits a task it has just cancelled; when
    the consumer stops before that task ever ran, the CancelledError leaks out of ``stop()``.
    Re-raise it only when our own task is really being cancelled.
    """
    try:
        await consumer.stop()
    except asyncio.CancelledError:
        task = asyncio.current_task()
        if task is not None and task.cancelling():
            raise
