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
from faust.exceptions import NotReady
from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import TimeoutError as RedisTimeoutError

from consumers.redis_view import SegmentWriter
from models.features import FeatureSpace, feature_space
from models.identity import Out
from models.segments import Snapshot
from schemas.privacy import redact_emails
from schemas.records import DeadLetter
from schemas.settings import TOPICS, Settings
from streams import metrics

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
            ssl_context=_ssl_context(settings)
            if "SSL" in settings.kafka_security_protocol
            else None,
        )
    if settings.kafka_security_protocol == "SSL":
        return faust.SSLCredentials(_ssl_context(settings))
    return None


def _ssl_context(settings: Settings) -> Any:
    import ssl

    return ssl.create_default_context(cafile=settings.kafka_ssl_cafile)


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
        self.lock = asyncio.Lock()  # one batch (or timer chunk) touches the tables at a time

    # ------------------------------------------------------------ sending
    async def send(self, records: Iterable[tuple[str, bytes | None, bytes | None]]) -> None:
        """Send ``(topic, key, value)`` records and wait until the broker has them all.

        Failed sends are retried (duplicates are harmless: every consumer dedupes).
        """
        pending = list(records)
        delay = 0.1
        while pending:
            futures: list[Any] = []
            for topic, key, value in pending:
                try:  # no metadata yet (the broker is away) raises here, not in the future
                    # value None must be a real tombstone (Faust would otherwise send b"null")
                    sent = await self.topics[topic].send(
                        key=key, value=value, value_serializer="raw" if value is None else None
                    )
                except (KafkaError, OSError, NotReady) as exc:  # NotReady: producer restarting
                    sent = asyncio.get_running_loop().create_future()
                    sent.set_exception(exc)
                futures.append(sent)
            results = await asyncio.gather(*futures, return_exceptions=True)
            failed = [
                rec
                for rec, res in zip(pending, results, strict=True)
                if isinstance(res, BaseException)
            ]
            if failed:
                metrics.KAFKA_SEND_ERRORS.inc(len(failed))
                log.warning("retrying %d failed sends in %.1fs", len(failed), delay)
                await asyncio.sleep(delay)
                delay = min(delay * 2, RETRY_MAX_S)
            pending = failed

    @staticmethod
    def out_record(out: Out) -> tuple[str, bytes, bytes]:
        return out.topic, out.key.encode(), orjson.dumps(out.value)

    def dead_letter(
        self, event: Any, reason: str, detail: str, stage: str
    ) -> tuple[str, bytes | None, bytes]:
        m = event.message
        metrics.DLQ.labels(reason, stage).inc()
        key = redact_emails(m.key) if m.key else None
        letter = DeadLetter(
            reason=reason,
            detail=detail,
            topic=m.topic,
            partition=m.partition,
            offset=m.offset,
            key=key.decode("latin-1") if key else None,
            value=redact_emails(m.value or b"").decode("latin-1"),
            stage=stage,
            at_ms=int(time.time() * 1000),
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
        futures = []
        for key, value in items.items():
            partition = self.partition_of(key)
            if value is None:
                futures.append(table.send_changelog(partition, key, None, value_serializer="raw"))
                table.data.pop(key, None)
            else:
                futures.append(table.send_changelog(partition, key, value))
                table.data[key] = value
        delay = 0.1
        while futures:
            results = await asyncio.gather(*futures, return_exceptions=True)
            failed = [
                f for f, r in zip(futures, results, strict=True) if isinstance(r, BaseException)
            ]
            if not failed:
                break
            # the changelog is our durability: never ack a batch it does not hold
            metrics.KAFKA_SEND_ERRORS.inc(len(failed))
            await asyncio.sleep(delay)
            delay = min(delay * 2, RETRY_MAX_S)
            futures = [
                table.send_changelog(
                    f.message.partition, f.message.key, f.message.value, value_serializer="raw"
                )
                for f in failed
            ]

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
        self.watermark_ms = 0
        self.erased: set[str] = set()  # aliases of erased people (the ``erasures`` topic)
        self.erasures_loaded = asyncio.Event()  # set once the whole topic has been read
