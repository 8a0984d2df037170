"""The workers' librdkafka producer against the real broker: keyed records land where
``partition_of`` says (the tables and the ``events`` stage depend on it), tombstones stay
tombstones, and a batch is in the broker when ``send`` returns."""

from __future__ import annotations

import asyncio
from collections.abc import Callable

import pytest
from aiokafka.partitioner import murmur2
from confluent_kafka import Consumer, TopicPartition

from segstream.schemas.settings import Settings, kafka_client_config
from segstream.streams.sender import Sender
from segstream.streams.topics import ensure_topics

pytestmark = pytest.mark.integration


def records_of(settings: Settings, topic: str) -> list[tuple[int, bytes | None, bytes | None]]:
    """(partition, key, value) of every record of ``topic``, read to its end now."""
    conf = kafka_client_config(settings)
    conf.update({"group.id": "test-sender", "enable.auto.commit": False})
    consumer = Consumer(conf)
    out = []
    try:
        for part in range(settings.partitions):
            lo, hi = consumer.get_watermark_offsets(TopicPartition(topic, part), timeout=10)
            consumer.assign([TopicPartition(topic, part, lo)])
            pos = lo
            while pos < hi:
                msg = consumer.poll(10)
                assert msg is not None, f"{topic}[{part}] stalled at {pos}"
                if msg.error():
                    continue
                out.append((msg.partition(), msg.key(), msg.value()))
                pos = msg.offset() + 1
    finally:
        consumer.close()
    return out


def test_keyed_records_land_on_the_partition_the_tables_expect(
    make_settings: Callable[..., Settings],
) -> None:
    settings = make_settings(partitions=6)
    ensure_topics(settings)
    topic = settings.topic("events")
    keys = [f"user-{i}".encode() for i in range(300)]

    async def go() -> None:
        sender = Sender(settings)
        await sender.send((topic, k, b"v-" + k, None) for k in keys)
        await sender.send([(topic, keys[0], None, None), (topic, b"pinned", b"x", 5)])

    asyncio.run(go())  # returns only once the broker holds every record
    got = records_of(settings, topic)
    assert len(got) == len(keys) + 2
    for part, key, _value in got:
        assert key is not None
        if key == b"pinned":
            assert part == 5
            continue
        assert part == (murmur2(key) & 0x7FFFFFFF) % settings.partitions, key
    tombstones = [(k, v) for _, k, v in got if v is None]
    assert tombstones == [(keys[0], None)]
