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

from typing import Any

from models.features import FeatureSpace
from models.segments import Segment, Snapshot

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


def name_for(segment: Segment, snapshot: Snapshot) -> str:
    ranked = sorted(
        zip(snapshot.features, segment.centroid, strict=True), key=lambda fz: -abs(fz[1])
    )
    words = [
        WORDS.get(f, (f"High {f}", f"Low {f}"))[0 if z > 0 else 1]
        for f, z in ranked
        if abs(z) >= THRESHOLD
    ][:2]
    return " · ".join(words) if words else "Typical customers"


def profiles(snapshot: Snapshot, space: FeatureSpace) -> dict[int, dict[str, Any]]:
    """Per segment: name, share, and the centroid in plain units (what a marketer reads)."""
    out: dict[int, dict[str, Any]] = {}
    for seg in snapshot.segments:
        readable = space.readable(snapshot.unscale(seg.centroid))
        out[seg.id] = {
            "id": seg.id,
            "name": name_for(seg, snapshot),
            "share": seg.share,
            "version": snapshot.version,
            "centroid": {k: round(v, 3) for k, v in readable.items()},
            "z": {f: round(z, 2) for f, z in zip(snapshot.features, seg.centroid, strict=True)},
        }
    return out
