"""Fixtures for tests against the real servers: reading whole topics, running a worker
or the API as real processes, the ACL users deploy/local made."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest

from segstream.consumers.exports import read
from segstream.consumers.sample import start_worker, stop_worker, wait_for_segments
from segstream.schemas.settings import Settings


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
    ready: Callable[[dict[str, Any]], bool] | None = None,
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
        wait_for_segments(settings, profiles, timeout=timeout, settle=5, proc=proc, ready=ready)
    finally:
        code = stop_worker(proc)
    assert code == 0, log.read_text()[-3000:]


@pytest.fixture(scope="session")
def segmented() -> Callable[..., None]:
    return run_worker_until_segmented


REPO = Path(__file__).resolve().parents[2]


@pytest.fixture(scope="session")
def redis_users(servers: None) -> dict[str, str]:
    """The worker and API Redis URLs (ACL users segworker, segapi) deploy/local/up wrote."""
    local = Path(os.environ.get("SEGSTREAM_LOCAL_DIR", REPO / ".local"))
    lines = (local / "redis" / "credentials.env").read_text().splitlines()
    return dict(line.split("=", 1) for line in lines if "=" in line)


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@dataclass
class ApiServer:
    base: str
    proc: subprocess.Popen[bytes]
    log: Path


@contextmanager
def run_api(
    log: Path,
    env: dict[str, str],
    args: tuple[str, ...] = (),
    command: tuple[str, ...] = (sys.executable, "-m", "segstream.consumers.cli"),
    cwd: Path = REPO,
) -> Iterator[ApiServer]:
    """``segstream api`` (``command``: how to run ``segstream``) as a real uvicorn server on
    a free port, ready (``/readyz`` 200); SIGTERM on exit (its exit code is then in
    ``proc.returncode``)."""
    port = free_port()
    with log.open("wb") as out:
        proc = subprocess.Popen(
            [*command, "api", "--host", "127.0.0.1", "--port", str(port), "--loglevel", "info",
             *args],
            cwd=cwd, env={**os.environ, **env}, stdout=out, stderr=subprocess.STDOUT,
        )  # fmt: skip
    try:
        base = f"http://127.0.0.1:{port}"
        deadline = time.monotonic() + 30
        while True:
            try:
                if httpx.get(f"{base}/readyz", timeout=1).status_code == 200:
                    break
            except httpx.TransportError:
                pass
            assert proc.poll() is None, log.read_text()
            assert time.monotonic() < deadline, log.read_text()
            time.sleep(0.1)
        yield ApiServer(base, proc, log)
    finally:
        proc.send_signal(signal.SIGTERM)
        proc.wait(timeout=30)


@pytest.fixture(scope="session", name="free_port")
def free_port_fixture() -> Callable[[], int]:
    return free_port


@pytest.fixture(scope="session")
def api_server() -> Callable[[Path, dict[str, str]], Any]:
    return run_api
