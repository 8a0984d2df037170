"""The worker's lag figures and stall watch cover the partitions its agents read, not the
table changelogs Faust also assigns to it (read only to restore the tables)."""

from __future__ import annotations

import time
import uuid
from collections.abc import Callable
from pathlib import Path

import httpx
import orjson
import pytest
from prometheus_client.parser import text_string_to_metric_families

from segstream.consumers.sample import produce_sample, start_worker, stop_worker, wait_for_segments
from segstream.schemas.settings import Settings
from segstream.streams.produce import send_all

pytestmark = [pytest.mark.integration]


def _lag_topics(port: int) -> set[str]:
    text = httpx.get(f"http://127.0.0.1:{port}/metrics", timeout=5).text
    return {
        sample.labels["topic"]
        for family in text_string_to_metric_families(text)
        if family.name == "segstream_consumer_lag"
        for sample in family.samples
    }


def test_changelogs_are_neither_lag_nor_a_stall(
    servers: None, tmp_path: Path, free_port: Callable[[], int]
) -> None:
    settings = Settings(namespace=f"lw{uuid.uuid4().hex[:8]}", metrics_port=0)
    _, g = produce_sample(settings, users=120, seed=7)
    port, log = free_port(), tmp_path / "worker.log"
    proc = start_worker(
        settings,
        log,
        env={
            "SEGSTREAM_NAMESPACE": settings.namespace,
            "SEGSTREAM_METRICS_PORT": str(port),
            "SEGSTREAM_PUBLISH_EVERY_S": "2",
            # the changelogs hold records no agent commits: any second counts as a stall
            "SEGSTREAM_STALL_RESTART_S": "1",
        },
    )
    try:
        wait_for_segments(settings, sorted(g.truth), timeout=300, settle=2, proc=proc)
        # a trickle of new events keeps the agents' partitions moving past several lag reads
        users = sorted(g.truth)[:20]
        for round_ in range(40):
            send_all(
                settings,
                [
                    (
                        "web",
                        u.partition(":")[2].encode(),
                        orjson.dumps(
                            {
                                "event_id": f"lw-{round_}-{i}",
                                "source": "web",
                                "type": "page_view",
                                "ts": g.end_ms + 1000 * (round_ + 1),
                                "session_id": f"lw-{i}",
                                "page": "/lw",
                                **(
                                    {"user_id": u[2:]}
                                    if u.startswith("u:")
                                    else {"anonymous_id": u[2:]}
                                ),
                            }
                        ),
                    )
                    for i, u in enumerate(users)
                ],
            )
            time.sleep(0.5)
        topics = _lag_topics(port)
        assert proc.poll() is None, log.read_text()[-3000:]
    finally:
        code = stop_worker(proc)
    text = log.read_text()
    assert code == 0, text[-3000:]
    # the agents' inputs are reported, the changelogs are not
    assert settings.topic("web") in topics and settings.topic("events") in topics, topics
    assert not [t for t in topics if t.endswith("-changelog")], topics
    assert "partitions not read" not in text
    assert "restart 1" not in text
