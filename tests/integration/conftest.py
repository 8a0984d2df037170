"""Fixtures for tests against the real servers: reading whole topics."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pytest

from consumers.exports import read
from consumers.sample import start_worker, stop_worker, wait_for_segments
from schemas.settings import Settings


def read_topic(settings: Settings, topic: str) -> list[tuple[bytes | None, bytes | None]]:
    """Every record of a topic, from the start to its end now."""
    return list(read(settings, topic))


@pytest.fixture
def topic_reader() -> Callable[[Settings, str], list[tuple[bytes | None, bytes | None]]]:
    return read_topic


def run_worker_until_segmented(
    settings: Settings,
    log: Path,
    profiles: list[str],
    env: dict[str, str] | None = None,
    timeout: float = 300,
) -> None:
    """A real ``segstream worker`` process until every profile has a segment; then SIGTERM.

    Asserts the worker shut down cleanly (exit 0); the log tail explains a failure.
    """
    proc = start_worker(
        settings,
        log,
        env={
            "SEGSTREAM_NAMESPACE": settings.namespace,
            "SEGSTREAM_METRICS_PORT": "0",
            "SEGSTREAM_PUBLISH_EVERY_S": "2",
            **(env or {}),
        },
    )
    try:
        wait_for_segments(settings, profiles, timeout=timeout, settle=5, proc=proc)
    finally:
        code = stop_worker(proc)
    assert code == 0, log.read_text()[-3000:]


@pytest.fixture(scope="session")
def segmented() -> Callable[..., None]:
    return run_worker_until_segmented
