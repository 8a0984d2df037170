"""Exports read the authoritative topics: customer lists by segment, changes in a window."""

from __future__ import annotations

import csv
import io
import time
import uuid

import orjson
import pytest

from segstream.consumers.exports import changes, customer_match, parse_window
from segstream.schemas.records import SegmentChange, SegmentRecord
from segstream.schemas.settings import Settings
from segstream.streams.produce import send_all
from segstream.streams.topics import ensure_topics

pytestmark = [pytest.mark.integration]


def record(profile: str, segment: int, seq: int, **extra: object) -> tuple[str, bytes, bytes]:
    r = SegmentRecord(profile, segment, 1, seq, 0, {segment: 0.9, 99: 0.1}, None, **extra)
    return "segments", profile.encode(), r.to_json()


def test_customer_match_and_changes_exports(servers: None) -> None:
    s = Settings(namespace=f"ex{uuid.uuid4().hex[:8]}", metrics_port=0)
    ensure_topics(s)
    h = [f"{i:064x}" for i in range(5)]
    now_ms = int(time.time() * 1000)
    old_change = SegmentChange("c-old", "u:a", None, 1, 1, 1, 0, now_ms - 3 * 86_400_000)
    new_change = SegmentChange("c-new", "u:a", 1, 2, 1, 2, 0, now_ms)
    send_all(
        s,
        [
            record("u:a", 1, 1, email_sha256=h[0]),
            record("u:a", 2, 2, email_sha256=h[0]),  # moved on: the latest record counts
            record("u:b", 2, 1, email_sha256=h[1]),
            record("u:c", 2, 1, email_sha256=h[2], consent_marketing=False),  # no consent
            record("a:d", 2, 1),  # anonymous: no email
            record("u:e", 2, 1, email_sha256=h[4]),
            ("segments", b"u:e", None),  # erased: a tombstone removes it
            record("u:f", 3, 1, email_sha256=h[3]),
            ("segment-changes", b"u:a", old_change.to_json()),
            ("segment-changes", b"u:a", new_change.to_json()),
        ],
    )
    out = io.StringIO()
    report = customer_match(s, 2, out)
    lines = out.getvalue().splitlines()
    assert lines[0] == "Email" and sorted(lines[1:]) == sorted([h[0], h[1]])
    assert (report.written, report.without_email, report.no_consent) == (2, 1, 1)

    out = io.StringIO()
    assert changes(s, parse_window("24h"), "csv", out).written == 1
    rows = list(csv.DictReader(io.StringIO(out.getvalue())))
    assert [(r["user_id"], r["old_segment"], r["segment"], r["email_sha256"]) for r in rows] == [
        ("u:a", "1", "2", h[0])
    ]
    assert orjson.loads(rows[0]["scores"]) == {"2": 0.9, "99": 0.1}
    out = io.StringIO()
    assert changes(s, parse_window("7d"), "jsonl", out).written == 2
    assert [orjson.loads(x)["segment"] for x in out.getvalue().splitlines()] == [1, 2]
