"""streams.edge.Edge: one batch of source records becomes envelopes (one per destination
partition) and dead letters that keep each bad record's coordinates and bytes."""

from __future__ import annotations

from datetime import timedelta

import orjson

from segstream.schemas.envelope import partition_for, unpack
from segstream.schemas.parse import EventParser
from segstream.schemas.records import DeadLetter
from segstream.schemas.settings import Settings
from segstream.streams.edge import Edge, Stats

KEY = b"k" * 32


class Message:
    """What the edge reads of a confluent-kafka message."""

    def __init__(self, topic: str, partition: int, offset: int, value: bytes) -> None:
        self._where = (topic, partition, offset)
        self._value = value

    def topic(self) -> str:
        return self._where[0]

    def partition(self) -> int:
        return self._where[1]

    def offset(self) -> int:
        return self._where[2]

    def value(self) -> bytes:
        return self._value

    def key(self) -> bytes:
        return b"some-key"

    def timestamp(self) -> tuple[int, int]:
        return (1, 1_700_000_000_123)  # CreateTime

    def error(self) -> None:
        return None


def web(event_id: str, user: str | None = None, anon: str | None = None) -> bytes:
    body: dict[str, object] = {
        "schema_version": 1, "event_id": event_id, "type": "page_view",
        "ts": "2026-11-01T10:00:00Z", "session_id": "s1", "url": "https://shop.example/",
    }  # fmt: skip
    if user:
        body["user_id"] = user
    if anon:
        body["anonymous_id"] = anon
    return orjson.dumps(body)


def edge(erased: set[str] | None = None) -> tuple[Edge, Settings]:
    s = Settings(namespace="t", partitions=4)
    parser = EventParser(KEY, max_future_skew=timedelta(days=3650))
    return Edge(s, parser, erased if erased is not None else set()), s


def items_by_topic(s: Settings, records: list) -> dict[str, list]:
    out: dict[str, list] = {}
    for topic, part, key, value in records:
        if topic == s.topic("dlq"):
            out.setdefault("dlq", []).append((key, DeadLetter.from_json(value)))
            continue
        assert key is None and part is not None
        items, misfits = unpack(value, None, part, 0, s.partitions)
        assert misfits == []
        out.setdefault(topic.split(".", 1)[1], []).extend(items)
    return out


def test_events_travel_in_one_envelope_per_destination_partition() -> None:
    e, s = edge()
    msgs = [Message("t.web", 0, i, web(f"e{i}", user=f"c{i % 6}")) for i in range(30)]
    records, sent = e.batch(msgs)
    assert len(records) <= s.partitions  # every item of a partition in one envelope
    got = items_by_topic(s, records)
    events = got["events"]
    assert sorted(i.record["e"]["event_id"] for i in events) == sorted(f"e{i}" for i in range(30))
    for item in events:
        assert partition_for(item.key.encode(), s.partitions) == item.partition
        assert item.src == ("t.web", 0, int(item.record["e"]["event_id"][1:]))
        assert item.record["e"]["ingest_ms"] == 1_700_000_000_123
    assert len(sent) == 30
    assert e.stats.events[("web", "page_view")] == 30


def test_links_go_to_identity_once() -> None:
    e, s = edge()
    first, sent = e.batch([Message("t.web", 1, 0, web("a", user="c1", anon="x1"))])
    links = [i for i in items_by_topic(s, first)["identity"] if i.record["k"] == "link"]
    assert [(i.key, i.record["to"]) for i in links] == [("a:x1", "u:c1")]
    e.links.remember(sent)
    again, _ = e.batch([Message("t.web", 1, 1, web("b", user="c1", anon="x1"))])
    assert "identity" not in items_by_topic(s, again)


def test_bad_records_become_dead_letters_with_their_own_coordinates_and_bytes() -> None:
    e, s = edge()
    bad = b'{"schema_version": 1, "event_id": "z", "type": "page_view"}'
    records, _ = e.batch(
        [Message("t.web", 2, 5, web("ok", user="c1")), Message("t.web", 3, 9, bad)]
    )
    ((key, letter),) = items_by_topic(s, records)["dlq"]
    assert (letter.topic, letter.partition, letter.offset, letter.stage) == ("t.web", 3, 9, "edge")
    assert letter.raw_value() == bad and key == b"some-key"
    assert e.stats.dead[letter.reason] == 1


def test_events_of_erased_people_are_dropped() -> None:
    e, _ = edge(erased={"u:gone"})
    records, _ = e.batch([Message("t.web", 0, 0, web("x", user="gone"))])
    assert records == []
    assert e.stats.suppressed == 1


def test_stats_start_again_after_each_report() -> None:
    stats = Stats()
    stats.suppressed = 1
    stats.events[("web", "page_view")] += 2
    stats.assigned = [("t.web", 0)]
    taken = stats.take()
    assert (taken.suppressed, taken.events[("web", "page_view")]) == (1, 2)
    assert (stats.suppressed, sum(stats.events.values())) == (0, 0)
    assert stats.assigned == [("t.web", 0)]  # a state, not a count
