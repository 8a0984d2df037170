"""The worker's Faust consumer gets ``SEGSTREAM_FETCH_MAX_WAIT_MS``, not Faust's fixed
1,500 ms (a fetch held that long made partitions read meanwhile wait for it)."""

from __future__ import annotations

import asyncio

from segstream.schemas.settings import Settings
from segstream.streams.engine import Engine


def fetch_wait_of(settings: Settings, app_id: str) -> int:
    async def build() -> int:
        engine = Engine(settings, app_id, ())
        thread = engine.app.consumer._thread
        consumer = thread._create_worker_consumer(engine.app.transport)
        try:
            return int(consumer._fetch_max_wait_ms)  # what ``start()`` gives the fetcher
        finally:
            await consumer.stop()

    return asyncio.run(build())


def test_the_worker_consumer_waits_as_the_settings_say() -> None:
    assert fetch_wait_of(Settings(namespace="fw1", fetch_max_wait_ms=25), "fw1-worker") == 25
    # a second app in the same process keeps its own
    assert fetch_wait_of(Settings(namespace="fw2", fetch_max_wait_ms=300), "fw2-worker") == 300
    assert fetch_wait_of(Settings(namespace="fw1"), "fw1-worker") == 20  # the default
