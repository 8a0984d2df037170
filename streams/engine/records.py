"""What the engine hands a stage: plain records, Faust's events left behind."""

from __future__ import annotations

from typing import NamedTuple

TP = tuple[str, int]


class Record(NamedTuple):
    """One Kafka record of an agent's batch, where it was read (topic, partition, offset)."""

    topic: str
    partition: int
    offset: int
    key: bytes | None
    value: bytes | None

    @property
    def where(self) -> tuple[str, int, int]:
        return self.topic, self.partition, self.offset
