"""Shared fixtures. Integration tests start the real local servers once per session."""

from __future__ import annotations

import subprocess
import sys
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


@pytest.fixture(scope="session")
def wheel(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """segstream built as a wheel, as ``pip install segstream`` would install it."""
    out = tmp_path_factory.mktemp("wheel")
    subprocess.run(
        [sys.executable, "-m", "pip", "wheel", "--quiet", "--no-deps", "--no-build-isolation",
         "--disable-pip-version-check", "--wheel-dir", str(out), str(REPO)],
        check=True,
    )  # fmt: skip
    (built,) = out.glob("segstream-*.whl")
    return built


@pytest.fixture(scope="session")
def installed_wheel(wheel: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The wheel installed in a virtual environment outside the checkout; returns its
    ``bin`` folder. The environment sees this interpreter's packages for the
    dependencies only: the wheel's own ``segstream`` comes first on its path."""
    venv = tmp_path_factory.mktemp("venv")
    subprocess.run([sys.executable, "-m", "venv", "--system-site-packages", str(venv)], check=True)
    subprocess.run(
        [str(venv / "bin" / "python"), "-m", "pip", "install", "--quiet", "--no-deps",
         "--no-index", "--disable-pip-version-check", str(wheel)],
        check=True,
    )  # fmt: skip
    return venv / "bin"
