"""models/profiles.py: events, merges and absorbs on one profile; segment assignment."""

from __future__ import annotations

import math

import pytest

from segstream.models.features import Profile, feature_space, new_profile
from segstream.models.identity import Out
from segstream.models.profiles import Change, handle
from segstream.models.profiles import assign as assign_segment
from segstream.models.segments import Segment, Snapshot
from segstream.schemas.events import Event

DAY = 86_400_000


def ev(eid: str, ts: int = DAY, **kw) -> dict:
    kw.setdefault("anonymous_id", "a1")
    return {"k": "event", "e": Event(eid, "web", "page_view", ts, **kw).to_dict()}


def purchase(eid: str, amount: float, ts: int = DAY) -> dict:
    return {
        "k": "event",
        "e": Event(eid, "web", "purchase", ts, anonymous_id="a1", amount=amount).to_dict(),
    }


def deliver(table: dict, key: str, record: dict) -> None:
    """Handle a record and everything it sends, like the events topic would."""
    queue = [(key, record)]
    while queue:
        k, r = queue.pop(0)
        step = handle(table.get(k), k, r)
        if step.state is not None:
            table[k] = step.state
        queue += [(o.key, o.value) for o in step.outs]


def run(records, key: str, state=None):
    for r in records:
        step = handle(state, key, r)
        if step.state is not None:
            state = step.state
    return state


# -------------------------------------------------------------------- events


def test_event_creates_the_profile():
    step = handle(None, "a:a1", ev("e1"))
    assert step.state is not None and step.state.key == "a:a1" and step.state.events == 1
    assert step.outs == [] and not step.gone


def test_duplicate_event_leaves_state_unchanged():
    p = run([ev("e1")], "a:a1")
    step = handle(p, "a:a1", ev("e1"))
    assert step.state is None and step.outs == []


def test_offsets_are_passed_through():
    p = handle(None, "a:a1", ev("e1"), offset_key="events/0", offset=10).state
    assert p.offsets == {"events/0": 10}
    step = handle(p, "a:a1", ev("e2"), offset_key="events/0", offset=10)
    assert step.state is None


def test_unknown_record_kind():
    with pytest.raises(ValueError, match="bogus"):
        handle(None, "a:a1", {"k": "bogus"})


# --------------------------------------------------------------------- merge


def test_merge_of_a_missing_profile_leaves_a_forwarding_marker():
    step = handle(None, "a:a1", {"k": "merge", "into": "u:c1"})
    assert step.outs == [Out("events", "u:c1", {"k": "linked", "from": "a:a1"})]
    assert step.state is not None
    assert step.state.merged_into == "u:c1"
    assert step.state.events == 0


def test_events_to_a_merged_profile_are_forwarded():
    marker = handle(None, "a:a1", {"k": "merge", "into": "u:c1"}).state
    record = ev("late-1")
    step = handle(marker, "a:a1", record)
    assert step.state is None
    assert step.outs == [Out("events", "u:c1", record)]


def test_merge_sends_the_whole_state_and_marks_the_profile():
    p = run([ev("e1", session_id="s"), purchase("e2", 20.0)], "a:a1")
    step = handle(p, "a:a1", {"k": "merge", "into": "u:c1"})
    assert step.gone
    assert step.state.merged_into == "u:c1"
    assert step.state.events == p.events  # state is kept for late events / repeats
    assert step.outs == [
        Out("events", "u:c1", {"k": "absorb", "from": "a:a1", "state": p.to_dict()})
    ]
    assert p.merged_into is None  # input untouched


def test_merge_redelivered_resends_absorb_without_changing_the_marker():
    p = run([ev("e1")], "a:a1")
    first = handle(p, "a:a1", {"k": "merge", "into": "u:c1"})
    again = handle(first.state, "a:a1", {"k": "merge", "into": "u:c1"})
    assert again.state is None and not again.gone
    assert [o.value["k"] for o in again.outs] == ["absorb"]
    assert again.outs[0].key == "u:c1"
    assert again.outs[0].value["state"]["events"] == 1


def test_second_merge_elsewhere_is_ignored():
    p = run([ev("e1")], "a:a1")
    marker = handle(p, "a:a1", {"k": "merge", "into": "u:c1"}).state
    step = handle(marker, "a:a1", {"k": "merge", "into": "u:c2"})
    assert step.state is None and step.outs == []


def test_absorbs_to_a_merged_profile_are_forwarded():
    marker = handle(None, "e:h", {"k": "merge", "into": "u:c1"}).state
    record = {"k": "absorb", "from": "a:a1", "state": new_profile("a:a1").to_dict()}
    assert handle(marker, "e:h", record).outs == [Out("events", "u:c1", record)]


# -------------------------------------------------------------------- absorb


def _absorb_record(key: str = "a:a1"):
    p = run([ev("e1", session_id="s"), purchase("e2", 20.0, ts=2 * DAY)], key)
    return p, handle(p, key, {"k": "merge", "into": "u:c1"}).outs[0].value


def test_absorb_is_applied_once():
    _, record = _absorb_record()
    survivor = run([ev("c1", 3 * DAY, user_id="c1")], "u:c1")
    merged = handle(survivor, "u:c1", record).state
    assert merged.events == 3 and merged.purchases == 1 and merged.revenue == 20.0
    assert merged.absorbed == ["a:a1"]
    assert merged.merged_into is None and merged.key == "u:c1"
    again = handle(merged, "u:c1", record)
    assert again.state is None and again.outs == []


def test_absorb_into_a_profile_not_seen_yet():
    other, record = _absorb_record()
    step = handle(None, "u:c1", record)
    assert step.state.key == "u:c1"
    assert step.state.events == other.events


def test_absorb_of_itself_is_ignored():
    p = run([ev("e1")], "u:c1")
    record = {"k": "absorb", "from": "u:c1", "state": p.to_dict()}
    assert handle(p, "u:c1", record).state is None


def test_absorb_does_not_carry_over_the_segment_or_marker():
    _, record = _absorb_record()
    record = {**record, "state": {**record["state"], "segment": 4, "merged_into": "u:c1"}}
    survivor = run([ev("c1", 3 * DAY, user_id="c1")], "u:c1")
    survivor = Profile.from_dict({**survivor.to_dict(), "segment": 2})
    merged = handle(survivor, "u:c1", record).state
    assert merged.merged_into is None
    assert merged.segment == 2
    assert merged.events == 3


def test_duplicate_events_after_absorb_are_still_skipped():
    _, record = _absorb_record()
    merged = handle(None, "u:c1", record).state
    assert handle(merged, "u:c1", ev("e1")).state is None


def test_merge_absorb_replay_is_idempotent_end_to_end():
    """Replaying every record of a simple a → u merge changes nothing."""
    records = [
        ("a:a1", ev("e1")),
        ("a:a1", ev("e2", 2 * DAY)),
        ("u:c1", ev("c1", 3 * DAY, user_id="c1")),
        ("a:a1", {"k": "merge", "into": "u:c1"}),
        ("a:a1", ev("late", 4 * DAY)),
    ]
    table: dict = {}
    for key, record in records:
        deliver(table, key, record)
    first = {k: p.to_dict() for k, p in table.items()}
    assert table["u:c1"].events == 4
    for key, record in records:
        deliver(table, key, record)
    assert {k: p.to_dict() for k, p in table.items()} == first


def test_redelivered_merge_in_a_chain_is_not_counted_twice():
    table: dict = {}
    deliver(table, "a:x", ev("e1", anonymous_id="x"))
    deliver(table, "e:h", ev("e2", 2 * DAY, email_hash="h" * 64))
    deliver(table, "u:c", ev("e3", 3 * DAY, user_id="c"))
    deliver(table, "a:x", {"k": "merge", "into": "e:h"})  # anonymous → email profile
    deliver(table, "e:h", {"k": "merge", "into": "u:c"})  # email profile → customer
    assert table["u:c"].events == 3
    deliver(table, "a:x", {"k": "merge", "into": "e:h"})  # replay after a crash
    assert table["u:c"].events == 3


# -------------------------------------------------------------------- assign


SPACE = feature_space(["purchases"])
# one feature, clustering space = log1p(purchases); identity scaling
SNAP = Snapshot(
    version=1,
    features=("purchases",),
    mean=(0.0,),
    std=(1.0,),
    segments=(Segment(0, (0.0,), 0.5), Segment(1, (2.0,), 0.5)),
    next_id=2,
    created_ms=0,
    n_seen=10,
)


def buyer(n: int, key: str = "u:c1"):
    return run([purchase(f"p{i}", 1.0, ts=DAY + i) for i in range(n)], key)


def test_first_assignment_is_a_change_from_none():
    p = buyer(3)  # log1p(3) = 1.386: nearer to 2.0 than to 0.0
    updated, change, scores = assign_segment(p, SNAP, SPACE.vector(p, p.last_seen_ms), 0.15)
    assert updated.segment == 1 and updated.segment_version == 1
    assert change == Change("u:c1", None, 1, 1, p.last_seen_ms, p.seq)
    assert updated.segment_since_ms == p.last_seen_ms
    assert set(scores) == {0, 1} and scores[1] > scores[0]
    assert sum(scores.values()) == pytest.approx(1.0, abs=2e-3)
    assert p.segment is None  # input untouched


def test_same_snapshot_again_changes_nothing():
    p = buyer(3)
    updated, _, _ = assign_segment(p, SNAP, SPACE.vector(p, p.last_seen_ms), 0.15)
    again, change, _ = assign_segment(updated, SNAP, SPACE.vector(updated, p.last_seen_ms), 0.15)
    assert again is updated and change is None


def test_new_version_same_segment_is_not_a_change():
    p = buyer(3)
    updated, _, _ = assign_segment(p, SNAP, SPACE.vector(p, p.last_seen_ms), 0.15)
    v2 = Snapshot(2, SNAP.features, SNAP.mean, SNAP.std, SNAP.segments, 2, 5, 20)
    again, change, _ = assign_segment(updated, v2, SPACE.vector(updated, p.last_seen_ms + 1), 0.15)
    assert change is None
    assert again.segment == 1 and again.segment_version == 2
    assert again.segment_since_ms == updated.segment_since_ms


def test_hysteresis_keeps_the_current_segment_near_a_boundary():
    p = buyer(3)
    d0, d1 = math.log1p(3), 2.0 - math.log1p(3)  # 1.386 vs 0.614
    in_zero = Profile.from_dict({**p.to_dict(), "segment": 0, "segment_version": 1})
    # 0.614 >= (1 - 0.6) * 1.386: not clearly closer, stay in 0
    assert d1 >= 0.4 * d0
    kept, change, _ = assign_segment(in_zero, SNAP, SPACE.vector(in_zero, p.last_seen_ms), 0.6)
    assert kept is in_zero and change is None
    # without hysteresis the user moves, and that is a change
    moved, change, _ = assign_segment(in_zero, SNAP, SPACE.vector(in_zero, p.last_seen_ms), 0.0)
    assert moved.segment == 1
    assert change == Change("u:c1", 0, 1, 1, p.last_seen_ms, p.seq)


def test_change_only_when_the_segment_changes():
    p = run([ev("v1")], "u:c2")
    a, change_a, _ = assign_segment(p, SNAP, SPACE.vector(p, p.last_seen_ms), 0.15)
    assert a.segment == 0 and change_a.old is None
    changes = []
    state = a
    for n in range(1, 8):  # buys more and more
        state = run([purchase(f"q{n}", 5.0, ts=2 * DAY + n)], "u:c2", state)
        state, change, _ = assign_segment(
            state, SNAP, SPACE.vector(state, state.last_seen_ms), 0.15
        )
        if change:
            changes.append(change)
    assert [(c.old, c.new) for c in changes] == [(0, 1)]
    assert state.segment == 1
