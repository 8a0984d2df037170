"""streams/stages.rescore_forever: a new model re-assigns the local profiles, but never
from a table half restored, and never writes back a state older than Redis holds."""

from __future__ import annotations

import asyncio
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from types import SimpleNamespace
from typing import Any

import orjson

from segstream.models.features import feature_space
from segstream.models.oracle import run
from segstream.models.segments import SegmentLearner
from segstream.models.synthetic import Generator
from segstream.models.trainer import Trainer
from segstream.schemas.parse import EventParser
from segstream.schemas.settings import Settings
from segstream.streams import stages
from segstream.streams.app import Decoded
from segstream.streams.engine import Table

SETTINGS = Settings()
SPACE = feature_space(
    SETTINGS.features, SETTINGS.paid_channels, SETTINGS.social_channels, SETTINGS.email_channels
)


def _population() -> Any:
    g = Generator(users=60, seed=4)
    end = datetime.fromtimestamp(g.end_ms / 1000, tz=UTC)
    parser = EventParser(b"rescore-key", now=lambda: end + timedelta(days=1))
    learner = SegmentLearner(SPACE.names, SETTINGS.clusterer, seed=1)
    records = [(e.source, orjson.dumps(e.value)) for e in g.events()]
    return run(records, parser, SPACE, trainer=Trainer(SPACE, learner, seed=1))


RESULT = _population()


class FakePipeline:
    """What ``rescore_forever`` touches of a ``Pipeline``; Redis refuses ``newer`` keys."""

    def __init__(self, newer: set[bytes] = frozenset(), ready: bool = True) -> None:
        snap = RESULT.snapshot
        self.settings = SETTINGS
        self.space = SPACE
        self.watermark_ms = RESULT.watermark_ms
        self.lock = asyncio.Lock()
        self.engine = SimpleNamespace(should_stop=False)
        self.snapshot_changed = asyncio.Event()
        # the model moved on: every stored profile is one version behind
        self.snapshot = replace(snap, version=snap.version + 1)
        self.tables_ready = ready
        # every profile's assignment under an old, shuffled model: the rescore moves many
        self.profiles = Table.in_memory("profiles")
        self.profiles.put(
            {
                k.encode(): orjson.dumps(
                    {**orjson.loads(p.to_json()), "segment": -5, "segment_version": 1}
                )
                for k, p in RESULT.profiles.items()
                if p.events
            }
        )
        self.decoded = Decoded(0)  # every read decodes the table, as after a rebalance
        self.newer = newer
        self.table_writes: dict[bytes, bytes | None] = {}
        self.sent: list[Any] = []
        self.writer = SimpleNamespace(accepted=self._accepted)

    async def _accepted(self, writes: list[Any], deletes: list[Any]) -> list[bool]:
        return [w.profile.encode() not in self.newer for w in writes]

    async def redis_retry(self, op: Any, *args: Any) -> Any:
        return await op(*args)

    async def send(self, records: Any) -> None:
        self.sent += list(records)

    async def write_table(self, table: Any, items: dict[bytes, bytes | None]) -> None:
        self.table_writes.update(items)

    def owned_partitions(self) -> set[int]:
        return {0}

    def partition_of(self, key: bytes) -> int:
        return 0


async def _rescore(p: FakePipeline, *, then: Any = None) -> None:
    task = asyncio.ensure_future(stages.rescore_forever(p))  # type: ignore[arg-type]
    p.snapshot_changed.set()
    for _ in range(50):
        await asyncio.sleep(0)
    if then is not None:
        then()
        p.snapshot_changed.set()
        for _ in range(50):
            await asyncio.sleep(0)
    task.cancel()


def test_a_new_model_rewrites_the_profiles_it_moves() -> None:
    p = FakePipeline()
    asyncio.run(_rescore(p))
    assert len(p.table_writes) > 10
    for key, raw in p.table_writes.items():
        assert raw is not None
        state = orjson.loads(raw)
        assert state["segment_version"] == p.snapshot.version
        assert state["seq"] == orjson.loads(p.profiles.get(key) or b"{}")["seq"]


def test_nothing_is_rescored_while_the_tables_are_being_restored() -> None:
    p = FakePipeline(ready=False)
    asyncio.run(_rescore(p))
    assert p.table_writes == {} and p.sent == []


def test_the_end_of_the_recovery_starts_the_rescore() -> None:
    p = FakePipeline(ready=False)

    def recovered() -> None:
        p.tables_ready = True

    asyncio.run(_rescore(p, then=recovered))
    assert len(p.table_writes) > 10


def test_a_state_older_than_redis_is_not_written_back_to_the_table() -> None:
    """A rescore read a profile older than the one Redis holds: its record is refused,
    and its stale state must not become the changelog's newest."""
    everyone = set(FakePipeline().profiles.keys())
    newer = set(sorted(everyone)[::2])
    p = FakePipeline(newer=newer)
    asyncio.run(_rescore(p))
    assert p.table_writes, "the others are written"
    assert not newer & set(p.table_writes)
    refused = {r[1] for r in p.sent if r[0] == "segments"} & newer
    assert refused == set()
