"""Hole detection in the offsets Faust delivers (pure logic; the broker reads are fakes)."""

from __future__ import annotations

import asyncio

from streams.continuity import TP, Continuity, Hole, find_holes

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


def test_docstring_examples_hold() -> None:
    import doctest

    from streams import continuity

    result = doctest.testmod(continuity)
    assert (result.failed, result.attempted > 0) == (0, True)
