"""Fixtures for tests against the real servers: reading whole topics."""

from __future__ import annotations

import uuid
from collections.abc import Callable
from pathlib import Path

import pytest
from confluent_kafka import Consumer, TopicPartition

from consumers.sample import start_worker, stop_worker, wait_for_segments
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


def run_worker_until_segmented(
    settings: Settings,
    log: Path,
    profiles: list[str],
    env: dict[str, str] | None = None,
    timeout: float = 300,
) -> None:
    """A real ``segstream worker`` process until every profile has a segment; then SIGTERM.

    Asserts the worker shut down cleanly (exit 0); the log tail explains a failure.
    """
    proc = start_worker(
        settings,
        log,
        env={
            "SEGSTREAM_NAMESPACE": settings.namespace,
            "SEGSTREAM_METRICS_PORT": "0",
            "SEGSTREAM_PUBLISH_EVERY_S": "2",
            **(env or {}),
        },
    )
    try:
        wait_for_segments(settings, profiles, timeout=timeout, settle=5, proc=proc)
    finally:
        code = stop_worker(proc)
    assert code == 0, log.read_text()[-3000:]


@pytest.fixture(scope="session")
def segmented() -> Callable[..., None]:
    return run_worker_until_segmented
