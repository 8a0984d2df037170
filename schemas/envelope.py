"""Partition-batched envelopes: how the internal topics carry records (not a public contract).

The stream engine pays a fixed cost per Kafka record. On the internal topics
(``identity``, ``events``) one record, an *envelope*, therefore carries every item of a
batch whose key hashes to the same partition: the engine's cost is paid per envelope,
and every item still lands on the partition (and so the table partition) its key
belongs to.

Wire format, one JSON object per Kafka record (the record's key is empty)::

    {"env": 1, "p": 3, "items": [[key, record, src], ...]}

* ``p``: the partition the envelope was produced to;
* ``key``: the item's key (an alias or profile key), whose murmur2 hash names ``p``;
* ``record``: the item itself (``{"k": "event", ...}``, ``{"k": "link", ...}``, ...);
* ``src``: where it came from, ``[topic, partition, offset]`` of the source record, or
  null (commands and records made inside the pipeline).

A record that is not an envelope (written by an older version, or sent back by
``segstream dlq replay``) reads as an envelope of one item keyed by the record's key.

Each item gets a *position*: the envelope's offset times ``MAX_ITEMS`` plus its index.
Positions grow along a partition as offsets do, so the per-partition "last applied"
marks that make replays exact keep working item by item.

>>> packer = Packer(partitions=4, max_bytes=1024)
>>> packer.add("events", "u:1", {"k": "event"}, ("web", 0, 7))
>>> [(topic, p, value) for topic, p, value in packer.envelopes()]
[('events', 3, b'{"env":1,"p":3,"items":[["u:1",{"k":"event"},["web",0,7]]]}')]
>>> value = b'{"env":1,"p":3,"items":[["u:1",{"k":"event"},["web",0,7]]]}'
>>> items, misfits = unpack(value, None, 3, 12, partitions=4)
>>> items[0].key, items[0].record, items[0].src, items[0].position, misfits
('u:1', {'k': 'event'}, ('web', 0, 7), 786432, [])
>>> unpack(value, None, 2, 12, partitions=4)[1][0].reason  # on another partition
'wrong_partition'
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, NamedTuple

import orjson
from murmurhash2 import murmurhash2

VERSION = 1
MAX_ITEMS = 1 << 16  # items in one envelope; also the position's stride per offset
Source = tuple[str, int, int]  # topic, partition, offset


MURMUR2_SEED = 0x9747B28C  # the Java client's (org.apache.kafka.common.utils.Utils)


def partition_for(key: bytes, partitions: int) -> int:
    """The partition of ``key`` among ``partitions`` (as the producers' murmur2
    partitioner and Faust's tables place it). In C: 0.3 µs for a 66-byte alias, where
    aiokafka's pure-Python murmur2 took 10 µs (every item is placed by the edge and
    checked again by the worker)."""
    return (murmurhash2(key, MURMUR2_SEED) & 0x7FFFFFFF) % partitions


class Item(NamedTuple):
    """One item of an envelope, as a stage works on it (a tuple: made per item)."""

    key: str
    record: dict[str, Any]
    src: Source | None
    partition: int  # of the envelope
    offset: int  # of the envelope
    position: int  # offset * MAX_ITEMS + index: grows along the partition


@dataclass(frozen=True, slots=True)
class Misfit:
    """An item that cannot be worked on here: ``reason`` and the item's bytes."""

    reason: str
    detail: str
    key: str | None
    raw: bytes
    src: Source | None


class Packer:
    """Collects a batch's items and cuts them into envelopes, one or more per destination
    topic and partition, each at most ``max_bytes`` (an item larger than that travels
    alone) and ``MAX_ITEMS`` items."""

    def __init__(self, partitions: int, max_bytes: int) -> None:
        self.partitions = partitions
        self.max_bytes = max_bytes
        self.open: dict[tuple[str, int], tuple[list[bytes], int]] = {}
        self.done: list[tuple[str, int, bytes]] = []
        self.items = 0

    def add(self, topic: str, key: str, record: dict[str, Any], src: Source | None) -> None:
        self.add_encoded(topic, key, orjson.dumps([key, record, src]))

    def add_encoded(self, topic: str, key: str, item: bytes) -> None:
        """An item already encoded as ``[key, record, src]``."""
        part = partition_for(key.encode(), self.partitions)
        where = (topic, part)
        parts, size = self.open.get(where, ([], 0))
        if parts and (size + len(item) + 1 > self.max_bytes or len(parts) >= MAX_ITEMS):
            self.done.append((topic, part, _envelope(part, parts)))
            parts, size = [], 0
        parts.append(item)
        self.open[where] = (parts, size + len(item) + 1)
        self.items += 1

    def envelopes(self) -> list[tuple[str, int, bytes]]:
        """``(topic, partition, value)`` of every envelope so far (the packer is emptied)."""
        out = self.done + [(t, p, _envelope(p, parts)) for (t, p), (parts, _) in self.open.items()]
        self.open, self.done, self.items = {}, [], 0
        return out


def _envelope(partition: int, items: list[bytes]) -> bytes:
    return b'{"env":1,"p":%d,"items":[%b]}' % (partition, b",".join(items))


def unpack(
    value: bytes | None, key: bytes | None, partition: int, offset: int, partitions: int
) -> tuple[list[Item], list[Misfit]]:
    """The items of the record at ``partition``/``offset``, and those that cannot be used
    (malformed, or keyed to another partition: the topic's partition count changed)."""
    base = offset * MAX_ITEMS
    try:
        data = orjson.loads(value or b"")
    except orjson.JSONDecodeError as exc:
        return [], [Misfit("malformed_envelope", str(exc), None, value or b"", None)]
    if not (isinstance(data, dict) and "env" in data):  # a record of one item
        if key is None or not isinstance(data, dict):
            detail = "no key" if key is None else "not an object"
            return [], [Misfit("malformed_envelope", detail, None, value or b"", None)]
        text = key.decode(errors="replace")
        return _placed([Item(text, data, None, partition, offset, base)], [], partitions)
    if data.get("env") != VERSION or not isinstance(data.get("items"), list):
        detail = f"unknown envelope version {data.get('env')!r}"
        return [], [Misfit("malformed_envelope", detail, None, value or b"", None)]
    items: list[Item] = []
    misfits: list[Misfit] = []
    for index, entry in enumerate(data["items"]):
        try:
            item_key, record, src = entry
            if not isinstance(item_key, str) or not isinstance(record, dict):
                raise ValueError("an item is [key, record, src]")
            source = (str(src[0]), int(src[1]), int(src[2])) if src else None
        except (TypeError, ValueError, IndexError) as exc:
            misfits.append(Misfit("malformed_envelope", str(exc), None, orjson.dumps(entry), None))
            continue
        items.append(Item(item_key, record, source, partition, offset, base + index))
    return _placed(items, misfits, partitions)


def _placed(
    items: list[Item], misfits: list[Misfit], partitions: int
) -> tuple[list[Item], list[Misfit]]:
    """Keep the items whose key belongs to their envelope's partition."""
    kept = []
    for item in items:
        home = partition_for(item.key.encode(), partitions)
        if home == item.partition:
            kept.append(item)
        else:
            detail = f"key hashes to partition {home}, the envelope is on {item.partition}"
            raw = orjson.dumps([item.key, item.record, item.src])
            misfits.append(Misfit("wrong_partition", detail, item.key, raw, item.src))
    return kept, misfits
