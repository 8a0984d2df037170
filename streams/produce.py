"""Producing input events: the synthetic sample stream and replays of exported history."""

from __future__ import annotations

from collections.abc import Callable, Iterable

import orjson
from confluent_kafka import Producer

from models.synthetic import Generated
from schemas.settings import Settings, kafka_client_config


def producer(settings: Settings) -> Producer:
    conf = kafka_client_config(settings)
    conf.update(
        {"enable.idempotence": True, "acks": "all", "linger.ms": 10, "compression.type": "lz4"}
    )
    return Producer(conf)


def send_all(
    settings: Settings,
    records: Iterable[tuple[str, bytes | None, bytes]],
    on_progress: Callable[[int], None] | None = None,
) -> int:
    """Produce ``(source, key, value)`` records to the source topics; returns how many."""
    prod = producer(settings)
    errors: list[str] = []

    def delivered(err: object, _msg: object) -> None:
        if err is not None:
            errors.append(str(err))

    n = 0
    for source, key, value in records:
        while True:
            try:
                prod.produce(settings.topic(source), key=key, value=value, on_delivery=delivered)
                break
            except BufferError:  # local queue full: let deliveries drain
                prod.poll(0.1)
        n += 1
        if n % 10_000 == 0:
            prod.poll(0)
            if on_progress:
                on_progress(n)
    prod.flush(60)
    if errors:
        raise RuntimeError(f"{len(errors)} records were not delivered: {errors[0]}")
    if on_progress:
        on_progress(n)
    return n


def generated_records(events: Iterable[Generated]) -> Iterable[tuple[str, bytes, bytes]]:
    for e in events:
        yield e.source, e.key.encode(), orjson.dumps(e.value)
