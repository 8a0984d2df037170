"""What the worker's stages and the trainer process both use: sends (awaited, internal
topics in envelopes), dead letters, and retries of the broker and Redis. No engine here:
the trainer process runs without one."""

from __future__ import annotations

import time
from collections.abc import Iterable
from typing import Any

from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import TimeoutError as RedisTimeoutError

from segstream.schemas.envelope import Packer
from segstream.schemas.records import DeadLetter
from segstream.schemas.settings import TOPICS, Settings
from segstream.streams import metrics
from segstream.streams.engine.readers import READ_ERRORS
from segstream.streams.retry import until_available
from segstream.streams.sender import Sender

ENVELOPED = frozenset({"identity", "events"})  # internal topics that carry envelopes
Letter = tuple[str, bytes | None, bytes]


class Outputs:
    """Sends and retries over one ``Sender`` (a librdkafka producer)."""

    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self.names = {t: settings.topic(t) for t in TOPICS}
        self.sender = Sender(settings)

    async def send(self, records: Iterable[tuple[str, bytes | None, bytes | None]]) -> None:
        """Send ``(topic, key, value)`` records (value None: a tombstone) and wait until the
        broker has them all; failed sends are retried. Records for the internal topics
        (``Runtime.out_record``) travel in envelopes, one per destination partition."""
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

    async def kafka_retry(self, op: Any, *args: Any) -> Any:
        """Run a read of our own topics (outside the group) until the broker answers."""
        return await until_available("kafka", READ_ERRORS, lambda: op(*args))

    async def redis_retry(self, op: Any, *args: Any) -> Any:
        """Run a Redis operation until it succeeds; offsets wait meanwhile."""
        errors = (RedisConnectionError, RedisTimeoutError, OSError)
        return await until_available("redis", errors, lambda: op(*args), metrics.REDIS_ERRORS.inc)
