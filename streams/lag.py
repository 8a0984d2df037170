"""How far the worker group is behind: committed offsets against end offsets.

Read with a confluent-kafka consumer that never joins the group (``committed`` and
``get_watermark_offsets`` only), in a thread so the event loop keeps running. The
figures are the group's, whichever worker holds a partition, so a worker that hangs
shows its lag growing and a partition that moved away is not reported twice.
"""

from __future__ import annotations

import asyncio
import logging
from dataclasses import dataclass

from confluent_kafka import Consumer, TopicPartition

from segstream.schemas.settings import SOURCES, Settings, kafka_client_config
from segstream.streams import metrics

TIMEOUT_S = 5.0
log = logging.getLogger("segstream.worker")


@dataclass(frozen=True, slots=True)
class Position:
    committed: int  # next offset the group will process (the start when none committed)
    end: int  # high-water mark

    @property
    def lag(self) -> int:
        return max(self.end - self.committed, 0)


class Offsets:
    """The workers' positions: the source topics in the edge's group, ``training`` as far
    as the trainer has read it (committed by its lease, ``streams.trainer_process``),
    the rest in the worker group."""

    def __init__(self, settings: Settings) -> None:
        def consumer(group: str) -> Consumer:
            conf = {**kafka_client_config(settings), "group.id": group}
            return Consumer({**conf, "enable.auto.commit": False})

        self.consumer = consumer(settings.consumer_group)
        self.edge = consumer(settings.edge_group)
        self.trainer = consumer(settings.trainer_group)
        self.sources = {settings.topic(s) for s in SOURCES}
        self.training = settings.topic("training")

    def read(self, tps: list[tuple[str, int]]) -> dict[tuple[str, int], Position]:
        out = {}
        others = {*self.sources, self.training}
        for consumer, wanted in (
            (self.edge, [tp for tp in tps if tp[0] in self.sources]),
            (self.trainer, [tp for tp in tps if tp[0] == self.training]),
            (self.consumer, [tp for tp in tps if tp[0] not in others]),
        ):
            if not wanted:
                continue
            asked = [TopicPartition(topic, p) for topic, p in wanted]
            for tp in consumer.committed(asked, timeout=TIMEOUT_S):
                lo, hi = consumer.get_watermark_offsets(tp, timeout=TIMEOUT_S, cached=False)
                out[(tp.topic, tp.partition)] = Position(tp.offset if tp.offset >= 0 else lo, hi)
        return out

    async def read_async(self, tps: list[tuple[str, int]]) -> dict[tuple[str, int], Position]:
        return await asyncio.to_thread(self.read, tps)

    def close(self) -> None:
        self.consumer.close()
        self.edge.close()
        self.trainer.close()


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
