"""The trigger relay on the real broker, delivering to a real local HTTP receiver.

The receiver verifies every signature, answers 500 to the first calls for some
users, stalls past the client's timeout for others, and refuses one user for
good (410). Segment changes are produced directly (with copies), so the
expected triggers are known exactly.
"""

from __future__ import annotations

import os
import subprocess
import sys
import threading
import time
import uuid
from collections import Counter
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import orjson
import pytest

from segstream.consumers.sample import stop_worker
from segstream.consumers.webhooks import verify
from segstream.models.triggers import trigger_id
from segstream.schemas.records import DeadLetter, SegmentChange
from segstream.schemas.settings import Settings
from segstream.streams.produce import send_all
from segstream.streams.topics import ensure_topics

pytestmark = [pytest.mark.integration]
Reader = Callable[[Settings, str], list[tuple[bytes | None, bytes | None]]]
SECRET = "whsec_dGVzdC13ZWJob29rLXNlY3JldA=="


@dataclass
class Receiver:
    calls: Counter[str] = field(default_factory=Counter)  # webhook-id -> attempts seen
    accepted: Counter[str] = field(default_factory=Counter)  # webhook-id -> 2xx answers
    processed: list[str] = field(default_factory=list)  # after dedupe on webhook-id
    bad_signatures: int = 0
    bodies: dict[str, dict[str, object]] = field(default_factory=dict)
    lock: threading.Lock = field(default_factory=threading.Lock)


def serve(rx: Receiver) -> tuple[ThreadingHTTPServer, str]:
    class Handler(BaseHTTPRequestHandler):
        def do_POST(self) -> None:
            body = self.rfile.read(int(self.headers["content-length"]))
            headers = {k.lower(): v for k, v in self.headers.items()}
            if not verify(SECRET, headers, body, now_s=time.time()):
                with rx.lock:
                    rx.bad_signatures += 1
                self.send_response(401)
                self.end_headers()
                return
            msg_id = headers["webhook-id"]
            profile = str(orjson.loads(body)["profile"])
            with rx.lock:
                rx.calls[msg_id] += 1
                attempt = rx.calls[msg_id]
                rx.bodies[msg_id] = orjson.loads(body)
            if profile.startswith("u:flaky") and attempt <= 2:
                status = 500
            elif profile.startswith("u:slow") and attempt == 1:
                time.sleep(2.5)  # the relay's timeout is 1 s
                status = 200
            elif profile == "u:gone":
                status = 410
            else:
                status = 200
            if status == 200:
                with rx.lock:
                    rx.accepted[msg_id] += 1
                    if msg_id not in rx.processed:  # what a receiver does with a copy
                        rx.processed.append(msg_id)
            self.send_response(status)
            self.end_headers()

        def log_message(self, *args: object) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    return server, f"http://127.0.0.1:{server.server_address[1]}/hook"


def change(profile: str, old: int | None, new: int, seq: int) -> bytes:
    c = SegmentChange(
        SegmentChange.make_id(profile, old, new, seq, 1), profile, old, new, 1, seq, 0, 0
    )
    return c.to_json()


@pytest.fixture
def receiver() -> Iterator[tuple[Receiver, str]]:
    rx = Receiver()
    server, url = serve(rx)
    yield rx, url
    server.shutdown()
    server.server_close()


def test_rules_dwell_cap_retries_and_dedupe_against_a_real_receiver(
    servers: None, tmp_path: Path, receiver: tuple[Receiver, str], topic_reader: Reader
) -> None:
    rx, url = receiver
    settings = Settings(namespace=f"tr{uuid.uuid4().hex[:8]}", metrics_port=0)
    ensure_topics(settings)
    users = [f"u:ok{i}" for i in range(5)] + ["u:flaky1", "u:flaky2", "u:slow1", "u:gone"]
    records: list[tuple[bytes, bytes]] = []
    for u in users:  # everyone enters segment 3 (and the copy of that change comes too)
        records += [(u.encode(), change(u, None, 3, 1))] * 2
    records += [  # dwell: u:ok0 leaves 3 for 4 at once (no "settled" fire); u:ok1 stays in 4
        (b"u:ok0", change("u:ok0", 3, 4, 2)),
        (b"u:ok0", change("u:ok0", 4, 2, 3)),
        (b"u:ok1", change("u:ok1", 3, 4, 2)),
    ]
    records += [  # cap: u:ok2 re-enters 3 (second "vip" refused by cap 1/day)
        (b"u:ok2", change("u:ok2", 3, 1, 2)),
        (b"u:ok2", change("u:ok2", 1, 3, 3)),
    ]
    rules = [
        {"name": "vip", "on": "enter", "segment": 3, "cap": 1},
        {"name": "settled-in-4", "on": "enter", "segment": 4, "dwell_s": 2},
    ]
    env = {
        "SEGSTREAM_NAMESPACE": settings.namespace,
        "SEGSTREAM_METRICS_PORT": "0",
        "SEGSTREAM_TRIGGERS_METRICS_PORT": "0",
        "SEGSTREAM_TRIGGER_RULES": orjson.dumps(rules).decode(),
        "SEGSTREAM_WEBHOOK_URLS": orjson.dumps([url]).decode(),
        "SEGSTREAM_WEBHOOK_SECRET": SECRET,
        "SEGSTREAM_WEBHOOK_TIMEOUT_S": "1",
        "SEGSTREAM_WEBHOOK_BACKOFF_S": "0.2",
        "SEGSTREAM_WEBHOOK_MAX_ATTEMPTS": "4",
        "SEGSTREAM_TRIGGERS_TICK_S": "0.5",
    }
    log = tmp_path / "triggers.log"
    with log.open("wb") as out:
        proc = subprocess.Popen(
            [sys.executable, "-m", "segstream.consumers.cli", "triggers"],
            env={**os.environ, **env},
            stdout=out,
            stderr=subprocess.STDOUT,
        )
    try:
        send_all(settings, [("segment-changes", k, v) for k, v in records])
        vip = {u: trigger_id(SegmentChange.make_id(u, None, 3, 1, 1), "vip") for u in users}
        settled = trigger_id(SegmentChange.make_id("u:ok1", 3, 4, 2, 1), "settled-in-4")
        expected = {*vip.values(), settled} - {vip["u:gone"]}
        deadline = time.monotonic() + 90
        while time.monotonic() < deadline and not expected <= set(rx.processed):
            time.sleep(0.5)
        time.sleep(3)  # room for anything that should NOT come
    finally:
        code = stop_worker(proc)
    assert code == 0, log.read_text()[-3000:]

    assert rx.bad_signatures == 0
    assert sorted(rx.processed) == sorted(expected)  # exactly once after dedupe; dwell, cap
    # copies reach the receiver only where a timed-out attempt had in fact arrived
    assert {i: n for i, n in rx.accepted.items() if n > 1} == {vip["u:slow1"]: 2}
    assert rx.calls[vip["u:flaky1"]] == 3 and rx.calls[vip["u:slow1"]] == 2
    assert rx.calls[vip["u:gone"]] == 1  # 410: not retried
    fired = [orjson.loads(v) for _, v in topic_reader(settings, settings.topic("retargeting")) if v]
    assert Counter(t["id"] for t in fired) == Counter({*vip.values(), settled})  # copies fire once
    letters = [
        DeadLetter.from_json(v) for _, v in topic_reader(settings, settings.topic("dlq")) if v
    ]
    assert [(d.reason, d.stage) for d in letters] == [("webhook_http_410", "webhook")]
    assert orjson.loads(letters[0].raw_value())["id"] == vip["u:gone"]
