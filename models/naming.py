"""Readable segment names and profiles, built from a snapshot by rules (no external service).

A segment's centroid is in z-score units (the snapshot's scaler), so each
coordinate says how far the segment sits from the population on that feature.
The two strongest deviations name it.

>>> from models.segments import Segment, Snapshot
>>> snap = Snapshot(1, ("monetary_180d", "recency_days"), (0.0, 0.0), (1.0, 1.0),
...                 (Segment(0, (2.0, -1.2), 0.4),), 1, 0, 10)
>>> name_for(snap.segments[0], snap)
'High spenders · Recently active'
"""

from __future__ import annotations

import math
from typing import Any

from segstream.models.features import FeatureSpace
from segstream.models.segments import Segment, Snapshot

THRESHOLD = 0.5  # |z| below this is "like everyone else"

WORDS: dict[str, tuple[str, str]] = {  # feature -> (when high, when low)
    "recency_days": ("Lapsed", "Recently active"),
    "tenure_days": ("Long-standing", "New"),
    "frequency_30d": ("Frequent visitors", "Rare visitors"),
    "monetary_180d": ("High spenders", "Low spend"),
    "sessions_30d": ("Engaged browsers", "Few sessions"),
    "pages_per_session": ("Deep browsers", "Quick visits"),
    "cart_rate": ("Cart builders", "No carts"),
    "purchases": ("Repeat buyers", "Non-buyers"),
    "ad_clicks_30d": ("Ad clickers", "Ad-blind"),
    "ad_cost_180d": ("Costly to acquire", "Cheap to reach"),
    "crm_amount_180d": ("Big-ticket accounts", "No CRM revenue"),
    "share_paid": ("Paid-media driven", "Organic"),
    "share_social": ("Social-led", "Not on social"),
    "share_email": ("Email responsive", "Not via email"),
}


def _ranked(segment: Segment, snapshot: Snapshot) -> list[tuple[str, float]]:
    """Features by how much they characterise the segment: its distance from the
    population plus its distance from the nearest other segment (what tells them apart)."""
    others = [s for s in snapshot.segments if s.id != segment.id]
    nearest = min(others, key=lambda o: math.dist(o.centroid, segment.centroid), default=None)
    scored = []
    for n, (f, z) in enumerate(zip(snapshot.features, segment.centroid, strict=True)):
        apart = abs(z - nearest.centroid[n]) if nearest else 0.0
        if abs(z) >= THRESHOLD:
            scored.append((f, z, abs(z) + apart))
    return [(f, z) for f, z, _ in sorted(scored, key=lambda t: -t[2])]


def _word(feature: str, z: float) -> str:
    return WORDS.get(feature, (f"High {feature}", f"Low {feature}"))[0 if z > 0 else 1]


def name_for(segment: Segment, snapshot: Snapshot, taken: set[str] | None = None) -> str:
    """Two words for the two most characteristic traits; a name in ``taken`` is avoided."""
    words = [_word(f, z) for f, z in _ranked(segment, snapshot)]
    if not words:
        return "Typical customers"
    candidates = [" · ".join(words[:2])]
    candidates += [f"{words[0]} · {w}" for w in words[2:]] + [words[0]]
    for name in candidates:
        if name not in (taken or set()):
            return name
    return f"{candidates[0]} ({segment.id})"


def describe(segment: Segment, snapshot: Snapshot, space: FeatureSpace) -> str:
    """Two sentences a marketer can read: how big, and what sets the segment apart."""
    traits = _ranked(segment, snapshot)
    mine = space.readable(snapshot.unscale(segment.centroid))
    mean = space.readable(dict(zip(snapshot.features, snapshot.mean, strict=True)))
    first = f"About {segment.share:.0%} of users"
    if not traits:
        return f"{first}. They behave much like the average user on every feature."
    parts = [
        f"{_word(f, z).lower()} ({_label(f)} {mine[f]:.3g} against {mean[f]:.3g} on average)"
        for f, z in traits[:2]
    ]
    more = " and ".join(parts)
    return f"{first}. They stand out as {more}."


def _label(feature: str) -> str:
    return feature.replace("_", " ")


def profiles(snapshot: Snapshot, space: FeatureSpace) -> dict[int, dict[str, Any]]:
    """Per segment: name, share, and the centroid in plain units (what a marketer reads)."""
    out: dict[int, dict[str, Any]] = {}
    taken: set[str] = set()
    for seg in sorted(snapshot.segments, key=lambda s: (-s.share, s.id)):
        readable = space.readable(snapshot.unscale(seg.centroid))
        name = name_for(seg, snapshot, taken)
        taken.add(name)
        out[seg.id] = {
            "id": seg.id,
            "name": name,
            "description": describe(seg, snapshot, space),
            "share": seg.share,
            "version": snapshot.version,
            "centroid": {k: round(v, 3) for k, v in readable.items()},
            "z": {f: round(z, 2) for f, z in zip(snapshot.features, seg.centroid, strict=True)},
        }
    return out
