"""Hole detection in the offsets Faust delivers (pure logic; the broker reads are fakes)."""

from __future__ import annotations

import asyncio
from typing import Any

from confluent_kafka import KafkaError, KafkaException

from segstream.streams.engine import TP, Record
from segstream.streams.engine.continuity import CommitGuard, Continuity, Hole, find_holes

A, B = ("events", 0), ("events", 1)


def test_contiguous_offsets_have_no_hole() -> None:
    holes, nxt = find_holes({A: 10}, [(A, 10), (A, 11), (B, 4), (A, 12)])
    assert holes == []
    assert nxt == {A: 13, B: 5}  # a partition seen first starts where it is


def test_a_forward_jump_is_a_hole_and_a_step_back_is_not() -> None:
    holes, nxt = find_holes({A: 10}, [(A, 12), (A, 13), (A, 11), (A, 12), (A, 20)])
    assert holes == [Hole("events", 0, 10, 12), Hole("events", 0, 13, 20)]
    assert nxt == {A: 21}


class FakeBroker:
    def __init__(self, committed: dict[TP, int], filled: set[int]) -> None:
        self.committed_at = committed
        self.filled = filled  # offsets that hold records
        self.asked: list[list[TP]] = []

    async def committed(self, tps: list[TP]) -> dict[TP, int]:
        self.asked.append(tps)
        return {tp: self.committed_at[tp] for tp in tps}

    async def holds_records(self, hole: Hole) -> bool:
        return any(hole.start <= o < hole.end for o in self.filled)


def test_first_batch_is_checked_against_the_groups_committed_offset() -> None:
    broker = FakeBroker({A: 100, B: 7}, filled=set(range(1000)))
    c = Continuity(broker.committed, broker.holds_records)
    holes = asyncio.run(c.check([(A, 103), (A, 104), (B, 7)]))
    assert holes == [Hole("events", 0, 100, 103)]  # 100..102 were never delivered
    assert broker.asked == [[A, B]]
    assert asyncio.run(c.check([(A, 105), (B, 8)])) == []
    assert broker.asked == [[A, B]]  # asked once per assignment


def test_a_jump_over_offsets_without_records_is_not_a_hole() -> None:
    broker = FakeBroker({A: 0}, filled={0, 1, 5})  # 2..4: transaction markers
    c = Continuity(broker.committed, broker.holds_records)
    assert asyncio.run(c.check([(A, 0), (A, 1), (A, 5)])) == []


def test_a_partition_taken_away_starts_again_from_the_committed_offset() -> None:
    broker = FakeBroker({A: 0}, filled=set(range(100)))
    c = Continuity(broker.committed, broker.holds_records)
    assert asyncio.run(c.check([(A, 0), (A, 1)])) == []
    c.forget([A])  # another worker had it meanwhile and committed up to 50
    broker.committed_at[A] = 50
    assert asyncio.run(c.check([(A, 50)])) == []
    assert broker.asked == [[A], [A]]


def test_the_batch_waits_while_the_broker_is_away() -> None:
    """A broker restart: reading the committed offsets fails for a while, then works;
    the check waits instead of failing the agent (which would drop the batch in hand)."""
    broker = FakeBroker({A: 100}, filled=set(range(1000)))
    failures = [KafkaException(KafkaError(KafkaError.NOT_COORDINATOR))] * 3

    async def flaky(tps: list[TP]) -> dict[TP, int]:
        if failures:
            raise failures.pop()
        return await broker.committed(tps)

    c = Continuity(flaky, broker.holds_records)
    assert asyncio.run(c.check([(A, 101)])) == [Hole("events", 0, 100, 101)]
    assert not failures and broker.asked == [[A]]


def test_docstring_examples_hold() -> None:
    import doctest

    from segstream.streams.engine import continuity

    result = doctest.testmod(continuity)
    assert (result.failed, result.attempted > 0) == (0, True)


# ------------------------------------------------------------- commit guard
def record(topic: str, partition: int, offset: int) -> Record:
    return Record(topic, partition, offset, None, None)


class FakeConsumer:
    """Faust's ``_new_offset``: the end of the first run of acknowledged offsets."""

    def __init__(self, acked: dict[tuple[str, int], list[int]]) -> None:
        self.acked = acked

    def _new_offset(self, tp: Any) -> int | None:
        offsets = self.acked.get((tp.topic, tp.partition), [])
        return offsets[-1] + 1 if offsets else None


def tp(topic: str, partition: int) -> Any:
    return type("TP", (), {"topic": topic, "partition": partition})


def test_a_commit_never_passes_the_last_record_an_agent_finished() -> None:
    # offsets 0..9 processed; 10..14 skipped by Faust at a stop yet acknowledged
    consumer = FakeConsumer({("web", 0): list(range(15)), ("web", 1): [0, 1]})
    guard = CommitGuard(["web"])
    guard.install(consumer)
    guard.finished([record("web", 0, o) for o in range(10)])
    assert consumer._new_offset(tp("web", 0)) == 10  # not 15: the next start reads 10..14
    assert consumer._new_offset(tp("web", 1)) is None  # nothing finished there: no commit


def test_the_guard_lets_through_what_was_processed_and_foreign_topics() -> None:
    consumer = FakeConsumer({("web", 0): [5, 6], ("faust-leader", 0): [0, 1, 2]})
    guard = CommitGuard(["web"])
    guard.install(consumer)
    guard.finished([record("web", 0, 5), record("web", 0, 6), record("web", 0, 9)])
    assert consumer._new_offset(tp("web", 0)) == 7
    assert consumer._new_offset(tp("faust-leader", 0)) == 3


def test_a_revoked_partition_commits_nothing_until_it_is_processed_again() -> None:
    guard = CommitGuard(["web"])
    guard.finished([record("web", 0, 3)])
    guard.forget([("web", 0)])
    assert guard.cap(("web", 0), 4) is None
    guard.finished([record("web", 0, 20)])
    assert guard.cap(("web", 0), 21) == 21
