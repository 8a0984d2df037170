"""consumers/triggers.py: the relay serves its metrics at /metrics, started as `run()` does."""

from __future__ import annotations

import os
import socket

import httpx
import pytest

from segstream.consumers.triggers import serve_metrics
from segstream.schemas.settings import Settings


@pytest.fixture(autouse=True)
def clean_env(monkeypatch):
    for name in list(os.environ):
        if name.startswith("SEGSTREAM_"):
            monkeypatch.delenv(name)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def test_the_relay_serves_its_counters_at_zero_from_the_start() -> None:
    port = free_port()
    settings = Settings(
        triggers_metrics_port=port,
        trigger_rules=[{"name": "welcome", "on": "enter", "segment": 3}],  # type: ignore[list-item]
    )
    server = serve_metrics(settings)
    assert server is not None
    try:
        body = httpx.get(f"http://127.0.0.1:{port}/metrics", timeout=5).raise_for_status().text
    finally:
        server.shutdown()
        server.server_close()
    assert 'segstream_triggers_fired_total{rule="welcome"} 0.0' in body
    assert 'segstream_webhook_deliveries_total{outcome="delivered"} 0.0' in body
    assert 'segstream_webhook_deliveries_total{outcome="failed"} 0.0' in body
    assert "# TYPE segstream_dlq_total counter" in body  # the relay dead-letters too
    # not the worker's series: a relay would read as a worker that never finished a batch
    assert "segstream_last_batch_timestamp_seconds" not in body
    assert "segstream_events_total" not in body


def test_port_zero_serves_nothing_and_the_default_is_not_the_workers() -> None:
    assert serve_metrics(Settings(triggers_metrics_port=0)) is None
    defaults = Settings()
    assert defaults.triggers_metrics_port == 9109
    assert defaults.triggers_metrics_port != defaults.metrics_port
