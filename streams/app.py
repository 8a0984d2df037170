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
from collections.abc import Iterable
from typing import Any

import faust
import orjson
import redis.asyncio as aioredis
from aiokafka.errors import KafkaError
from aiokafka.partitioner import murmur2
from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import TimeoutError as RedisTimeoutError

from segstream.consumers.redis_view import SegmentWriter
from segstream.models.features import FeatureSpace, feature_space
from segstream.models.identity import Out, SentLinks
from segstream.models.segments import Snapshot
from segstream.schemas.records import DeadLetter
from segstream.schemas.settings import TOPICS, Settings, kafka_ssl_context
from segstream.streams import metrics
from segstream.streams.sender import Sender

log = logging.getLogger("segstream.worker")
RETRY_MAX_S = 5.0
SINGLE_PARTITION = ("training", "model", "erasures", "audit", "api-keys")


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
        broker has them all; failed sends are retried."""
        names = self.names
        await self.sender.send((names[t], k, v, None) for t, k, v in records)

    @staticmethod
    def out_record(out: Out) -> tuple[str, bytes, bytes]:
        return out.topic, out.key.encode(), orjson.dumps(out.value)

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
    ) -> tuple[str, bytes | None, bytes]:
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
        return int(murmur2(key) & 0x7FFFFFFF) % self.settings.partitions

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
