"""The Faust app: topics, tables and the agents, each a thin loop over a stage.

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
import time
from collections import OrderedDict
from collections.abc import Iterable
from typing import Any

import faust
import orjson
import redis.asyncio as aioredis
from aiokafka.errors import KafkaError
from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import TimeoutError as RedisTimeoutError

from segstream.consumers.redis_view import SegmentWriter
from segstream.models.features import FeatureSpace, Profile, feature_space
from segstream.models.identity import Out, SentLinks
from segstream.models.segments import Snapshot
from segstream.schemas.envelope import Item, Packer, Source, partition_for, unpack
from segstream.schemas.records import DeadLetter
from segstream.schemas.settings import TOPICS, Settings, kafka_ssl_context
from segstream.streams import metrics
from segstream.streams.edge_process import EdgeProcess
from segstream.streams.sender import Sender

log = logging.getLogger("segstream.worker")
RETRY_MAX_S = 5.0
SINGLE_PARTITION = ("training", "model", "erasures", "audit", "api-keys")
ENVELOPED = frozenset({"identity", "events"})  # internal topics that carry envelopes
Letter = tuple[str, bytes | None, bytes]


def faust_broker_credentials(settings: Settings) -> Any:
    if settings.kafka_sasl_mechanism:
        password = settings.kafka_sasl_password
        return faust.SASLCredentials(
            username=settings.kafka_sasl_username or "",
            password=password.get_secret_value() if password else "",
            mechanism=settings.kafka_sasl_mechanism,
            ssl_context=kafka_ssl_context(settings)
            if "SSL" in settings.kafka_security_protocol
            else None,
        )
    if settings.kafka_security_protocol == "SSL":
        return faust.SSLCredentials(kafka_ssl_context(settings))
    return None


def use_event_loop(settings: Settings) -> None:
    """Before a Faust worker starts: its loop is uvloop unless the settings say asyncio's."""
    if settings.event_loop == "uvloop":
        import uvloop

        asyncio.set_event_loop_policy(uvloop.EventLoopPolicy())


class Runtime:
    """A Faust app with segstream's topics, and the sends and writes every stage uses."""

    def __init__(self, settings: Settings, app_id: str) -> None:
        self.settings = settings
        s = settings
        self.app = faust.App(
            app_id,
            broker=[f"kafka://{h.strip()}" for h in s.kafka_bootstrap.split(",")],
            broker_credentials=faust_broker_credentials(s),
            store="memory://",
            datadir=s.data_dir,
            web_enabled=False,
            table_standby_replicas=0,
            topic_partitions=s.partitions,
            topic_replication_factor=s.replication_factor,
            processing_guarantee="at_least_once",
            broker_commit_interval=s.commit_interval_s,
            broker_session_timeout=s.kafka_session_timeout_s,
            broker_heartbeat_interval=s.kafka_session_timeout_s / 3,
            consumer_auto_offset_reset="earliest",
            producer_acks=-1,
            producer_linger=0.005,
            producer_max_batch_size=256 * 1024,
            stream_wait_empty=True,
        )
        self.topics = {
            # raw codecs: Faust would otherwise JSON-decode every value (value_type=bytes does
            # not imply raw for topics) and stall the stream on bytes that are not JSON
            name: self.app.topic(
                s.topic(name),
                key_type=bytes,
                value_type=bytes,
                key_serializer="raw",
                value_serializer="raw",
                partitions=1 if name in SINGLE_PARTITION else s.partitions,
            )
            for name in TOPICS
        }
        self.names = {name: topic.get_topic_name() for name, topic in self.topics.items()}
        self.sender = Sender(settings)
        self.lock = asyncio.Lock()  # one batch (or timer chunk) touches the tables at a time

    # ------------------------------------------------------------ sending
    async def send(self, records: Iterable[tuple[str, bytes | None, bytes | None]]) -> None:
        """Send ``(topic, key, value)`` records (value None: a tombstone) and wait until the
        broker has them all; failed sends are retried. Records for the internal topics
        (``out_record``) travel in envelopes, one per destination partition."""
        names = self.names
        packer = Packer(self.settings.partitions, self.settings.envelope_max_bytes)
        plain: list[tuple[str, bytes | None, bytes | None, int | None]] = []
        for topic, key, value in records:
            if topic in ENVELOPED and key is not None and value is not None:
                packer.add_encoded(topic, key.decode(), value)
            else:
                plain.append((names[topic], key, value, None))
        plain += [(names[t], None, v, part) for t, part, v in packer.envelopes()]
        await self.sender.send(plain)

    @staticmethod
    def out_record(out: Out, src: Source | None = None) -> tuple[str, bytes, bytes]:
        """``out`` as a record for ``send``: an envelope item (with ``src``, where it came
        from) for the internal topics, else its JSON."""
        if out.topic in ENVELOPED:
            return out.topic, out.key.encode(), orjson.dumps([out.key, out.value, src])
        return out.topic, out.key.encode(), orjson.dumps(out.value)

    def unpacked(self, events: list[Any], stage: str) -> tuple[list[Item], list[Letter]]:
        """The items of a batch of envelopes, and dead letters for what cannot be used."""
        items: list[Item] = []
        letters: list[Letter] = []
        partitions = self.settings.partitions
        for ev in events:
            m = ev.message
            got, misfits = unpack(m.value, m.key, m.partition, m.offset, partitions)
            items += got
            for bad in misfits:
                detail = bad.detail + (f" (from {bad.src})" if bad.src else "")
                where = (m.topic, m.partition, m.offset)
                key = bad.key.encode() if bad.key is not None else m.key
                letters.append(self.letter(where, key, bad.raw, bad.reason, detail, stage))
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

    def dead_letter(
        self, event: Any, reason: str, detail: str, stage: str
    ) -> tuple[str, bytes | None, bytes]:
        m = event.message
        return self.letter((m.topic, m.partition, m.offset), m.key, m.value, reason, detail, stage)

    def letter(
        self,
        where: tuple[str, int, int],
        key: bytes | None,
        value: bytes | None,
        reason: str,
        detail: str,
        stage: str,
    ) -> Letter:
        """A ``dlq`` record for what was refused at ``where`` (topic, partition, offset)."""
        metrics.DLQ.labels(reason, stage).inc()
        key, letter = DeadLetter.of(
            reason, detail, where, key, value, stage, int(time.time() * 1000)
        )
        return "dlq", key, letter.to_json()

    # ------------------------------------------------------------- tables
    def owned_partitions(self) -> set[int]:
        """Partitions of ``events`` assigned to this worker now."""
        events = self.settings.topic("events")
        return {tp.partition for tp in self.app.consumer.assignment() if tp.topic == events}

    def partition_of(self, key: bytes) -> int:
        """Partition of ``key`` on the ``events``/``identity`` topics (the producer's hash)."""
        return partition_for(key, self.settings.partitions)

    async def write_table(self, table: Any, items: dict[bytes, bytes | None]) -> None:
        """Write each key once, to the changelog partition its records come from, and wait.

        Faust's ``table[k] = v`` picks the partition of the *current* event, which in a
        batch mixing partitions is wrong, and does not let us wait for the changelog.
        """
        topic = table.changelog_topic.get_topic_name()
        records = []
        for key, value in items.items():
            records.append((topic, key, value, self.partition_of(key)))
            if value is None:
                table.data.pop(key, None)
            else:
                table.data[key] = value
        # the changelog is our durability: ``send`` never returns before it holds them all
        await self.sender.send(records)

    # -------------------------------------------------------------- redis
    async def kafka_retry(self, op: Any, *args: Any) -> Any:
        """Run a read of our own topics (outside the group) until the broker answers."""
        delay = 0.1
        while True:
            try:
                return await op(*args)
            except (KafkaError, OSError) as exc:
                log.warning("kafka unavailable (%s); retrying in %.1fs", exc, delay)
                await asyncio.sleep(delay)
                delay = min(delay * 2, RETRY_MAX_S)

    async def redis_retry(self, op: Any, *args: Any) -> Any:
        """Run a Redis operation until it succeeds; offsets wait meanwhile."""
        delay = 0.1
        while True:
            try:
                return await op(*args)
            except (RedisConnectionError, RedisTimeoutError, OSError) as exc:
                metrics.REDIS_ERRORS.inc()
                log.warning("redis unavailable (%s); retrying in %.1fs", exc, delay)
                await asyncio.sleep(delay)
                delay = min(delay * 2, RETRY_MAX_S)


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
        self.aliases = self.app.Table(
            "aliases", key_type=bytes, value_type=bytes, partitions=s.partitions
        )
        self.profiles = self.app.Table(
            "profiles", key_type=bytes, value_type=bytes, partitions=s.partitions
        )
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
        self.decoded = Decoded(s.profile_cache_size)

    async def write_table(self, table: Any, items: dict[bytes, bytes | None]) -> None:
        if table is self.profiles:
            for key in items:  # the profile stage puts its states back once written
                self.decoded.discard(key)
        await super().write_table(table, items)
