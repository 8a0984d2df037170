"""Model checkpoints: the value of the compacted ``model`` topic.

A checkpoint carries the published :class:`Snapshot` (plain JSON, what workers
assign with) and the trainer's River learner (a pickle, so a restarted trainer
resumes learning instead of starting over). The pickle is signed with
HMAC-SHA256 under ``SEGSTREAM_MODEL_SECRET`` and never unpickled unless the
signature matches: unpickling untrusted bytes would run code.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import pickle
from typing import Any

import orjson

from segstream.models.segments import SegmentLearner, Snapshot


class CheckpointError(ValueError):
    """A checkpoint is malformed or its signature does not match the configured secret."""


def encode(snapshot: Snapshot, learner: SegmentLearner | None, key: bytes) -> bytes:
    blob = pickle.dumps(learner) if learner is not None else b""
    sig = hmac.new(key, blob, hashlib.sha256).hexdigest()
    return orjson.dumps(
        {
            "snapshot": snapshot.to_dict(),
            "learner": base64.b64encode(blob).decode(),
            "sig": sig,
        }
    )


def decode(raw: bytes, key: bytes, *, with_learner: bool = True) -> tuple[Snapshot, Any]:
    """Snapshot and (when asked and present) the learner; raises CheckpointError."""
    try:
        data = orjson.loads(raw)
        snapshot = Snapshot.from_dict(data["snapshot"])
        blob = base64.b64decode(data["learner"])
        sig = data["sig"]
    except (orjson.JSONDecodeError, KeyError, TypeError, ValueError) as exc:
        raise CheckpointError(f"malformed model checkpoint: {exc}") from exc
    if not isinstance(sig, str):
        raise CheckpointError("malformed model checkpoint: signature is not a string")
    if not with_learner:
        return snapshot, None
    expected = hmac.new(key, blob, hashlib.sha256).hexdigest()
    if not hmac.compare_digest(expected.encode(), sig.encode()):
        raise CheckpointError("model checkpoint signature does not match SEGSTREAM_MODEL_SECRET")
    if not blob:  # a snapshot-only checkpoint
        return snapshot, None
    return snapshot, pickle.loads(blob)  # noqa: S301 - signature verified above
