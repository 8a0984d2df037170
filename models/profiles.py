"""The profile stage: events, merges and absorbs applied to one profile, then its segment.

Records on the ``events`` topic are keyed by profile key and come in three kinds:

* ``event``: fold the event into the profile (skipped when already applied);
* ``merge`` (sent by identity stitching, keyed by the profile that goes away):
  mark the profile as merged and send its whole state to the surviving one;
* ``absorb`` (keyed by the survivor): add the other profile's state, once;
* ``linked`` (keyed by the survivor): an alias with no state of its own was merged into
  it; only its key is kept (in ``absorbed``);
* ``erase`` (see ``models.erasure``): delete the profile, and send the command on to the
  profiles linked to it.

A profile that was merged keeps its state and ``merged_into``, so late events
and repeated merges are forwarded rather than lost. Every step is idempotent:
replaying any record after a crash changes nothing.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from segstream.models import erasure
from segstream.models.features import (
    DEDUPE_WINDOW,
    Profile,
    apply,
    evolve,
    merge,
    new_profile,
)
from segstream.models.identity import Out
from segstream.models.segments import Snapshot
from segstream.schemas.events import Event


@dataclass(frozen=True, slots=True)
class Step:
    """What handling one record did: the new state (None: unchanged) and records to send."""

    state: Profile | None
    outs: list[Out]
    gone: bool = False  # merged away: leave the live view, point lookups to the survivor
    erased: bool = False  # delete the state, the live view and the compacted records


def handle(
    state: Profile | None,
    key: str,
    record: dict[str, Any],
    *,
    offset_key: str | None = None,
    offset: int | None = None,
    window: int = DEDUPE_WINDOW,
) -> Step:
    kind = record["k"]
    if kind == "erase":
        if state is None:
            return Step(None, [], erased=True)  # nothing left to follow: the cascade ends
        return Step(
            None, erasure.at_profile(state.merged_into, state.absorbed, key, record), erased=True
        )
    if state is not None and state.merged_into and kind != "merge":
        return Step(None, [Out("events", state.merged_into, record)])
    if kind == "event":
        current = state or new_profile(key)
        updated = apply(
            current,
            Event.from_dict(record["e"]),
            offset_key=offset_key,
            offset=offset,
            window=window,
        )
        return Step(None if updated is current and state is not None else updated, [])
    if kind == "merge":
        into = record["into"]
        if state is None:  # nothing yet: leave a forwarding marker for events in flight,
            # and tell the survivor, so that an erasure of the person finds this alias too
            linked = Out("events", into, {"k": "linked", "from": key})
            return Step(evolve(new_profile(key), merged_into=into), [linked], gone=True)
        if state.merged_into not in (None, into):
            return Step(None, [])  # merged elsewhere first; first link wins
        absorb = Out("events", into, {"k": "absorb", "from": key, "state": state.to_dict()})
        marker = None if state.merged_into == into else evolve(state, merged_into=into)
        return Step(marker, [absorb], gone=marker is not None)
    if kind == "absorb":
        other = Profile.from_dict(record["state"])
        current = state or new_profile(key)
        if other.key in current.absorbed or other.key == key:
            return Step(None, [])
        other = evolve(other, merged_into=None, segment=None)
        return Step(merge(current, other, window=window), [])
    if kind == "linked":
        current = state or new_profile(key)
        if record["from"] in current.absorbed or record["from"] == key:
            return Step(None, [])
        absorbed = [*current.absorbed, record["from"]]
        return Step(evolve(current, absorbed=absorbed), [])
    raise ValueError(f"unknown record kind {kind!r}")


@dataclass(frozen=True, slots=True)
class Change:
    """A user's segment changed (``old`` is None when the user is first assigned)."""

    profile: str
    old: int | None
    new: int
    version: int
    at_ms: int
    seq: int


def assign(
    state: Profile,
    snapshot: Snapshot,
    x: Mapping[str, float],
    hysteresis: float,
) -> tuple[Profile, Change | None, dict[int, float]]:
    """Assign ``state``, whose clustering vector is ``x``, to a segment of ``snapshot``.

    Returns the new state, the change (None when the segment stayed) and the scores.
    """
    result = snapshot.assign(x, current=state.segment, hysteresis=hysteresis)
    if result.segment == state.segment and state.segment_version == snapshot.version:
        return state, None, result.scores
    change = None
    if result.segment != state.segment:
        change = Change(
            state.key,
            state.segment,
            result.segment,
            snapshot.version,
            state.last_seen_ms,
            state.seq,
        )
    updated = evolve(
        state,
        segment=result.segment,
        segment_version=snapshot.version,
        segment_since_ms=state.last_seen_ms if change else state.segment_since_ms,
    )
    return updated, change, result.scores
