"""Fixtures for tests against the real servers: reading whole topics."""

from __future__ import annotations

import uuid
from collections.abc import Callable

import pytest
from confluent_kafka import Consumer, TopicPartition

from schemas.settings import Settings, kafka_client_config


def read_topic(settings: Settings, topic: str) -> list[tuple[bytes | None, bytes | None]]:
    conf = kafka_client_config(settings)
    conf.update(
        {
            "group.id": f"test-{uuid.uuid4().hex}",
            "enable.auto.commit": False,
            "auto.offset.reset": "earliest",
        }
    )
    consumer = Consumer(conf)
    try:
        md = consumer.list_topics(topic, timeout=10).topics[topic]
        out: list[tuple[bytes | None, bytes | None]] = []
        for p in md.partitions:
            lo, hi = consumer.get_watermark_offsets(TopicPartition(topic, p), timeout=10)
            if hi <= lo:
                continue
            consumer.assign([TopicPartition(topic, p, lo)])
            seen = lo
            while seen < hi:
                msg = consumer.poll(5)
                if msg is None:
                    raise TimeoutError(f"{topic}[{p}] stalled at {seen} of {hi}")
                if msg.error():
                    continue
                out.append((msg.key(), msg.value()))
                seen = msg.offset() + 1
        return out
    finally:
        consumer.close()


@pytest.fixture
def topic_reader() -> Callable[[Settings, str], list[tuple[bytes | None, bytes | None]]]:
    return read_topic
