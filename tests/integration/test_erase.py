"""``segstream erase`` on the real broker and Redis, with a real worker: a stitched
customer (device, login with email) is forgotten everywhere, the audit trail says so,
their later events are dropped, and ``rebuild-redis`` does not bring them back."""

from __future__ import annotations

import os
import subprocess
import sys
import time
import uuid
from collections.abc import Callable
from pathlib import Path

import httpx
import orjson
import pytest
import redis

from segstream.consumers.queries import lookup_users
from segstream.consumers.redis_view import Keys
from segstream.consumers.sample import start_worker, stop_worker, wait_for_segments
from segstream.models.synthetic import Generator
from segstream.schemas.privacy import email_hash, hash_email_field
from segstream.schemas.records import AuditEntry, Erasure
from segstream.schemas.settings import Settings
from segstream.streams.produce import send_all
from segstream.streams.topics import ensure_topics

pytestmark = [pytest.mark.integration, pytest.mark.e2e]

TS = 1_767_225_600_000  # 2026-01-01
EMAIL = "Ada.Lovelace@example.com"
Reader = Callable[[Settings, str], list[tuple[bytes | None, bytes | None]]]


def web(n: int, **ids: str) -> tuple[str, bytes, bytes]:
    value = {"event_id": f"ada-{n}", "type": "page_view", "ts": TS + n * 60_000}
    value |= {"session_id": "s-ada", "page": f"/p{n}", "channel": "organic"} | ids
    key = ids.get("user_id") or ids.get("anonymous_id") or "ada"
    return "web", key.encode(), orjson.dumps(value)


def cli(settings: Settings, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "segstream.consumers.cli", *args],
        env={**os.environ, "SEGSTREAM_NAMESPACE": settings.namespace},
        capture_output=True,
        text=True,
        check=False,
        timeout=300,
    )


def latest(reader: Reader, settings: Settings, topic: str) -> dict[bytes, bytes | None]:
    out: dict[bytes, bytes | None] = {}
    for key, value in reader(settings, topic):
        if key is not None:
            out[key] = value
    return out


def wait_until(check: Callable[[], bool], timeout: float, what: str) -> None:
    deadline = time.monotonic() + timeout
    while not check():
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        time.sleep(0.5)


def test_erase_forgets_a_stitched_customer_everywhere(
    servers: None, tmp_path: Path, topic_reader: Reader, free_port: Callable[[], int]
) -> None:
    s = Settings(namespace=f"er{uuid.uuid4().hex[:8]}", metrics_port=0)
    port = free_port()
    ensure_topics(s)
    hkey = s.email_hash_key.get_secret_value().encode()
    alias_e = "e:" + email_hash(EMAIL, hkey)
    g = Generator(users=40, seed=11)
    population = [
        (e.source, e.key.encode(), orjson.dumps(hash_email_field(e.value, hkey)))
        for e in g.events()
    ]
    ada = [
        web(1, anonymous_id="dev-ada"),
        web(2, anonymous_id="dev-ada"),  # anonymous history: a profile of its own
        web(3, user_id="ada", anonymous_id="dev-ada", email=EMAIL),  # the login stitches
        web(4, user_id="ada"),
    ]
    send_all(s, [*population, *ada])
    log = tmp_path / "worker.log"
    env = {"SEGSTREAM_NAMESPACE": s.namespace, "SEGSTREAM_PUBLISH_EVERY_S": "2"}
    env["SEGSTREAM_METRICS_PORT"] = str(port)
    proc = start_worker(s, log, env=env)
    keys = Keys(s)
    r = redis.Redis.from_url(s.redis_url.get_secret_value())
    try:
        wait_for_segments(s, [*sorted(g.truth), "u:ada"], timeout=300, settle=3, proc=proc)
        lines, _ = lookup_users(s, ["u:ada", "a:dev-ada"])
        assert [x["profile"] for x in lines] == ["u:ada", "u:ada"]  # via the merge pointer
        assert lines[0]["features"]["pages_per_session"] > 0
        assert r.exists(keys.user("u:ada"), keys.alias("a:dev-ada")) == 2

        done = cli(s, "erase", "--user-id", "ada", "--reason", "ticket-42", "--wait", "120")
        assert done.returncode == 0, done.stderr + log.read_text()[-3000:]
        assert "erasure of u:ada recorded" in done.stdout
        assert "erased by the worker" in done.stdout

        def view_gone() -> bool:
            names = [keys.user("u:ada"), keys.features("u:ada"), keys.alias("a:dev-ada")]
            names += [keys.user("a:dev-ada"), keys.alias(alias_e), keys.user(alias_e)]
            return r.exists(*names) == 0

        wait_until(view_gone, 60, "the Redis view to forget ada")
        _, unknown = lookup_users(s, ["u:ada", "a:dev-ada"])
        assert unknown == ["u:ada", "a:dev-ada"]
        assert not any(
            r.sismember(k, "u:ada") for k in r.scan_iter(match=keys.members("*"), count=1000)
        )

        # later events of every alias are dropped; a stranger's still count
        send_all(
            s,
            [
                web(5, user_id="ada"),
                web(6, anonymous_id="dev-ada"),
                web(7, anonymous_id="new-device", email=EMAIL),
                web(8, user_id="grace"),
            ],
        )
        wait_for_segments(s, ["u:grace"], timeout=120, settle=3, proc=proc)
        wait_until(lambda: r.exists(keys.user("a:new-device")) == 0, 5, "no new-device view")
        _, unknown = lookup_users(s, ["u:ada", "a:dev-ada", "a:new-device"])
        # the new device came with the erased email: the whole event is the person's
        assert unknown == ["u:ada", "a:dev-ada", "a:new-device"], "an erased person came back"
        metrics = httpx.get(f"http://127.0.0.1:{port}/metrics", timeout=5).text
        edge = [x for x in metrics.splitlines() if x.startswith("segstream_suppressed_total")]
        assert any('stage="edge"' in x and float(x.split()[-1]) >= 3 for x in edge), edge
        assert proc.poll() is None
    finally:
        code = stop_worker(proc)
    assert code == 0, log.read_text()[-3000:]

    # every place that held the person holds a tombstone now
    profiles = latest(topic_reader, s, f"{s.consumer_group}-profiles-changelog")
    aliases = latest(topic_reader, s, f"{s.consumer_group}-aliases-changelog")
    for name in ("u:ada", "a:dev-ada", alias_e):
        assert profiles.get(name.encode(), b"absent") in (None, b"absent"), name
    assert profiles[b"u:ada"] is None and profiles[b"a:dev-ada"] is None
    assert aliases[b"a:dev-ada"] is None and aliases[alias_e.encode()] is None
    assert b"a:new-device" not in aliases  # the erased email linked nothing new
    segments = latest(topic_reader, s, s.topic("segments"))
    training = latest(topic_reader, s, s.topic("training"))
    assert segments[b"u:ada"] is None and training[b"u:ada"] is None
    assert segments.get(b"u:grace") is not None  # others untouched

    # the suppression list holds every alias; the audit trail says what happened
    erasures = {
        k.decode(): Erasure.from_json(v)
        for k, v in latest(topic_reader, s, s.topic("erasures")).items()
        if v
    }
    assert {"u:ada", "a:dev-ada", alias_e} <= set(erasures)
    assert erasures["u:ada"].reason == "ticket-42"
    audit = [AuditEntry.from_json(v) for _, v in topic_reader(s, s.topic("audit")) if v]
    assert next(a.action for a in audit if a.alias == "u:ada") == "erase-requested"
    erased = {a.alias: a for a in audit if a.action == "erased" and (a.detail or {})["found"]}
    assert erased["u:ada"].detail is not None and erased["u:ada"].detail["found"] is True
    assert erased["u:ada"].detail["linked_profiles"] == 2
    assert "a:dev-ada" in erased
    for topic in ("erasures", "audit"):
        raw = b"".join(v or b"" for _, v in topic_reader(s, s.topic(topic)))
        assert EMAIL.lower().encode() not in raw.lower(), topic

    # the view is rebuildable without bringing the person back
    r.delete(*r.scan_iter(match=f"seg:{s.namespace}:*", count=1000))
    rebuilt = cli(s, "rebuild-redis")
    assert rebuilt.returncode == 0, rebuilt.stderr
    _, unknown = lookup_users(s, ["u:ada", "a:dev-ada", "u:grace"])
    assert unknown == ["u:ada", "a:dev-ada"]


def test_erase_refuses_unclear_requests_before_writing_anything(servers: None) -> None:
    s = Settings(namespace=f"er{uuid.uuid4().hex[:8]}")
    both = cli(s, "erase", "--user-id", "ada", "--anonymous-id", "x", "--wait", "0")
    assert both.returncode == 2 and "exactly one" in both.stderr
    bad = cli(s, "erase", "--email", "not-an-address", "--wait", "0")
    assert bad.returncode == 2 and "not an email" in bad.stderr
