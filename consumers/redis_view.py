"""The live segments in Redis: a rebuildable view of the compacted ``segments`` topic.

Key layout (``{ns}`` is ``SEGSTREAM_NAMESPACE``; everything starts ``seg:`` so the
read-only API user can be limited to ``seg:*``):

=================================  ======  =============================================
key                                type    content
=================================  ======  =============================================
``seg:{ns}:user:{profile}``        hash    ``s`` segment id, ``v`` model version,
                                           ``t`` updated_at (event time, ms), ``q`` seq,
                                           ``c`` scores ``"id:score,..."``, ``r``
                                           revenue (cents), ``k`` converted (0/1),
                                           ``a`` ad cost (cents)
``seg:{ns}:features:{profile}``    string  JSON of the profile's features (plain units)
``seg:{ns}:members:{segment}``     set     profile keys in the segment
``seg:{ns}:health:{segment}``      hash    sums over the members of ``r``, ``k``, ``a``
``seg:{ns}:alias:{profile}``       string  the profile a merged profile now lives in
``seg:{ns}:segments``              hash    segment id → JSON profile (name, centroid, share)
``seg:{ns}:model``                 string  JSON: version, created_ms, features
``seg:{ns}:history``               stream  one entry per model cycle: field ``j``, JSON of
                                           sizes, health, drift, quality (the report's
                                           history; capped at ``HISTORY_MAX`` entries)
=================================  ======  =============================================

Writes go through a Lua script that compares ``(seq, version)`` inside Redis, so
a replayed or late write never moves a user back in time. The same script moves the
user's revenue, conversion and ad cost between the segments' health sums, so those stay
exact (``models.health``).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from importlib import resources
from typing import Any

import orjson
import redis
import redis.asyncio as aioredis

from segstream.models.health import Health, cents
from segstream.schemas.records import SegmentRecord
from segstream.schemas.settings import Settings

HISTORY_MAX = 10_000  # model cycles kept in seg:{ns}:history (about a day at 10 s)


def _script(name: str) -> str:
    return resources.files("segstream.consumers").joinpath(name).read_text()


def format_scores(scores: dict[int, float]) -> str:
    return ",".join(f"{k}:{v:g}" for k, v in sorted(scores.items()))


def parse_scores(text: str) -> dict[int, float]:
    out: dict[int, float] = {}
    for part in filter(None, text.split(",")):
        k, _, v = part.partition(":")
        out[int(k)] = float(v)
    return out


class Keys:
    """Key names for one namespace."""

    def __init__(self, settings: Settings) -> None:
        self.user_prefix = settings.redis_key("user", "")
        self.features_prefix = settings.redis_key("features", "")
        self.members_prefix = settings.redis_key("members", "")
        self.alias_prefix = settings.redis_key("alias", "")
        self.health_prefix = settings.redis_key("health", "")
        self.segments = settings.redis_key("segments")
        self.model = settings.redis_key("model")
        self.history = settings.redis_key("history")

    def user(self, profile: str) -> str:
        return self.user_prefix + profile

    def features(self, profile: str) -> str:
        return self.features_prefix + profile

    def members(self, segment: int | str) -> str:
        return f"{self.members_prefix}{segment}"

    def alias(self, profile: str) -> str:
        return self.alias_prefix + profile

    def health(self, segment: int | str) -> str:
        return f"{self.health_prefix}{segment}"


class SegmentWriter:
    """Pipelined, compare-in-Redis writes of segment records (worker side, asyncio)."""

    def __init__(self, client: aioredis.Redis, settings: Settings) -> None:
        self.client = client
        self.keys = Keys(settings)
        self.store_features = settings.redis_store_features
        self._write = client.register_script(_script("write_segments.lua"))
        self._delete = client.register_script(_script("delete_segment.lua"))

    async def write(
        self, records: list[SegmentRecord], deletes: Sequence[tuple[str, str | None]] = ()
    ) -> int:
        """Write a batch in one round trip; returns how many records were not older than
        what Redis held (``accepted`` tells which)."""
        return sum(await self.accepted(records, deletes))

    async def accepted(
        self, records: list[SegmentRecord], deletes: Sequence[tuple[str, str | None]] = ()
    ) -> list[bool]:
        """Write a batch in one round trip; per record, whether Redis took it (False: it
        held a newer one).

        ``deletes`` are ``(profile, merged_into)``: the profile leaves the view and, when it
        was merged, a pointer to the surviving profile keeps lookups by the old key working.
        """
        if not records and not deletes:
            return []
        pipe = self.client.pipeline(transaction=False)
        k = self.keys
        if records:  # one script call for the batch (Redis Cluster is not supported)
            keys: list[str] = []
            args: list[str | bytes] = [k.members_prefix, k.health_prefix]
            for r in records:
                keys += [k.user(r.profile), k.features(r.profile)]
                feats = ""
                if self.store_features and r.features:
                    feats = orjson.dumps(r.features).decode()
                user = [
                    str(r.seq),
                    str(r.version),
                    str(r.segment),
                    str(r.updated_ms),
                    format_scores(r.scores),
                    r.profile,
                    feats,
                    str(cents(r.revenue)),
                    str(int(r.converted)),
                    str(cents(r.ad_cost)),
                ]
                args.append(orjson.dumps(user))  # one argument a user (see the script)
            await self._write(keys=keys, args=args, client=pipe)
        for profile, merged_into in deletes:
            await self._delete(
                keys=[k.user(profile), k.features(profile), k.alias(profile)],
                args=[k.members_prefix, profile, merged_into or "", k.health_prefix],
                client=pipe,
            )
        results = await pipe.execute()
        written = results[0] if records else []
        return [x == 1 for x in written]

    async def health(self, segment_ids: list[int]) -> dict[int, Health]:
        return await read_health(self.client, self.keys, segment_ids)

    async def append_history(self, entry: dict[str, Any]) -> None:
        """One model cycle's figures, for ``segstream report`` (oldest dropped past the cap)."""
        await self.client.xadd(
            self.keys.history,
            {"j": orjson.dumps(entry, option=orjson.OPT_NON_STR_KEYS)},
            maxlen=HISTORY_MAX,
            approximate=True,
        )

    async def publish_model(
        self,
        version: int,
        created_ms: int,
        features: list[str],
        segments: dict[int, dict[str, Any]],
    ) -> None:
        pipe = self.client.pipeline(transaction=True)
        pipe.set(
            self.keys.model,
            orjson.dumps({"version": version, "created_ms": created_ms, "features": features}),
        )
        pipe.delete(self.keys.segments)
        if segments:
            pipe.hset(
                self.keys.segments,
                mapping={str(sid): orjson.dumps(profile) for sid, profile in segments.items()},
            )
        await pipe.execute()


@dataclass(frozen=True, slots=True)
class UserSegment:
    profile: str
    segment: int
    name: str | None
    scores: dict[int, float]
    version: int
    updated_ms: int
    seq: int
    features: dict[str, float] | None


def queue_health(pipe: Any, keys: Keys, segment_ids: list[int]) -> None:
    """Queue, per segment, its size and its health sums (read back by ``decode_health``)."""
    for sid in segment_ids:
        pipe.scard(keys.members(sid))
        pipe.hmget(keys.health(sid), "r", "k", "a")


def decode_health(segment_ids: list[int], raw: list[Any]) -> dict[int, Health]:
    out = {}
    for n, sid in enumerate(segment_ids):
        users, (r, k, a) = raw[2 * n], raw[2 * n + 1]
        out[sid] = Health.from_cents(users, int(r or 0), int(k or 0), int(a or 0))
    return out


async def read_health(
    client: aioredis.Redis, keys: Keys, segment_ids: list[int]
) -> dict[int, Health]:
    """Size and health sums of each segment, in one round trip (asyncio)."""
    pipe = client.pipeline(transaction=False)
    queue_health(pipe, keys, segment_ids)
    return decode_health(segment_ids, await pipe.execute())


MAX_ALIAS_HOPS = 4  # a:anon -> e:email -> u:customer is two


def decode_user(
    profile: str, h: dict[bytes, bytes], feats: bytes | None, names: dict[int, Any]
) -> UserSegment:
    """A user hash (and features JSON) as read from Redis."""
    seg = int(h[b"s"])
    return UserSegment(
        profile=profile,
        segment=seg,
        name=names.get(seg),
        scores=parse_scores(h[b"c"].decode()),
        version=int(h[b"v"]),
        updated_ms=int(h[b"t"]),
        seq=int(h[b"q"]),
        features=orjson.loads(feats) if feats else None,
    )


class SegmentReader:
    """Reads the live view (CLI and API side, synchronous)."""

    def __init__(self, client: redis.Redis, settings: Settings) -> None:
        self.client = client
        self.keys = Keys(settings)

    def segments(self) -> dict[int, dict[str, Any]]:
        raw = self.client.hgetall(self.keys.segments)
        return {int(k): orjson.loads(v) for k, v in raw.items()}

    def health(self, segment_ids: list[int]) -> dict[int, Health]:
        pipe = self.client.pipeline(transaction=False)
        queue_health(pipe, self.keys, segment_ids)
        return decode_health(segment_ids, pipe.execute())

    def history(self, count: int = HISTORY_MAX) -> list[dict[str, Any]]:
        """The latest ``count`` model cycles, oldest first."""
        entries = self.client.xrevrange(self.keys.history, count=count) or []
        return [orjson.loads(fields[b"j"]) for _, fields in reversed(entries) if fields]

    def model(self) -> dict[str, Any] | None:
        raw = self.client.get(self.keys.model)
        return orjson.loads(raw) if raw else None

    def lookup(self, profiles: list[str]) -> dict[str, UserSegment | None]:
        """Segments of profiles; a merged profile is followed to the one it lives in now.

        One round trip per hop: the record, its features and its alias pointer together.
        """
        names = {sid: prof.get("name") for sid, prof in self.segments().items()}
        out: dict[str, UserSegment | None] = dict.fromkeys(profiles)
        pending = {p: p for p in profiles}  # asked key -> key to read now
        for _ in range(MAX_ALIAS_HOPS):
            if not pending:
                break
            pipe = self.client.pipeline(transaction=False)
            for key in pending.values():
                pipe.hgetall(self.keys.user(key))
                pipe.get(self.keys.features(key))
                pipe.get(self.keys.alias(key))
            raw = pipe.execute()
            follow: dict[str, str] = {}
            for n, (asked, key) in enumerate(pending.items()):
                h, feats, alias = raw[3 * n : 3 * n + 3]
                if h:
                    out[asked] = decode_user(key, h, feats, names)
                elif alias:
                    follow[asked] = alias.decode()
            pending = follow
        return out
