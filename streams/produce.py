"""Producing to Kafka from the CLI: input events (the synthetic sample stream, replays of
exported history) and the records commands write (erasures, audit entries, API keys)."""

from __future__ import annotations

from collections.abc import Callable, Iterable
from typing import Any

import orjson
from confluent_kafka import Producer

from segstream.models.synthetic import Generated
from segstream.schemas.settings import Settings, kafka_client_config


def producer_config(settings: Settings) -> dict[str, Any]:
    """What every segstream producer shares: idempotent, every replica acknowledges, lz4,
    and the Java client's murmur2 partitioner, so keyed records land on the
    partitions the workers' tables expect (``Runtime.partition_of``)."""
    conf = kafka_client_config(settings)
    conf.update(
        {
            "enable.idempotence": True,
            "acks": "all",
            "linger.ms": 5,
            "compression.type": "lz4",
            "partitioner": "murmur2_random",
        }
    )
    return conf


def producer(settings: Settings) -> Producer:
    return Producer(producer_config(settings))


def send_all(
    settings: Settings,
    records: Iterable[tuple[str, bytes | None, bytes]],
    on_progress: Callable[[int], None] | None = None,
) -> int:
    """Produce ``(source, key, value)`` records to the source topics; returns how many."""
    named = ((settings.topic(source), key, value) for source, key, value in records)
    return deliver(settings, named, on_progress)


def deliver(
    settings: Settings,
    records: Iterable[tuple[str, bytes | None, bytes | None]],
    on_progress: Callable[[int], None] | None = None,
) -> int:
    """Produce ``(topic, key, value)`` records (value None: a tombstone) and wait until the
    broker has every one; raises RuntimeError when it does not. Returns how many."""
    prod = producer(settings)
    errors: list[str] = []

    def delivered(err: object, _msg: object) -> None:
        if err is not None:
            errors.append(str(err))

    n = 0
    for topic, key, value in records:
        while True:
            try:
                prod.produce(topic, key=key, value=value, on_delivery=delivered)
                break
            except BufferError:  # local queue full: let deliveries drain
                prod.poll(0.1)
        n += 1
        if n % 10_000 == 0:
            prod.poll(0)
            if on_progress:
                on_progress(n)
    left = prod.flush(60)
    if errors or left:
        first = errors[0] if errors else f"{left} still queued after 60 s"
        raise RuntimeError(f"{len(errors) or left} records were not delivered: {first}")
    if on_progress:
        on_progress(n)
    return n


def generated_records(events: Iterable[Generated]) -> Iterable[tuple[str, bytes, bytes]]:
    for e in events:
        yield e.source, e.key.encode(), orjson.dumps(e.value)
