"""models/triggers.py: enter/leave/move rules, dwell (debounce), caps, dedupe."""

from __future__ import annotations

import json

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from segstream.models.triggers import (
    MAX_SEEN,
    Pending,
    Rule,
    Trigger,
    TriggerState,
    next_due,
    on_change,
    on_tick,
    trigger_id,
)

PROFILE = "u:1"


def change(cid: str, old: int | None, new: int, profile: str = PROFILE) -> dict[str, object]:
    return {"id": cid, "profile": profile, "old": old, "new": new}


# --------------------------------------------------------------------------- Rule validation


@pytest.mark.parametrize("on", ["enter", "leave"])
def test_enter_and_leave_need_a_segment(on):
    with pytest.raises(ValueError, match="needs a segment"):
        Rule(name="r", on=on)


def test_move_needs_from_or_to():
    with pytest.raises(ValueError, match="needs from_segment or to_segment"):
        Rule(name="r", on="move")


@pytest.mark.parametrize(
    "kwargs",
    [
        {"cap": 0},
        {"cap": -1},
        {"dwell_s": -0.001},
        {"cap_window_s": 0},
        {"cap_window_s": -5.0},
    ],
)
def test_bad_cap_dwell_or_window_is_refused(kwargs):
    with pytest.raises(ValueError, match="cap ≥ 1"):
        Rule(name="r", on="enter", segment=1, **kwargs)


def test_valid_rules_are_accepted():
    Rule(name="a", on="enter", segment=0, dwell_s=0.0, cap=1, cap_window_s=0.001)
    Rule(name="b", on="leave", segment=0)
    Rule(name="c", on="move", from_segment=1)
    Rule(name="d", on="move", to_segment=2)


# --------------------------------------------------------------------------- matches()


@pytest.mark.parametrize(
    ("old", "new", "expected"),
    [
        (1, 3, True),
        (None, 3, True),  # first segment ever counts as entering
        (3, 3, False),  # already there
        (3, 1, False),
        (1, 2, False),
    ],
)
def test_enter_matches(old, new, expected):
    assert Rule(name="r", on="enter", segment=3).matches(old, new) is expected


@pytest.mark.parametrize(
    ("old", "new", "expected"),
    [
        (3, 1, True),
        (3, 3, False),
        (1, 3, False),
        (None, 1, False),
        (1, 2, False),
    ],
)
def test_leave_matches(old, new, expected):
    assert Rule(name="r", on="leave", segment=3).matches(old, new) is expected


@pytest.mark.parametrize(
    ("from_segment", "to_segment", "old", "new", "expected"),
    [
        (1, 2, 1, 2, True),
        (1, 2, 1, 3, False),
        (1, 2, 0, 2, False),
        (1, 2, 2, 1, False),
        (None, 2, 0, 2, True),  # from any
        (None, 2, 1, 2, True),
        (None, 2, 2, 2, False),  # no move
        (None, 2, 1, 3, False),
        (1, None, 1, 0, True),  # to any
        (1, None, 1, 3, True),
        (1, None, 1, 1, False),  # no move
        (1, None, 2, 3, False),
        (None, 2, None, 2, False),  # first segment ever is not a move
        (1, None, None, 1, False),
    ],
)
def test_move_matches(from_segment, to_segment, old, new, expected):
    rule = Rule(name="r", on="move", from_segment=from_segment, to_segment=to_segment)
    assert rule.matches(old, new) is expected


# --------------------------------------------------------------------------- on_change, dwell 0


def test_immediate_fire_has_deterministic_id():
    rule = Rule(name="welcome", on="enter", segment=3)
    state, fired = on_change(None, change("c1", 1, 3), [rule], now_ms=1_000)
    assert fired == [
        Trigger(
            id=trigger_id("c1", "welcome"),
            rule="welcome",
            profile=PROFILE,
            old=1,
            new=3,
            change_id="c1",
            fired_ms=1_000,
        )
    ]
    assert state.segment == 3
    assert state.since_ms == 1_000
    assert state.pending == []
    assert state.fired == {"welcome": [1_000]}
    # same inputs on a fresh state: same id
    _, again = on_change(None, change("c1", 1, 3), [rule], now_ms=5_000)
    assert [t.id for t in again] == [fired[0].id]
    assert fired[0].to_dict()["id"] == trigger_id("c1", "welcome")


def test_trigger_id_is_stable_and_distinguishes_inputs():
    assert trigger_id("c1", "r") == trigger_id("c1", "r")
    assert len(trigger_id("c1", "r")) == 32
    assert trigger_id("c1", "r") != trigger_id("c2", "r")
    assert trigger_id("c1", "r") != trigger_id("c1", "s")


def test_non_matching_change_fires_nothing_but_updates_segment():
    rule = Rule(name="r", on="enter", segment=3)
    state, fired = on_change(None, change("c1", 0, 1), [rule], now_ms=10)
    assert fired == []
    assert state.segment == 1
    assert state.since_ms == 10
    assert state.seen == ["c1"]


def test_same_change_twice_fires_once():
    rule = Rule(name="r", on="enter", segment=3, cap=10)
    state, first = on_change(None, change("c1", 1, 3), [rule], now_ms=1_000)
    state2, second = on_change(state, change("c1", 1, 3), [rule], now_ms=2_000)
    assert len(first) == 1
    assert second == []
    assert state2.to_dict() == state.to_dict()  # a duplicate changes nothing
    assert state2.suppressed == 0


def test_on_change_does_not_mutate_its_input_state():
    rules = [
        Rule(name="now", on="enter", segment=3, cap=10),
        Rule(name="later", on="enter", segment=3, dwell_s=5),
        Rule(name="capped", on="move", to_segment=3, cap=1),
    ]
    state, _ = on_change(None, change("c0", 2, 3), rules, now_ms=0)
    state, _ = on_change(state, change("c1", 3, 1), rules, now_ms=100)
    before = state.to_dict()
    new_state, fired = on_change(state, change("c2", 1, 3), rules, now_ms=200)
    assert state.to_dict() == before
    assert new_state is not state
    assert [t.rule for t in fired] == ["now"]  # "capped" hit its cap of 1
    assert new_state.suppressed == 1
    assert new_state.seen == ["c0", "c1", "c2"]


def test_on_tick_does_not_mutate_its_input_state():
    rule = Rule(name="r", on="enter", segment=3, dwell_s=1)
    state, _ = on_change(None, change("c1", 1, 3), [rule], now_ms=0)
    before = state.to_dict()
    new_state, fired = on_tick(state, PROFILE, [rule], now_ms=1_000)
    assert len(fired) == 1
    assert state.to_dict() == before
    assert new_state.pending == []


def test_seen_is_bounded_and_oldest_ids_are_forgotten():
    rule = Rule(name="r", on="enter", segment=1, cap=1_000)
    state = None
    segs = [0, 1] * (MAX_SEEN // 2 + 1)  # MAX_SEEN + 2 changes
    old = None
    for i, seg in enumerate(segs):
        state, _ = on_change(state, change(f"c{i}", old, seg), [rule], now_ms=i)
        old = seg
    assert state is not None
    assert len(state.seen) == MAX_SEEN
    assert state.seen[-1] == f"c{len(segs) - 1}"
    assert "c0" not in state.seen and "c1" not in state.seen
    # a recent id is still deduped
    _, fired = on_change(state, change(state.seen[0], 0, 1), [rule], now_ms=10_000)
    assert fired == []


# --------------------------------------------------------------------------- dwell

DWELL = Rule(name="stay", on="enter", segment=3, dwell_s=10)


def test_dwell_schedules_instead_of_firing():
    state, fired = on_change(None, change("c1", 1, 3), [DWELL], now_ms=1_000)
    assert fired == []
    assert state.pending == [
        Pending(rule="stay", change_id="c1", old=1, new=3, due_ms=11_000, since_ms=1_000, epoch=1)
    ]
    assert next_due(state) == 11_000


def test_dwell_tick_before_due_fires_nothing():
    state, _ = on_change(None, change("c1", 1, 3), [DWELL], now_ms=1_000)
    state2, fired = on_tick(state, PROFILE, [DWELL], now_ms=10_999)
    assert fired == []
    assert state2.pending == state.pending
    assert next_due(state2) == 11_000


def test_dwell_fires_when_due_if_user_stayed():
    state, _ = on_change(None, change("c1", 1, 3), [DWELL], now_ms=1_000)
    state, fired = on_tick(state, PROFILE, [DWELL], now_ms=11_000)
    assert [(t.id, t.rule, t.old, t.new, t.change_id, t.fired_ms) for t in fired] == [
        (trigger_id("c1", "stay"), "stay", 1, 3, "c1", 11_000)
    ]
    assert state.pending == []
    assert next_due(state) is None
    # once fired, a later tick does not fire again
    _, again = on_tick(state, PROFILE, [DWELL], now_ms=50_000)
    assert again == []


def test_dwell_late_tick_still_fires_at_tick_time():
    state, _ = on_change(None, change("c1", 1, 3), [DWELL], now_ms=1_000)
    _, fired = on_tick(state, PROFILE, [DWELL], now_ms=99_000)
    assert [t.fired_ms for t in fired] == [99_000]


def test_dwell_debounce_user_moved_on_before_due():
    state, _ = on_change(None, change("c1", 1, 3), [DWELL], now_ms=1_000)
    state, fired = on_change(state, change("c2", 3, 2), [DWELL], now_ms=5_000)
    assert fired == []
    state, fired = on_tick(state, PROFILE, [DWELL], now_ms=11_000)
    assert fired == []
    assert state.pending == []  # the stale pending is dropped, not kept


def test_dwell_left_and_came_back_only_second_pending_fires():
    state, _ = on_change(None, change("c1", 1, 3), [DWELL], now_ms=0)
    state, _ = on_change(state, change("c2", 3, 1), [DWELL], now_ms=2_000)
    state, _ = on_change(state, change("c3", 1, 3), [DWELL], now_ms=4_000)
    assert [p.due_ms for p in state.pending] == [10_000, 14_000]
    # the first dwell elapses while the user is in 3 again, but not since c1
    state, fired = on_tick(state, PROFILE, [DWELL], now_ms=10_000)
    assert fired == []
    assert [p.change_id for p in state.pending] == ["c3"]
    state, fired = on_tick(state, PROFILE, [DWELL], now_ms=13_999)
    assert fired == []
    state, fired = on_tick(state, PROFILE, [DWELL], now_ms=14_000)
    assert [(t.change_id, t.id) for t in fired] == [("c3", trigger_id("c3", "stay"))]
    assert state.pending == []


LEAVE = Rule(name="bye", on="leave", segment=3, dwell_s=10)


def test_leave_with_dwell_fires_if_user_did_not_come_back():
    state, _ = on_change(None, change("c1", 1, 3), [LEAVE], now_ms=0)
    state, fired = on_change(state, change("c2", 3, 1), [LEAVE], now_ms=1_000)
    assert fired == []
    assert next_due(state) == 11_000
    state, fired = on_tick(state, PROFILE, [LEAVE], now_ms=11_000)
    assert [(t.rule, t.old, t.new, t.change_id) for t in fired] == [("bye", 3, 1, "c2")]


def test_leave_with_dwell_does_not_fire_if_user_came_back():
    state, _ = on_change(None, change("c1", 1, 3), [LEAVE], now_ms=0)
    state, _ = on_change(state, change("c2", 3, 1), [LEAVE], now_ms=1_000)
    state, _ = on_change(state, change("c3", 1, 3), [LEAVE], now_ms=5_000)
    state, fired = on_tick(state, PROFILE, [LEAVE], now_ms=11_000)
    assert fired == []
    assert state.pending == []


def test_leave_with_dwell_fires_if_user_moved_elsewhere_without_coming_back():
    state, _ = on_change(None, change("c1", 1, 3), [LEAVE], now_ms=0)
    state, _ = on_change(state, change("c2", 3, 1), [LEAVE], now_ms=1_000)
    state, _ = on_change(state, change("c3", 1, 2), [LEAVE], now_ms=5_000)  # still not in 3
    _, fired = on_tick(state, PROFILE, [LEAVE], now_ms=11_000)
    assert [t.change_id for t in fired] == ["c2"]


def test_left_and_came_back_within_the_same_millisecond_fires_once():
    rule = Rule(name="stay", on="enter", segment=3, dwell_s=10, cap=5)
    state, _ = on_change(None, change("c1", 1, 3), [rule], now_ms=0)
    state, _ = on_change(state, change("c2", 3, 1), [rule], now_ms=0)
    state, _ = on_change(state, change("c3", 1, 3), [rule], now_ms=0)
    _, fired = on_tick(state, PROFILE, [rule], now_ms=10_000)
    assert [t.change_id for t in fired] == ["c3"]


def test_pending_of_a_removed_rule_is_dropped():
    state, _ = on_change(None, change("c1", 1, 3), [DWELL], now_ms=0)
    state, fired = on_tick(state, PROFILE, [], now_ms=10_000)
    assert fired == []
    assert state.pending == []


def test_tick_with_nothing_due_returns_same_state():
    state = TriggerState(segment=1)
    new_state, fired = on_tick(state, PROFILE, [DWELL], now_ms=1_000)
    assert fired == []
    assert new_state is state


# --------------------------------------------------------------------------- cap


def test_cap_suppresses_within_window_and_fires_after():
    rule = Rule(name="r", on="enter", segment=1, cap=2, cap_window_s=60)
    state, fired_all = None, []
    plan = [
        ("a1", 0, 1, 0),
        ("l1", 1, 0, 1_000),
        ("a2", 0, 1, 10_000),
        ("l2", 1, 0, 11_000),
        ("a3", 0, 1, 20_000),  # third within 60 s: suppressed
        ("l3", 1, 0, 21_000),
    ]
    for cid, old, new, now in plan:
        state, fired = on_change(state, change(cid, old, new), [rule], now_ms=now)
        fired_all += fired
    assert state is not None
    assert [t.change_id for t in fired_all] == ["a1", "a2"]
    assert state.suppressed == 1
    # at 60 000 the fire at 0 is out of the window: one slot free again
    state, fired = on_change(state, change("a4", 0, 1), [rule], now_ms=60_000)
    assert [t.change_id for t in fired] == ["a4"]
    assert state.suppressed == 1
    assert state.fired == {"r": [10_000, 60_000]}
    # and the window is full again
    state, _ = on_change(state, change("l4", 1, 0), [rule], now_ms=61_000)
    state, fired = on_change(state, change("a5", 0, 1), [rule], now_ms=62_000)
    assert fired == []
    assert state.suppressed == 2


def test_cap_is_per_rule():
    tight = Rule(name="tight", on="enter", segment=1, cap=1, cap_window_s=60)
    loose = Rule(name="loose", on="enter", segment=1, cap=5, cap_window_s=60)
    state = None
    names = []
    for i, (old, new) in enumerate([(0, 1), (1, 0), (0, 1)]):
        state, fired = on_change(state, change(f"c{i}", old, new), [tight, loose], now_ms=i)
        names += [t.rule for t in fired]
    assert state is not None
    assert names == ["tight", "loose", "loose"]
    assert state.suppressed == 1


def test_cap_applies_to_dwell_fires_at_tick_time():
    rule = Rule(name="r", on="enter", segment=1, dwell_s=1, cap=1, cap_window_s=60)
    state, _ = on_change(None, change("a1", 0, 1), [rule], now_ms=0)
    state, fired = on_tick(state, PROFILE, [rule], now_ms=1_000)
    assert len(fired) == 1
    state, _ = on_change(state, change("l1", 1, 0), [rule], now_ms=2_000)
    state, _ = on_change(state, change("a2", 0, 1), [rule], now_ms=3_000)
    state, fired = on_tick(state, PROFILE, [rule], now_ms=4_000)
    assert fired == []
    assert state.suppressed == 1


# --------------------------------------------------------------------------- several rules


def test_multiple_rules_fire_independently_with_own_ids():
    rules = [
        Rule(name="enter-2", on="enter", segment=2),
        Rule(name="leave-1", on="leave", segment=1),
        Rule(name="move-1-2", on="move", from_segment=1, to_segment=2),
        Rule(name="move-any-2", on="move", to_segment=2),
        Rule(name="enter-3", on="enter", segment=3),  # does not match
        Rule(name="enter-2-later", on="enter", segment=2, dwell_s=1),
    ]
    state, fired = on_change(None, change("c9", 1, 2), rules, now_ms=500)
    assert [t.rule for t in fired] == ["enter-2", "leave-1", "move-1-2", "move-any-2"]
    assert [t.id for t in fired] == [trigger_id("c9", t.rule) for t in fired]
    assert len({t.id for t in fired}) == 4
    assert [p.rule for p in state.pending] == ["enter-2-later"]
    state, later = on_tick(state, PROFILE, rules, now_ms=1_500)
    assert [t.id for t in later] == [trigger_id("c9", "enter-2-later")]


# --------------------------------------------------------------------------- state round trip


def _busy_state() -> TriggerState:
    rules = [
        Rule(name="now", on="enter", segment=3, cap=1),
        Rule(name="later", on="enter", segment=3, dwell_s=30),
        Rule(name="bye", on="leave", segment=3, dwell_s=20),
    ]
    state, _ = on_change(None, change("c1", None, 3), rules, now_ms=0)
    state, _ = on_change(state, change("c2", 3, 1), rules, now_ms=1_000)
    state, _ = on_change(state, change("c3", 1, 3), rules, now_ms=2_000)
    return state


def test_state_round_trips_through_dict_and_json():
    state = _busy_state()
    assert len(state.pending) == 3
    assert state.suppressed == 1
    d = state.to_dict()
    assert d["pending"][0] == {
        "rule": "later",
        "change_id": "c1",
        "old": None,
        "new": 3,
        "due_ms": 30_000,
        "since_ms": 0,
        "epoch": 1,
    }
    assert TriggerState.from_dict(d) == state
    assert TriggerState.from_dict(json.loads(json.dumps(d))) == state


def test_from_dict_copies_and_defaults():
    d = _busy_state().to_dict()
    restored = TriggerState.from_dict(d)
    d["seen"].append("zzz")
    d["fired"]["now"].append(123)
    assert "zzz" not in restored.seen
    assert 123 not in restored.fired["now"]
    assert TriggerState.from_dict({}) == TriggerState()


def test_next_due_is_earliest_pending():
    state = _busy_state()
    assert sorted(p.due_ms for p in state.pending) == [21_000, 30_000, 32_000]
    assert next_due(state) == 21_000
    assert next_due(TriggerState()) is None


# --------------------------------------------------------------------------- property: dedupe

PROP_RULES = [
    Rule(name="enter-0", on="enter", segment=0, cap=3, cap_window_s=5),
    Rule(name="leave-1", on="leave", segment=1, dwell_s=2, cap=2, cap_window_s=10),
    Rule(name="move-2-3", on="move", from_segment=2, to_segment=3),
    Rule(name="move-any-2", on="move", to_segment=2, dwell_s=1, cap=5, cap_window_s=3),
]


def _replay(deliveries: list[tuple[dict[str, object], int]]) -> set[str]:
    state: TriggerState | None = None
    ids: list[str] = []
    for ch, now in deliveries:
        if state is not None:
            state, fired = on_tick(state, PROFILE, PROP_RULES, now)
            ids += [t.id for t in fired]
        state, fired = on_change(state, ch, PROP_RULES, now)
        ids += [t.id for t in fired]
    if state is not None:
        state, fired = on_tick(state, PROFILE, PROP_RULES, 10**12)
        ids += [t.id for t in fired]
    assert len(ids) == len(set(ids))  # no id is ever fired twice
    return set(ids)


@st.composite
def histories(draw):
    segs = draw(st.lists(st.integers(0, 3), min_size=1, max_size=MAX_SEEN // 2))
    gaps = draw(st.lists(st.integers(1, 4_000), min_size=len(segs), max_size=len(segs)))
    changes, now, old = [], 0, None
    for i, (seg, gap) in enumerate(zip(segs, gaps, strict=True)):
        now += gap
        changes.append((change(f"c{i}", old, seg), now))
        old = seg
    # duplicates: after change i, re-deliver some earlier changes, at i's time
    picks = draw(st.lists(st.lists(st.integers(0, len(segs) - 1), max_size=3), min_size=len(segs)))
    with_dups = []
    for i, (ch, now) in enumerate(changes):
        with_dups.append((ch, now))
        with_dups += [(changes[j][0], now) for j in picks[i] if j <= i]
    return changes, with_dups


@settings(max_examples=150, deadline=None)
@given(histories())
def test_duplicates_never_change_what_fires(history):
    clean, with_dups = history
    assert _replay(with_dups) == _replay(clean)
