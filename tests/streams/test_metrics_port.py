"""A port the worker or the relay cannot listen on ends it with one line naming the port
and the setting that moves it (no traceback); the demo repeats that line."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from segstream.consumers.sample import last_error
from segstream.schemas.errors import EXIT_CONFIG, PortInUse
from segstream.schemas.settings import Settings
from segstream.streams.metrics import serve_metrics


@pytest.fixture
def taken_port() -> Iterator[int]:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        sock.listen()
        yield int(sock.getsockname()[1])


def test_serve_metrics_names_the_setting(taken_port: int) -> None:
    with pytest.raises(PortInUse) as caught:
        serve_metrics(Settings(), taken_port, setting="SEGSTREAM_METRICS_PORT")
    text = str(caught.value)
    assert f"127.0.0.1:{taken_port}" in text
    assert "Set SEGSTREAM_METRICS_PORT to a free port" in text


@pytest.mark.parametrize(
    ("command", "variable"),
    [("worker", "SEGSTREAM_METRICS_PORT"), ("triggers", "SEGSTREAM_TRIGGERS_METRICS_PORT")],
)
def test_a_taken_metrics_port_ends_the_process_with_one_line(
    taken_port: int, command: str, variable: str, tmp_path: Path
) -> None:
    # Kafka is not needed: the port is taken before anything reaches the broker
    env = {
        **os.environ,
        variable: str(taken_port),
        "SEGSTREAM_KAFKA_BOOTSTRAP": "127.0.0.1:1",
        "SEGSTREAM_DATA_DIR": str(tmp_path),
    }
    done = subprocess.run(
        [sys.executable, "-m", "segstream.consumers.cli", command],
        env=env, capture_output=True, text=True, timeout=60, cwd=tmp_path,
    )  # fmt: skip
    assert done.returncode == EXIT_CONFIG, done.stderr
    assert "Traceback" not in done.stderr
    (line,) = [x for x in done.stderr.splitlines() if x.strip()]
    assert line.startswith("error: cannot listen on 127.0.0.1:")
    assert str(taken_port) in line and variable in line


def test_the_demo_finds_the_workers_last_error_line(tmp_path: Path) -> None:
    log = tmp_path / "demo-worker.log"
    log.write_text("error: from an earlier run\n")
    since = log.stat().st_size
    assert last_error(log, since) is None
    with log.open("a") as f:
        f.write("[2026-12-07 10:00:00] starting\nerror: cannot listen on 127.0.0.1:9108 (x)\n")
    assert last_error(log, since) == "cannot listen on 127.0.0.1:9108 (x)"
    assert last_error(tmp_path / "missing.log") is None
