"""``segstream rebuild-redis``: the live view written again from the authoritative topics.

Redis is a view. After a flush, a lost instance or a restore from an old snapshot, this
writes back, from Kafka alone:

* every user's record (segment, scores, features, health figures) from the compacted
  ``segments`` topic, through the same compare-and-set script the worker uses, so a
  rebuild running beside a live worker never moves a user back in time, and the
  per-segment health sums come out exact;
* the merge pointers (``alias:``) from the worker's ``profiles`` changelog (a merged
  profile keeps its state there, with ``merged_into``);
* the segment catalog from the latest model checkpoint;
* the API keys (their digests and records) from the compacted ``api-keys`` topic;
  revoked keys are removed.

Not rebuilt: the report's history stream (it fills again as the model cycles), and
API keys created before the ``api-keys`` topic existed (they are kept, not restored).
"""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from dataclasses import dataclass

import orjson
import redis.asyncio as aioredis

from segstream.consumers.api_keys import admin_client, restore_keys
from segstream.consumers.exports import latest_segments, read
from segstream.consumers.redis_view import SegmentWriter
from segstream.models import checkpoint
from segstream.models.features import feature_space
from segstream.models.naming import profiles as segment_profiles
from segstream.models.segments import Snapshot
from segstream.schemas.records import SegmentRecord
from segstream.schemas.settings import Settings

BATCH = 500


@dataclass(frozen=True, slots=True)
class Rebuilt:
    records: int  # user records offered to Redis
    written: int  # of which Redis did not hold a newer one
    pointers: int
    model_version: int | None
    api_keys: int  # keys the hash holds after the rebuild


def merge_pointers(settings: Settings) -> dict[str, str]:
    """Merged profile -> the profile it lives in now, from the ``profiles`` changelog."""
    out: dict[str, str] = {}
    for key, value in read(settings, f"{settings.consumer_group}-profiles-changelog"):
        if key is None:
            continue
        state = orjson.loads(value) if value else {}
        target = state.get("merged_into")
        if target:
            out[key.decode()] = target
        else:
            out.pop(key.decode(), None)
    return out


def _chunks(records: list[SegmentRecord]) -> Iterator[list[SegmentRecord]]:
    for i in range(0, len(records), BATCH):
        yield records[i : i + BATCH]


async def _write(
    settings: Settings,
    records: list[SegmentRecord],
    pointers: dict[str, str],
    model: Snapshot | None,
) -> int:
    client = aioredis.from_url(settings.redis_url.get_secret_value())
    try:
        writer = SegmentWriter(client, settings)
        written = 0
        for chunk in _chunks(records):
            written += await writer.write(chunk)
        merged = list(pointers.items())  # the delete script leaves a pointer behind
        for i in range(0, len(merged), BATCH):
            await writer.write([], merged[i : i + BATCH])
        if model is not None:
            space = feature_space(
                settings.features,
                settings.paid_channels,
                settings.social_channels,
                settings.email_channels,
            )
            await writer.publish_model(
                model.version,
                model.created_ms,
                list(model.features),
                segment_profiles(model, space),
            )
        return written
    finally:
        await client.aclose()


def _latest_model(settings: Settings) -> Snapshot | None:
    last = None
    for _, value in read(settings, settings.topic("model")):
        last = value if value is not None else last
    if last is None:
        return None
    snap, _ = checkpoint.decode(
        last, settings.model_secret.get_secret_value().encode(), with_learner=False
    )
    return snap


def rebuild(settings: Settings) -> Rebuilt:
    records = list(latest_segments(settings).values())
    pointers = merge_pointers(settings)
    model = _latest_model(settings)
    written = asyncio.run(_write(settings, records, pointers, model))
    keys = restore_keys(admin_client(settings), settings)
    return Rebuilt(len(records), written, len(pointers), model.version if model else None, keys)
