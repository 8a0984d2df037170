"""Faults on the real broker and Redis; afterwards the state must equal the oracle's.

Each test produces a synthetic stream (with copies of some events, in the same batch
and much later), injects its fault while a real ``segstream worker`` processes it, lets
a worker finish, then checks:

* every profile's features in Redis equal the oracle's single-process recomputation
  (nothing lost, nothing counted twice);
* every profile's segment in Redis equals its latest record in the compacted
  ``segments`` topic (the authoritative copy).

``SEGSTREAM_CHAOS_SEED`` fixes the random fault points (the seed used is printed).
"""

from __future__ import annotations

import os
import random
import signal
import subprocess
import time
import uuid
from pathlib import Path

import orjson
import pytest
from worker_checks import Reader, Stream, assert_equals_oracle, wait_caught_up, wait_for_log

from segstream.consumers.sample import start_worker, stop_worker, wait_for_segments
from segstream.models.synthetic import Generator
from segstream.schemas.privacy import hash_email_field
from segstream.schemas.settings import Settings
from segstream.streams.produce import send_all
from segstream.streams.topics import ensure_topics

pytestmark = [pytest.mark.integration, pytest.mark.e2e, pytest.mark.chaos]

REPO = Path(__file__).resolve().parents[2]
SESSION_TIMEOUT_S = 6  # the broker's minimum: a killed worker's partitions move on soon


def chaos_rng() -> random.Random:
    seed = int(os.environ.get("SEGSTREAM_CHAOS_SEED") or random.randrange(1 << 30))
    print(f"SEGSTREAM_CHAOS_SEED={seed}")
    return random.Random(seed)


def produce_stream(users: int, seed: int, worker_env: dict[str, str] | None = None) -> Stream:
    """A fresh namespace holding the generator's events, with copies: every 13th right
    behind it, a tenth of all again at the end."""
    settings = Settings(namespace=f"ch{uuid.uuid4().hex[:8]}", metrics_port=0)
    ensure_topics(settings)
    g = Generator(users=users, seed=seed)
    key = settings.email_hash_key.get_secret_value().encode()
    events = [
        (e.source, e.key.encode(), orjson.dumps(hash_email_field(e.value, key))) for e in g.events()
    ]
    stream: list[tuple[str, bytes | None, bytes]] = []
    for i, ev in enumerate(events):
        stream.append(ev)
        if i % 13 == 0:
            stream.append(ev)
    stream += random.Random(seed).sample(events, len(events) // 10)
    send_all(settings, stream)
    env = {
        "SEGSTREAM_NAMESPACE": settings.namespace,
        "SEGSTREAM_METRICS_PORT": "0",
        "SEGSTREAM_PUBLISH_EVERY_S": "2",
        "SEGSTREAM_KAFKA_SESSION_TIMEOUT_S": str(SESSION_TIMEOUT_S),
        **(worker_env or {}),
    }
    return Stream(settings, events, sorted(g.truth), env)


def finish(stream: Stream, log: Path, timeout: float = 300) -> None:
    """One more worker until it has caught up on every input and every profile has a
    segment of a stable model; it must stop cleanly on SIGTERM."""
    proc = start_worker(stream.settings, log, env=stream.env)
    try:
        wait_caught_up(stream.settings, proc, timeout)
        wait_for_segments(stream.settings, stream.profiles, timeout=timeout, settle=5, proc=proc)
        wait_caught_up(stream.settings, proc, timeout)
    finally:
        code = stop_worker(proc)
    assert code == 0, log.read_text()[-3000:]


def test_kill_9_at_random_points_loses_and_double_counts_nothing(
    servers: None, tmp_path: Path, topic_reader: Reader
) -> None:
    rng = chaos_rng()
    stream = produce_stream(users=500, seed=31)  # about 30 s of work for one worker
    log = tmp_path / "worker.log"
    kills = 0
    for _ in range(int(os.environ.get("SEGSTREAM_CHAOS_KILLS", "4"))):
        since = log.stat().st_size if log.exists() else 0
        proc = start_worker(stream.settings, log, env=stream.env)
        # a random point once it works: partitions assigned, state restored
        assert wait_for_log(log, "[^Worker]: Ready", since, proc, 120), log.read_text()[-3000:]
        time.sleep(rng.uniform(0.5, 5.0))
        assert proc.poll() is None, log.read_text()[-3000:]
        proc.send_signal(signal.SIGKILL)
        proc.wait()
        kills += 1
    print(f"{len(stream.events)} events, {kills} kills (SIGKILL), {kills + 1} starts")
    finish(stream, log)
    assert_equals_oracle(stream, topic_reader)


def test_sigterm_mid_batch_completes_or_replays_the_work(
    servers: None, tmp_path: Path, topic_reader: Reader
) -> None:
    """A graceful stop while batches are in flight: the worker finishes or drops the
    batch in hand, commits what it wrote, exits 0; the next one goes on from there."""
    rng = chaos_rng()
    stream = produce_stream(users=500, seed=32)
    log = tmp_path / "worker.log"
    stops = int(os.environ.get("SEGSTREAM_CHAOS_KILLS", "4"))
    for _ in range(stops):
        since = log.stat().st_size if log.exists() else 0
        proc = start_worker(stream.settings, log, env=stream.env)
        assert wait_for_log(log, "[^Worker]: Ready", since, proc, 120), log.read_text()[-3000:]
        time.sleep(rng.uniform(0.5, 5.0))
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(60) == 0, log.read_text()[-3000:]
    print(f"{len(stream.events)} events, {stops} stops (SIGTERM), {stops + 1} starts")
    finish(stream, log)
    assert_equals_oracle(stream, topic_reader)


def test_two_workers_share_partitions_one_leaves_and_returns(
    servers: None, tmp_path: Path, topic_reader: Reader
) -> None:
    """Two workers in one group; one is killed mid-stream (its partitions move to the
    other), then comes back (they move again). The result equals one worker's."""
    rng = chaos_rng()
    stream = produce_stream(users=500, seed=33)
    a_log, b_log = tmp_path / "a.log", tmp_path / "b.log"
    own = {"a": {"SEGSTREAM_WORKER_ID": "a"}, "b": {"SEGSTREAM_WORKER_ID": "b"}}
    for name in own:
        own[name]["SEGSTREAM_DATA_DIR"] = str(tmp_path / name)
    a = start_worker(stream.settings, a_log, env=stream.env | own["a"])
    b = start_worker(stream.settings, b_log, env=stream.env | own["b"])
    try:
        assert wait_for_log(b_log, "[^Worker]: Ready", 0, b, 120), b_log.read_text()[-3000:]
        time.sleep(rng.uniform(1.0, 4.0))
        b.send_signal(signal.SIGKILL)
        b.wait()
        time.sleep(SESSION_TIMEOUT_S + rng.uniform(0.0, 4.0))  # a takes b's partitions
        assert a.poll() is None, a_log.read_text()[-3000:]
        since = b_log.stat().st_size
        b = start_worker(stream.settings, b_log, env=stream.env | own["b"])
        assert wait_for_log(b_log, "[^Worker]: Ready", since, b, 120), b_log.read_text()[-3000:]
        wait_caught_up(stream.settings, a, 300)
        wait_for_segments(stream.settings, stream.profiles, timeout=300, settle=5, proc=a)
        wait_caught_up(stream.settings, a, 300)
    finally:
        codes = stop_worker(a), stop_worker(b)
    assert codes == (0, 0), a_log.read_text()[-2000:] + b_log.read_text()[-2000:]
    print(f"{len(stream.events)} events, 2 workers, 1 kill (SIGKILL), 1 restart")
    assert_equals_oracle(stream, topic_reader)


def local(script: str, service: str) -> None:
    done = subprocess.run(
        [str(REPO / "deploy" / "local" / script), service],
        capture_output=True,
        text=True,
        check=False,
        timeout=300,
    )
    assert done.returncode == 0, done.stdout + done.stderr


def more_events(stream: Stream, n: int, seed: int) -> None:
    """``n`` page views of known users, sent now and added to ``stream.events``, so
    that a worker that has caught up has work again."""
    rng = random.Random(seed)
    ts_ms = int(time.time() * 1000) - 3_600_000
    extra = []
    for i in range(n):
        kind, _, ident = rng.choice(stream.profiles).partition(":")
        who = {"user_id": ident} if kind == "u" else {"anonymous_id": ident}
        value = {
            "event_id": f"more-{seed}-{i}", "source": "web", "type": "page_view",
            "ts": ts_ms + i, "schema_version": 2, "session_id": f"more-{ident}", **who,
        }  # fmt: skip
        extra.append(("web", ident.encode(), orjson.dumps(value)))
    send_all(stream.settings, extra)
    stream.events += extra


def restart_server_midway(
    stream: Stream, log: Path, service: str, after: str, feed: bool = False
) -> None:
    """One worker; ``service`` (kafka or redis) stops a random moment after ``after``
    appears in the worker's log, stays down a few seconds, and starts again (``feed``:
    more events are sent while it is down, so the worker has writes to make even if it
    had caught up). The worker must outlive it, catch up by itself and stop cleanly."""
    rng = chaos_rng()
    proc = start_worker(stream.settings, log, env=stream.env)
    try:
        assert wait_for_log(log, after, 0, proc, 120), log.read_text()[-3000:]
        time.sleep(rng.uniform(0.2, 4.0))
        local("down", service)
        if feed:
            more_events(stream, 300, rng.randrange(1 << 30))
        time.sleep(rng.uniform(2.0, 8.0))
        assert proc.poll() is None, log.read_text()[-3000:]
        local("up", service)
        wait_caught_up(stream.settings, proc, 300)
        wait_for_segments(stream.settings, stream.profiles, timeout=300, settle=5, proc=proc)
        wait_caught_up(stream.settings, proc, 300)
    finally:
        local("up", service)  # whatever happened, later tests need it
        code = stop_worker(proc)
    assert code == 0, log.read_text()[-3000:]


def test_broker_restart_while_events_flow(
    servers: None, tmp_path: Path, topic_reader: Reader
) -> None:
    """The broker stops mid-stream and starts again: the worker waits and goes on by
    itself (no restart), and nothing is lost or counted twice."""
    stream = produce_stream(users=500, seed=34)
    restart_server_midway(stream, tmp_path / "worker.log", "kafka", "[^Worker]: Ready")
    print(f"{len(stream.events)} events, 1 broker restart, 1 worker start")
    assert_equals_oracle(stream, topic_reader)


def test_redis_down_during_writes_holds_the_batch_until_it_returns(
    servers: None, tmp_path: Path, topic_reader: Reader
) -> None:
    """Redis stops while the worker writes: the batch in hand waits (its offsets are
    not acknowledged) and lands when Redis is back, with no manual step."""
    stream = produce_stream(users=500, seed=35)
    log = tmp_path / "worker.log"
    # once it writes Redis: a model is out and users are being assigned
    restart_server_midway(stream, log, "redis", "rescored", feed=True)
    assert "redis unavailable" in log.read_text()  # it did wait, and said so
    print(f"{len(stream.events)} events, 1 Redis restart, 1 worker start")
    assert_equals_oracle(stream, topic_reader)
