"""Reads of the live view for the API (asyncio), with the segment catalog cached."""

from __future__ import annotations

import hashlib
import time
from collections.abc import Mapping
from importlib import resources
from typing import Any

import orjson
import redis.asyncio as aioredis
from redis.exceptions import NoScriptError

from segstream.consumers.api_keys import Clock
from segstream.consumers.queries import candidates
from segstream.consumers.redis_view import (
    MAX_ALIAS_HOPS,
    Keys,
    UserSegment,
    parse_scores,
    read_health,
)
from segstream.models.health import Health
from segstream.schemas.settings import Settings

CATALOG_TTL_S = 1.0
LOOKUP_SCRIPT = resources.files("segstream.consumers").joinpath("lookup_segment.lua").read_text()


class Catalog:
    """The segment catalog hash, parsed and kept for ``ttl`` seconds."""

    def __init__(self, ttl: float = CATALOG_TTL_S, clock: Clock = time.monotonic) -> None:
        self.ttl = ttl
        self.clock = clock
        self.segments: dict[int, dict[str, Any]] = {}
        self.names: dict[int, Any] = {}
        self.loaded_at: float | None = None

    def stale(self) -> bool:
        return self.loaded_at is None or self.clock() - self.loaded_at >= self.ttl

    def load(self, raw: Mapping[bytes | str, bytes | str]) -> None:
        self.segments = {int(k): orjson.loads(v) for k, v in raw.items()}
        self.names = {sid: prof.get("name") for sid, prof in self.segments.items()}
        self.loaded_at = self.clock()


class AsyncSegmentReader:
    """``SegmentReader`` for asyncio: the same keys, merge pointers and answers; no features.

    ``lookup`` resolves users with one read-only Lua call (``lookup_segment.lua``): each
    user's candidate profiles in order, each followed through its merge pointers, at most
    ``MAX_ALIAS_HOPS`` reads, like ``SegmentReader.lookup`` does in round trips. The
    catalog (segment names) is cached for ``catalog_ttl`` seconds.
    """

    def __init__(
        self,
        client: aioredis.Redis,
        settings: Settings,
        catalog_ttl: float = CATALOG_TTL_S,
        clock: Clock = time.monotonic,
    ) -> None:
        self.client = client
        self.keys = Keys(settings)
        self.catalog = Catalog(catalog_ttl, clock)
        self._script = LOOKUP_SCRIPT.encode()
        self._sha = hashlib.sha1(self._script, usedforsecurity=False).hexdigest()
        self._head = (self.keys.user_prefix, self.keys.alias_prefix, MAX_ALIAS_HOPS)

    async def _call(self, args: list[str | int]) -> list[list[bytes]]:
        try:
            return await self.client.evalsha_ro(self._sha, 0, *args)  # type: ignore[no-any-return]
        except NoScriptError:  # a restarted or flushed Redis: EVAL_RO caches the script again
            return await self.client.eval_ro(self._script, 0, *args)  # type: ignore[no-any-return,arg-type]

    async def lookup(self, users: list[str]) -> dict[str, UserSegment | None]:
        """Each user's live segment (``None``: none stored), in one round trip."""
        if self.catalog.stale():
            await self.segments()
        args: list[str | int] = [*self._head]
        for user in users:
            tried = candidates(user)
            args.append(len(tried))
            args.extend(tried)
        rows = await self._call(args)
        names = self.catalog.names
        return {user: decode_row(row, names) for user, row in zip(users, rows, strict=True)}

    async def segments(self) -> dict[int, dict[str, Any]]:
        if self.catalog.stale():
            self.catalog.load(await self.client.hgetall(self.keys.segments))
        return self.catalog.segments

    async def health(self, segment_ids: list[int]) -> dict[int, Health]:
        return await read_health(self.client, self.keys, segment_ids)

    async def scan_members(self, segment: int, cursor: int, count: int) -> tuple[int, list[str]]:
        nxt, batch = await self.client.sscan(self.keys.members(segment), cursor=cursor, count=count)
        return int(nxt), [m.decode() if isinstance(m, bytes) else m for m in batch]


def decode_row(row: list[bytes], names: dict[int, Any]) -> UserSegment | None:
    """One entry of the lookup script's answer: ``[profile, s, c, v, t, q]``, or empty."""
    if not row:
        return None
    profile, seg, scores, version, updated, seq = row
    sid = int(seg)
    return UserSegment(
        profile=profile.decode(),
        segment=sid,
        name=names.get(sid),
        scores=parse_scores(scores.decode()),
        version=int(version),
        updated_ms=int(updated),
        seq=int(seq),
        features=None,
    )
