"""A stop signal that reaches a restarting worker before it can handle it: the restart
holds SIGTERM back (the signal mask survives exec), and the new process stops
gracefully once Faust handles it, with exit 0, instead of dying by the signal."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
import uuid
from pathlib import Path

import pytest

from segstream.consumers.sample import demo_root
from segstream.schemas.settings import Settings
from segstream.streams.engine.restart import STOP_SIGNALS
from segstream.streams.topics import ensure_topics

pytestmark = [pytest.mark.integration]


def _held_back() -> None:
    """What ``restart`` leaves the new process with: the stop signals blocked."""
    signal.pthread_sigmask(signal.SIG_BLOCK, STOP_SIGNALS)


def test_sigterm_held_by_a_restart_stops_the_new_worker_gracefully(
    servers: None, tmp_path: Path
) -> None:
    settings = Settings(namespace=f"sig{uuid.uuid4().hex[:8]}")
    ensure_topics(settings)
    log = tmp_path / "worker.log"
    env = {"SEGSTREAM_NAMESPACE": settings.namespace, "SEGSTREAM_METRICS_PORT": "0"}
    with log.open("ab") as out:
        proc = subprocess.Popen(
            [sys.executable, "-m", "segstream.consumers.cli", "worker"],
            env={**os.environ, **env},
            stdout=out,
            stderr=subprocess.STDOUT,
            cwd=demo_root(),
            preexec_fn=_held_back,  # only the signal mask, before exec
        )
    time.sleep(0.5)  # still importing: no handler of its own yet
    proc.send_signal(signal.SIGTERM)
    try:
        code = proc.wait(120)
    finally:
        if proc.poll() is None:
            proc.kill()
    text = log.read_text(errors="replace")
    assert code == 0, text[-3000:]  # not -15: it was not killed by the signal
    assert "Signal received: 15" in text, text[-3000:]
