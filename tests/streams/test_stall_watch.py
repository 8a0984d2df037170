"""streams.engine.stalls.StallWatch: a partition nobody fetches, told from a worker that waits."""

from __future__ import annotations

from segstream.streams.engine.stalls import StallWatch
from segstream.streams.lag import Position

A, B = ("web", 0), ("web", 1)


def test_a_partition_left_behind_while_another_moves_is_stalled() -> None:
    w = StallWatch(after_s=30)
    assert w.observe({A: Position(0, 10), B: Position(0, 10)}, now=0) == []
    assert w.observe({A: Position(0, 10), B: Position(5, 20)}, now=20) == []  # 20 s behind
    assert w.observe({A: Position(0, 10), B: Position(9, 30)}, now=31) == [A]


def test_time_in_which_nothing_moves_does_not_count() -> None:
    w = StallWatch(after_s=30)
    w.observe({A: Position(0, 10), B: Position(0, 10)}, now=0)
    w.observe({A: Position(0, 10), B: Position(2, 10)}, now=5)  # A 5 s behind
    assert w.observe({A: Position(0, 10), B: Position(2, 10)}, now=100) == []  # an outage
    w.observe({A: Position(0, 10), B: Position(3, 10)}, now=105)  # B again: A 10 s behind
    assert w.observe({A: Position(0, 10), B: Position(4, 10)}, now=125) == [A]  # 30 s


def test_moving_or_catching_up_starts_the_count_again() -> None:
    w = StallWatch(after_s=30)
    w.observe({A: Position(0, 10), B: Position(0, 10)}, now=0)
    w.observe({A: Position(0, 10), B: Position(5, 10)}, now=25)
    w.observe({A: Position(1, 10), B: Position(6, 10)}, now=26)  # A moved: back to 0
    assert w.observe({A: Position(1, 10), B: Position(7, 10)}, now=50) == []
    w.observe({A: Position(10, 10), B: Position(8, 10)}, now=55)  # A caught up
    w.observe({A: Position(10, 12), B: Position(9, 10)}, now=80)  # new records: 0 so far
    assert w.observe({A: Position(10, 12), B: Position(10, 12)}, now=100) == []


def test_given_away_partitions_are_forgotten_and_zero_turns_the_watch_off() -> None:
    w = StallWatch(after_s=30)
    w.observe({A: Position(0, 10), B: Position(0, 10)}, now=0)
    w.observe({A: Position(0, 10), B: Position(5, 10)}, now=29)
    w.observe({B: Position(6, 10)}, now=30)  # A given away
    assert w.observe({A: Position(0, 10), B: Position(7, 10)}, now=35) == []  # back: new count
    off = StallWatch(after_s=0)
    off.observe({A: Position(0, 10), B: Position(0, 10)}, now=0)
    assert off.observe({A: Position(0, 10), B: Position(9, 10)}, now=1000) == []


def test_an_agent_held_up_in_a_batch_is_not_stalled() -> None:
    w = StallWatch(after_s=30)
    w.observe({A: Position(0, 10), B: Position(0, 10)}, now=0)
    events = ("events", 0)
    w.observe({A: Position(0, 10), B: Position(5, 10), events: Position(0, 9)}, now=5)
    # the profiles agent waits for Redis in its batch while the edge (B) moves on
    for now in range(10, 100, 5):
        got = w.observe(
            {A: Position(now, 200), B: Position(now, 200), events: Position(0, 9)},
            now=now,
            busy={"events"},
        )
        assert events not in got
