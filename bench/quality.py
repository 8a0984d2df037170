"""Clustering quality of a finished run, from its ``segments`` topic.

* ``ari_batch``: the live segments against scikit-learn's batch KMeans fitted on the
  same final feature vectors (each user's latest record, in the clustering space,
  standardised), with as many clusters as there are live segments;
* ``id_churn``: of the users a new model version re-assigned without a new event
  between the two records (same ``seq``), the share whose segment id changed, counted
  where both versions have the same segments (a segment born or retired moves its
  users for a reason); ``id_churn_all`` counts every version change. Each record of
  the ``segments`` and ``model`` topics is kept until compaction, which a run this
  short never sees (versions no longer in the model topic are left out).
"""

from __future__ import annotations

from typing import Any

import orjson

from segstream.consumers.exports import read
from segstream.models import checkpoint
from segstream.models.features import feature_space
from segstream.models.quality import adjusted_rand_index
from segstream.schemas.settings import Settings


def segment_records(settings: Settings) -> list[dict[str, Any] | str]:
    """Every record of the ``segments`` topic in order per partition (so per user); a
    tombstone (the profile merged into another, or erased) as the profile's key."""
    return [
        orjson.loads(v) if v else (k or b"").decode()
        for k, v in read(settings, settings.topic("segments"))
    ]


def latest(records: list[dict[str, Any] | str]) -> dict[str, dict[str, Any]]:
    """Each live profile's latest record."""
    out: dict[str, dict[str, Any]] = {}
    for r in records:
        if isinstance(r, str):
            out.pop(r, None)
        else:
            out[r["profile"]] = r
    return out


def model_segments(settings: Settings) -> dict[int, frozenset[int]]:
    """The segment ids of every model version still in the ``model`` topic."""
    secret = settings.model_secret.get_secret_value().encode()
    out = {}
    for _, value in read(settings, settings.topic("model")):
        if value:
            snap, _ = checkpoint.decode(value, secret, with_learner=False)
            out[snap.version] = frozenset(s.id for s in snap.segments)
    return out


def id_churn(
    records: list[dict[str, Any] | str], segments: dict[int, frozenset[int]]
) -> dict[str, float]:
    """Segment id changes between model versions for users without a new event."""
    last: dict[str, dict[str, Any]] = {}
    same = moved = same_all = moved_all = 0
    for r in records:
        if isinstance(r, str):
            last.pop(r, None)
            continue
        before = last.get(r["profile"])
        last[r["profile"]] = r
        if before is None or r["seq"] != before["seq"] or r["version"] == before["version"]:
            continue  # a first record, a new event, or the same model
        changed = r["segment"] != before["segment"]
        same_all += 1
        moved_all += changed
        old, new = segments.get(before["version"]), segments.get(r["version"])
        if old is not None and old == new:
            same += 1
            moved += changed
    return {
        "id_churn": moved / same if same else 0.0,
        "id_churn_checked": same,
        "id_churn_all": moved_all / same_all if same_all else 0.0,
        "id_churn_all_checked": same_all,
    }


def ari_batch(settings: Settings, records: list[dict[str, Any] | str]) -> dict[str, float | None]:
    """ARI of each user's latest live segment against batch KMeans on the same vectors."""
    try:
        from sklearn.cluster import KMeans
        from sklearn.preprocessing import StandardScaler
    except ImportError:  # scikit-learn comes with the dev extra only
        return {"ari_batch": None}
    live_now = [r for r in latest(records).values() if r["segment"] >= 0 and r.get("features")]
    space = feature_space(
        settings.features,
        settings.paid_channels,
        settings.social_channels,
        settings.email_channels,
    )
    names = sorted(live_now[0]["features"]) if live_now else []
    rows = []
    for r in live_now:
        x = space.transform(r["features"])
        rows.append([x[n] for n in names])
    live = [r["segment"] for r in live_now]
    k = len(set(live))
    if k < 2:
        return {"ari_batch": None}
    z = StandardScaler().fit_transform(rows)
    labels = KMeans(n_clusters=k, n_init=10, random_state=0).fit_predict(z)
    return {"ari_batch": adjusted_rand_index(live, [int(x) for x in labels])}
