"""Shared fixtures. Integration tests start the real local servers once per session."""

from __future__ import annotations

import subprocess
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
import redis

from segstream.schemas.settings import Settings

REPO = Path(__file__).resolve().parent.parent


@pytest.fixture(scope="session")
def servers() -> None:
    """Kafka and Redis on loopback, started by deploy/local/up (idempotent)."""
    subprocess.run([str(REPO / "deploy" / "local" / "up")], check=True)


@pytest.fixture
def make_settings(servers: None) -> Iterator[Callable[..., Settings]]:
    """Settings in a fresh random namespace: no test sees another's topics or keys.
    The namespaces' Redis keys are deleted after the test."""
    made: list[Settings] = []

    def make(**overrides: object) -> Settings:
        ns = overrides.pop("namespace", None) or f"t{uuid.uuid4().hex[:10]}"
        s = Settings(namespace=ns, metrics_port=0, **overrides)  # type: ignore[arg-type]
        made.append(s)
        return s

    yield make
    for s in made:
        flush_namespace(s)


def flush_namespace(settings: Settings) -> None:
    client = redis.Redis.from_url(settings.redis_url.get_secret_value())
    keys = list(client.scan_iter(match=f"seg:{settings.namespace}:*", count=1000))
    for i in range(0, len(keys), 500):
        client.delete(*keys[i : i + 500])
    client.close()


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """Fault tests last: they stop and start the shared servers."""
    items.sort(key=lambda item: item.get_closest_marker("chaos") is not None)
