"""engine.restart.leave_group: a worker restarting itself leaves the consumer group first, so
the group assigns its partitions again at once instead of after the session timeout."""

from __future__ import annotations

import asyncio
import threading
import time
import uuid

import pytest
from aiokafka import AIOKafkaConsumer
from confluent_kafka.admin import AdminClient

from segstream.schemas.settings import Settings, kafka_client_config
from segstream.streams.engine import aiokafka_config
from segstream.streams.engine.restart import leave_group
from segstream.streams.topics import ensure_topics

pytestmark = [pytest.mark.integration]
SESSION_MS = 30_000
FROZEN: list[AIOKafkaConsumer] = []  # never closed (their loops are blocked): kept alive


def _thread_loop() -> asyncio.AbstractEventLoop:
    """An event loop in its own thread, as Faust runs its consumer."""
    loop = asyncio.new_event_loop()
    threading.Thread(target=loop.run_forever, daemon=True).start()
    return loop


def _member(settings: Settings, group: str, loop: asyncio.AbstractEventLoop) -> AIOKafkaConsumer:
    async def start() -> AIOKafkaConsumer:
        consumer = AIOKafkaConsumer(
            settings.topic("web"),
            group_id=group,
            enable_auto_commit=False,
            session_timeout_ms=SESSION_MS,
            **aiokafka_config(settings),  # type: ignore[arg-type]
        )
        await consumer.start()
        while not consumer.assignment():
            await consumer.getmany(timeout_ms=200)
        return consumer

    return asyncio.run_coroutine_threadsafe(start(), loop).result(60)


def _members(admin: AdminClient, group: str) -> int:
    found = admin.describe_consumer_groups([group])[group].result()
    return len(found.members)


def _freeze(consumer: AIOKafkaConsumer, loop: asyncio.AbstractEventLoop) -> None:
    """What exec does to the old process: nothing of it runs any more (no heartbeat, no
    rejoin). The loop's thread blocks for good (a daemon: it ends with the tests)."""
    loop.call_soon_threadsafe(threading.Event().wait)
    FROZEN.append(consumer)


def test_a_member_that_left_is_gone_at_once_one_that_did_not_stays(servers: None) -> None:
    settings = Settings(namespace=f"lg{uuid.uuid4().hex[:8]}")
    ensure_topics(settings)
    admin = AdminClient(kafka_client_config(settings))

    # the control: a member frozen without leaving is still in the group seconds later
    stays, loop = f"{settings.namespace}-stays", _thread_loop()
    _freeze(_member(settings, stays, loop), loop)
    time.sleep(3)
    assert _members(admin, stays) == 1

    leaves, loop = f"{settings.namespace}-leaves", _thread_loop()
    consumer = _member(settings, leaves, loop)
    assert _members(admin, leaves) == 1
    started = time.monotonic()
    leave_group(consumer, loop)
    _freeze(consumer, loop)  # exec follows at once: no rejoin
    while _members(admin, leaves):
        assert time.monotonic() - started < 5, "still a member: the group waits for its session"
        time.sleep(0.2)
