"""What every stage uses: sends, envelopes, dead letters, table writes and retries,
over the engine (``streams.engine``, which runs the agents).

Delivery is at-least-once with idempotent effects (see docs/failure-semantics.md):

* every agent reads batches with ``take_events`` and never lets an exception
  escape (Faust would ack, and so skip, the batch); a bad record is dead-lettered,
  a failing dependency (Kafka send, Redis) is retried until it works;
* a batch's effects are made durable in this order: records sent to other topics
  (awaited), Redis writes (awaited), then table writes (changelog sends awaited);
  only then does the agent ask for the next batch, which acks the current one;
* table values are written once per key per batch, straight to the changelog
  partition the key's events come from.
"""

from __future__ import annotations

import asyncio
import logging
from collections import OrderedDict

import orjson
import redis.asyncio as aioredis

from segstream.consumers.redis_view import SegmentWriter
from segstream.models.features import FeatureSpace, Profile, feature_space
from segstream.models.identity import Out, SentLinks
from segstream.models.segments import Snapshot
from segstream.schemas.envelope import Item, Source, partition_for, unpack
from segstream.schemas.settings import Settings
from segstream.streams.children import Child
from segstream.streams.edge_process import EdgeProcess
from segstream.streams.engine import Engine, Record, Table
from segstream.streams.outputs import ENVELOPED, Letter, Outputs
from segstream.streams.trainer_process import TrainerProcess

log = logging.getLogger("segstream.worker")
SINGLE_PARTITION = ("training", "model", "erasures", "audit", "api-keys")


class Runtime(Outputs):
    """A Faust app with segstream's topics, and the sends and writes every stage uses."""

    def __init__(self, settings: Settings, app_id: str) -> None:
        super().__init__(settings)
        self.engine = Engine(settings, app_id, SINGLE_PARTITION)
        self.lock = asyncio.Lock()  # one batch (or timer chunk) touches the tables at a time

    # ------------------------------------------------------------ records
    @staticmethod
    def out_record(out: Out, src: Source | None = None) -> tuple[str, bytes, bytes]:
        """``out`` as a record for ``send``: an envelope item (with ``src``, where it came
        from) for the internal topics, else its JSON."""
        if out.topic in ENVELOPED:
            return out.topic, out.key.encode(), orjson.dumps([out.key, out.value, src])
        return out.topic, out.key.encode(), orjson.dumps(out.value)

    def unpacked(self, batch: list[Record], stage: str) -> tuple[list[Item], list[Letter]]:
        """The items of a batch of envelopes, and dead letters for what cannot be used."""
        items: list[Item] = []
        letters: list[Letter] = []
        partitions = self.settings.partitions
        for m in batch:
            got, misfits = unpack(m.value, m.key, m.partition, m.offset, partitions)
            items += got
            for bad in misfits:
                detail = bad.detail + (f" (from {bad.src})" if bad.src else "")
                key = bad.key.encode() if bad.key is not None else m.key
                letters.append(self.letter(m.where, key, bad.raw, bad.reason, detail, stage))
        return items, letters

    def item_letter(self, topic: str, item: Item, reason: str, detail: str, stage: str) -> Letter:
        """A dead letter for one item of an envelope on ``topic``: where its envelope is,
        the item as a record of its own (``dlq replay`` sends it back as one), and where
        it came from."""
        where = (self.names[topic], item.partition, item.offset)
        if item.src:
            detail = f"{detail} (from {item.src[0]}[{item.src[1]}]@{item.src[2]})"
        raw = orjson.dumps(item.record)
        return self.letter(where, item.key.encode(), raw, reason, detail, stage)

    def dead_letter(self, m: Record, reason: str, detail: str, stage: str) -> Letter:
        return self.letter(m.where, m.key, m.value, reason, detail, stage)

    # ------------------------------------------------------------- tables
    def owned_partitions(self) -> set[int]:
        """Partitions of ``events`` assigned to this worker now."""
        return self.engine.assigned("events")

    def partition_of(self, key: bytes) -> int:
        """Partition of ``key`` on the ``events``/``identity`` topics (the producer's hash)."""
        return partition_for(key, self.settings.partitions)

    async def write_table(self, table: Table, items: dict[bytes, bytes | None]) -> None:
        """Write each key once, to the changelog partition its records come from, and
        wait: the changelog is our durability."""
        await self.sender.send(table.put(items))


class Decoded:
    """Profiles as last written to the table, decoded, so that a user's next batch does
    not decode the JSON again; the least recently used go first. Every write to the
    table drops its keys (the profile stage puts its own states back), and a rebalance
    empties it (the tables are restored from their changelogs)."""

    def __init__(self, capacity: int) -> None:
        self.capacity = capacity
        self.items: OrderedDict[bytes, Profile] = OrderedDict()

    def get(self, key: bytes) -> Profile | None:
        found = self.items.get(key)
        if found is not None:
            self.items.move_to_end(key)
        return found

    def put(self, key: bytes, profile: Profile) -> None:
        if self.capacity <= 0:
            return
        self.items[key] = profile
        self.items.move_to_end(key)
        while len(self.items) > self.capacity:
            self.items.popitem(last=False)

    def discard(self, key: bytes) -> None:
        self.items.pop(key, None)

    def clear(self) -> None:
        self.items.clear()


class Pipeline(Runtime):
    """The worker: the runtime plus its tables, feature space, Redis view and model."""

    def __init__(self, settings: Settings) -> None:
        super().__init__(settings, settings.consumer_group)
        s = settings
        self.aliases = self.engine.table("aliases")
        self.profiles = self.engine.table("profiles")
        self.space: FeatureSpace = feature_space(
            s.features, s.paid_channels, s.social_channels, s.email_channels
        )
        self.redis = aioredis.from_url(s.redis_url.get_secret_value())
        self.writer = SegmentWriter(self.redis, s)
        self.snapshot: Snapshot | None = None
        self.snapshot_changed = asyncio.Event()
        # the tables hold their whole changelogs: false from a rebalance's start until
        # its recovery has read them to the end (the worker's signal handlers flip it)
        self.tables_ready = False
        self.watermark_ms = 0
        self.erased: set[str] = set()  # aliases of erased people (the ``erasures`` topic)
        self.erasures_loaded = asyncio.Event()  # set once the whole topic has been read
        self.links = SentLinks(s.link_cache_size)  # links the broker holds: not sent twice
        self.edge = EdgeProcess(s)  # the stateless edge, its own process (``run`` starts it)
        self.trainer = TrainerProcess(s)  # the trainer, its own process too
        self.children: tuple[Child, ...] = (self.edge, self.trainer)
        self.decoded = Decoded(s.profile_cache_size)

    async def write_table(self, table: Table, items: dict[bytes, bytes | None]) -> None:
        if table is self.profiles:
            for key in items:  # the profile stage puts its states back once written
                self.decoded.discard(key)
        await super().write_table(table, items)
