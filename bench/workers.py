"""What the benches share about a running worker: is it ready, has its group caught up."""

from __future__ import annotations

import socket
import subprocess
import time
from pathlib import Path

from segstream.schemas.settings import SOURCES, Settings
from segstream.streams.lag import Offsets


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def wait_ready(proc: subprocess.Popen[bytes], log: Path, deadline: float) -> None:
    while b"[^Worker]: Ready" not in log.read_bytes():
        assert proc.poll() is None and time.monotonic() < deadline, log.read_text()[-3000:]
        time.sleep(0.05)


def inputs_of(settings: Settings) -> list[tuple[str, int]]:
    """The group's partitioned inputs: sources, ``identity``, ``events``."""
    names = [*(settings.topic(s) for s in SOURCES), settings.topic("identity")]
    names.append(settings.topic("events"))
    return [(t, p) for t in names for p in range(settings.partitions)]


def group_done(offsets: Offsets, tps: list[tuple[str, int]]) -> bool:
    return all(p.lag == 0 for p in offsets.read(tps).values())
