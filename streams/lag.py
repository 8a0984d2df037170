"""How far the worker group is behind: committed offsets against end offsets.

Read with a confluent-kafka consumer that never joins the group (``committed`` and
``get_watermark_offsets`` only), in a thread so the event loop keeps running. The
figures are the group's, whichever worker holds a partition, so a worker that hangs
shows its lag growing and a partition that moved away is not reported twice.
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass

from confluent_kafka import Consumer, TopicPartition

from schemas.settings import Settings, kafka_client_config
from streams import metrics

TIMEOUT_S = 5.0


@dataclass(frozen=True, slots=True)
class Position:
    committed: int  # next offset the group will process (the start when none committed)
    end: int  # high-water mark

    @property
    def lag(self) -> int:
        return max(self.end - self.committed, 0)


class Offsets:
    def __init__(self, settings: Settings) -> None:
        conf = {
            **kafka_client_config(settings),
            "group.id": settings.consumer_group,
            "enable.auto.commit": False,
        }
        self.consumer = Consumer(conf)

    def read(self, tps: list[tuple[str, int]]) -> dict[tuple[str, int], Position]:
        asked = [TopicPartition(topic, p) for topic, p in tps]
        out = {}
        for tp in self.consumer.committed(asked, timeout=TIMEOUT_S):
            lo, hi = self.consumer.get_watermark_offsets(tp, timeout=TIMEOUT_S, cached=False)
            out[(tp.topic, tp.partition)] = Position(tp.offset if tp.offset >= 0 else lo, hi)
        return out

    async def read_async(self, tps: list[tuple[str, int]]) -> dict[tuple[str, int], Position]:
        return await asyncio.to_thread(self.read, tps)

    def close(self) -> None:
        self.consumer.close()


def export_lag(positions: dict[tuple[str, int], Position]) -> None:
    """Set the lag gauge for these partitions; drop the series of partitions not in them."""
    current = {(topic, str(p)) for topic, p in positions}
    for labels in _exported - current:
        metrics.CONSUMER_LAG.remove(*labels)
    for (topic, p), pos in positions.items():
        metrics.CONSUMER_LAG.labels(topic, str(p)).set(pos.lag)
    _exported.clear()
    _exported.update(current)


_exported: set[tuple[str, str]] = set()
