"""streams.stages.profile_batch over envelopes: each user's events of a batch folded into
one working copy give the states the pure ``apply`` gives event by event, every changed
user is written once per batch, and copies and replayed envelopes count once."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime, timedelta
from types import SimpleNamespace
from typing import Any

import orjson
import pytest

from segstream.models.features import Profile, apply, feature_space, new_profile
from segstream.models.identity import route
from segstream.models.synthetic import Generator
from segstream.schemas.envelope import Packer
from segstream.schemas.events import Event
from segstream.schemas.parse import EventParser, Rejection
from segstream.schemas.settings import TOPICS, Settings
from segstream.streams import stages
from segstream.streams.app import Decoded, Runtime
from segstream.streams.engine import Record, Table

SETTINGS = Settings(namespace="pb", partitions=2)


class FakePipeline:
    """What ``profile_batch`` touches of a ``Pipeline``: the table is a dict, Redis takes
    every write, sends are collected."""

    unpacked = Runtime.unpacked
    item_letter = Runtime.item_letter
    letter = Runtime.letter
    out_record = staticmethod(Runtime.out_record)

    def __init__(self) -> None:
        self.settings = SETTINGS
        self.names = {t: SETTINGS.topic(t) for t in TOPICS}
        self.space = feature_space(SETTINGS.features)
        self.lock = asyncio.Lock()
        self.erasures_loaded = asyncio.Event()
        self.erasures_loaded.set()
        self.erased: set[str] = set()
        self.decoded = Decoded(1000)
        self.profiles = Table.in_memory("profiles", SETTINGS.partitions)
        self.snapshot = None
        self.watermark_ms = 0
        self.writer = SimpleNamespace(accepted=self._accepted)
        self.sent: list[Any] = []
        self.writes_per_batch: list[list[bytes]] = []

    async def _accepted(self, writes: list[Any], deletes: list[Any]) -> list[bool]:
        return [True for _ in writes]

    async def redis_retry(self, op: Any, *args: Any) -> Any:
        return await op(*args)

    async def send(self, records: Any) -> None:
        self.sent += list(records)

    async def write_table(self, table: Table, items: dict[bytes, bytes | None]) -> None:
        self.writes_per_batch.append(list(items))
        for key in items:
            self.decoded.discard(key)
        table.put(items)


def message(partition: int, offset: int, value: bytes) -> Record:
    return Record(SETTINGS.topic("events"), partition, offset, None, value)


def events_of_customers() -> list[Event]:
    g = Generator(users=40, seed=11)
    end = datetime.fromtimestamp(g.end_ms / 1000, tz=UTC)
    parser = EventParser(b"k" * 32, now=lambda: end + timedelta(days=1))
    out = []
    for e in g.events():
        parsed = parser.parse(orjson.dumps(e.value), e.source)
        if not isinstance(parsed, Rejection) and parsed.user_id:
            out.append(parsed)
    return out


@pytest.mark.parametrize("effects_chunk", [stages.EFFECTS_CHUNK, 7])
def test_a_batchs_events_fold_into_the_states_apply_gives_and_copies_count_once(
    effects_chunk: int, monkeypatch: pytest.MonkeyPatch
) -> None:
    # with 7, a batch's users go out in several chunks of effects, concurrently
    monkeypatch.setattr(stages, "EFFECTS_CHUNK", effects_chunk)
    events = events_of_customers()
    p = FakePipeline()
    offsets = {0: 0, 1: 0}
    expected: dict[str, Profile] = {}
    envelopes: list[Any] = []
    chunk = 300
    for start in range(0, len(events), chunk):
        part = events[start : start + chunk]
        part += part[:20]  # copies inside the batch, and of earlier ones below
        part += events[max(0, start - 10) : start]
        packer = Packer(SETTINGS.partitions, 64 * 1024)
        for e in part:
            (out,) = [o for o in route(e) if o.topic == "events"]
            packer.add("events", out.key, out.value, ("pb.web", 0, 0))
            expected[out.key] = apply(expected.get(out.key) or new_profile(out.key), e)
        batch = []
        for _, partition, value in packer.envelopes():
            batch.append(message(partition, offsets[partition], value))
            offsets[partition] += 1
        envelopes.append(batch)

    per_batch: list[list[bytes]] = []  # the users each batch wrote, over all its chunks

    async def run() -> None:
        for batch in [*envelopes, envelopes[0]]:  # the last: a replayed batch, skipped whole
            before = len(p.writes_per_batch)
            await stages.profile_batch(p, batch)
            per_batch.append([k for w in p.writes_per_batch[before:] for k in w])

    asyncio.run(run())
    stored = {k.decode(): Profile.from_dict(orjson.loads(v)) for k, v in p.profiles.items()}
    assert sorted(stored) == sorted(expected)
    keep = ("events", "seq", "page_views", "purchases", "revenue", "last_seen_ms", "channels")
    for key, want in expected.items():
        got = stored[key]
        assert {f: getattr(got, f) for f in keep} == {f: getattr(want, f) for f in keep}, key
        assert got.recent == want.recent
    for written in per_batch:
        assert len(written) == len(set(written))  # each user once per batch
    assert per_batch[-1] == []  # the replay wrote nothing
    if effects_chunk < 40:
        assert len(p.writes_per_batch) > 2 * len(envelopes)  # several chunks per batch
    assert not [r for r in p.sent if r[0] == "dlq"]
