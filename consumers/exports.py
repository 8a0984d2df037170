"""Exports for ad platforms and CRMs, read from the authoritative Kafka topics.

* ``customer_match``: a segment's members as a customer list (header ``Email``, one
  SHA-256 hex of the normalised address per line), the format Google Customer Match
  and Meta custom audiences accept for hashed emails. Members without an email, and
  members whose latest consent says no, are left out (and counted).
* ``changes``: users whose segment changed in a time window, with their email hash,
  segment, scores and when, as CSV or JSON lines, for CRMs.
"""

from __future__ import annotations

import csv
import sys
import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import IO, Any

import orjson
from confluent_kafka import Consumer, TopicPartition

from segstream.schemas.errors import KafkaUnavailable
from segstream.schemas.records import SegmentRecord, is_segment_event
from segstream.schemas.settings import Settings, kafka_client_config


def _consumer(settings: Settings) -> Consumer:
    conf = kafka_client_config(settings)
    conf.update(
        {
            "group.id": f"segstream-export-{uuid.uuid4().hex}",
            "enable.auto.commit": False,
            "auto.offset.reset": "earliest",
        }
    )
    return Consumer(conf)


def read(
    settings: Settings, topic: str, since_ms: int | None = None
) -> Iterator[tuple[bytes | None, bytes | None]]:
    """Records of ``topic`` up to its end now, from ``since_ms`` (log time) or the start."""
    consumer = _consumer(settings)
    try:
        try:
            meta = consumer.list_topics(topic, timeout=10).topics[topic]
        except Exception as exc:  # KafkaException: broker down, or the topic is missing
            raise KafkaUnavailable(settings.kafka_bootstrap, str(exc)) from exc
        for p in sorted(meta.partitions):
            lo, hi = consumer.get_watermark_offsets(TopicPartition(topic, p), timeout=10)
            start = lo
            if since_ms is not None:
                found = consumer.offsets_for_times([TopicPartition(topic, p, since_ms)], 10)[0]
                start = hi if found.offset < 0 else max(lo, found.offset)
            if start >= hi:
                continue
            consumer.assign([TopicPartition(topic, p, start)])
            pos = start
            while pos < hi:
                msg = consumer.poll(10)
                if msg is None:
                    raise KafkaUnavailable(settings.kafka_bootstrap, f"{topic}[{p}] stalled")
                if msg.error():
                    continue
                pos = (msg.offset() or pos) + 1
                yield msg.key(), msg.value()
    finally:
        consumer.close()


def latest_segments(settings: Settings) -> dict[str, SegmentRecord]:
    """Every user's current segment record (the compacted topic, newest per key)."""
    out: dict[str, SegmentRecord] = {}
    for key, value in read(settings, settings.topic("segments")):
        if key is None:
            continue
        if value is None:
            out.pop(key.decode(), None)
        else:
            out[key.decode()] = SegmentRecord.from_json(value)
    return out


@dataclass(frozen=True, slots=True)
class ExportReport:
    written: int
    without_email: int = 0
    no_consent: int = 0


def customer_match(settings: Settings, segment: int, out: IO[str]) -> ExportReport:
    written = without_email = no_consent = 0
    out.write("Email\n")
    for record in latest_segments(settings).values():
        if record.segment != segment:
            continue
        if record.consent_marketing is False:
            no_consent += 1
        elif not record.email_sha256:
            without_email += 1
        else:
            out.write(record.email_sha256 + "\n")
            written += 1
    return ExportReport(written, without_email, no_consent)


def changes(settings: Settings, since_s: float, fmt: str, out: IO[str]) -> ExportReport:
    if fmt not in ("csv", "jsonl"):
        raise ValueError(f"unknown format {fmt!r}: use csv or jsonl")
    since_ms = int((time.time() - since_s) * 1000)
    current = latest_segments(settings)
    fields = ["user_id", "email_sha256", "old_segment", "segment", "scores", "changed_at"]
    writer = csv.DictWriter(out, fieldnames=fields) if fmt == "csv" else None
    if writer:
        writer.writeheader()
    n = 0
    for _, value in read(settings, settings.topic("segment-changes"), since_ms=since_ms):
        if value is None:
            continue
        c = orjson.loads(value)
        if is_segment_event(c) or c["emitted_ms"] < since_ms:
            continue
        record = current.get(c["profile"])
        row: dict[str, Any] = {
            "user_id": c["profile"],
            "email_sha256": record.email_sha256 if record else None,
            "old_segment": c["old"],
            "segment": c["new"],
            "scores": record.scores if record else None,
            "changed_at": datetime.fromtimestamp(c["emitted_ms"] / 1000, tz=UTC).isoformat(),
        }
        if writer:
            writer.writerow(
                {
                    **row,
                    "scores": orjson.dumps(row["scores"], option=orjson.OPT_NON_STR_KEYS).decode(),
                }
            )
        else:
            out.write(orjson.dumps(row, option=orjson.OPT_NON_STR_KEYS).decode() + "\n")
        n += 1
    return ExportReport(n)


def parse_window(text: str) -> float:
    """``24h``, ``30m``, ``7d``, ``90s`` → seconds."""
    units = {"s": 1, "m": 60, "h": 3600, "d": 86400}
    if len(text) < 2 or text[-1] not in units or not text[:-1].isdigit():
        raise ValueError(f"window {text!r}: use a number and s, m, h or d (e.g. 24h)")
    return int(text[:-1]) * units[text[-1]]


@contextmanager
def open_out(path: Path | None) -> Iterator[IO[str]]:
    """The file to write (closed after), or standard output (left open)."""
    if path is None:
        yield sys.stdout
        return
    with path.open("w", newline="") as f:
        yield f
