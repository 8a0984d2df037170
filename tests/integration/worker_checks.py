"""Watching real ``segstream worker`` processes, and checking what they left behind
against the oracle. Shared by the chaos and scale-out tests (import it by its name:
pytest puts this directory on ``sys.path``)."""

from __future__ import annotations

import subprocess
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

import pytest
from confluent_kafka import KafkaException

from segstream.consumers.queries import lookup_users
from segstream.models.features import feature_space
from segstream.models.oracle import run as oracle_run
from segstream.schemas.parse import EventParser
from segstream.schemas.records import SegmentRecord
from segstream.schemas.settings import Settings
from segstream.streams.lag import Offsets

Reader = Callable[[Settings, str], list[tuple[bytes | None, bytes | None]]]
Event = tuple[str, bytes, bytes]


@dataclass
class Stream:
    settings: Settings
    events: list[Event]  # each once, as the oracle reads them
    profiles: list[str]
    env: dict[str, str]


WORKER_INPUTS = ("web", "ad", "crm", "identity", "events", "training")


def group_lag(settings: Settings) -> int:
    """Records the worker group has yet to commit, over every topic it consumes."""
    tps = [
        (settings.topic(name), p)
        for name in WORKER_INPUTS
        for p in range(1 if name == "training" else settings.partitions)
    ]
    offsets = Offsets(settings)
    try:
        return sum(pos.lag for pos in offsets.read(tps).values())
    except KafkaException:  # the broker is (re)starting: not caught up
        return -1
    finally:
        offsets.close()


def wait_caught_up(settings: Settings, proc: subprocess.Popen[bytes], timeout: float) -> None:
    """Until the group has committed everything on its inputs, three reads in a row."""
    deadline, zero = time.monotonic() + timeout, 0
    while zero < 3:
        assert proc.poll() is None, "the worker exited"
        if time.monotonic() > deadline:
            raise TimeoutError(f"worker group still {group_lag(settings)} records behind")
        zero = zero + 1 if group_lag(settings) == 0 else 0
        time.sleep(1)


def assert_equals_oracle(stream: Stream, topic_reader: Reader) -> None:
    """Every profile's features in Redis equal the oracle's recomputation from
    ``stream.events``, and its segment in Redis equals its latest record in the
    compacted ``segments`` topic."""
    s = stream.settings
    space = feature_space(s.features, s.paid_channels, s.social_channels, s.email_channels)
    parser = EventParser(
        s.email_hash_key.get_secret_value().encode(), now=lambda: datetime.now(tz=UTC)
    )
    oracle = oracle_run([(src, raw) for src, _, raw in stream.events], parser, space)
    lines, unknown = lookup_users(s, stream.profiles)
    assert unknown == []
    latest: dict[bytes, bytes | None] = {}
    for k, v in topic_reader(s, s.topic("segments")):
        assert k is not None
        latest[k] = v
    wrong: list[str] = []
    for line in lines:
        profile = str(line["profile"])
        expected = space.raw(oracle.profiles[profile], oracle.watermark_ms)
        got = line["features"]
        assert isinstance(got, dict)
        wrong += [
            f"{profile} {name}: {got[name]} != {value} (oracle)"
            for name, value in expected.items()
            if got[name] != pytest.approx(value, rel=1e-3, abs=1e-3)
        ]
        raw = latest[profile.encode()]
        assert raw is not None
        record = SegmentRecord.from_json(raw)
        if (record.segment, record.version) != (line["segment"], line["model_version"]):
            wrong.append(f"{profile}: Redis {line['segment']} v{line['model_version']} != topic")
    assert not wrong, f"{s.namespace}: {len(wrong)} differences:\n" + "\n".join(wrong[:40])


def wait_for_log(
    log: Path, text: str, since: int, proc: subprocess.Popen[bytes], limit: float
) -> bool:
    """Until ``text`` appears in the log after byte ``since`` (False: not within ``limit``)."""
    deadline = time.monotonic() + limit
    while time.monotonic() < deadline and proc.poll() is None:
        if text.encode() in log.read_bytes()[since:]:
            return True
        time.sleep(0.1)
    return False
