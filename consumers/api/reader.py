"""Reads of the live view for the API (asyncio), with the segment catalog cached."""

from __future__ import annotations

import time
from collections.abc import Mapping
from typing import Any

import orjson
import redis.asyncio as aioredis

from consumers.api_keys import Clock
from consumers.queries import candidates
from consumers.redis_view import (
    MAX_ALIAS_HOPS,
    Keys,
    UserSegment,
    decode_user,
    read_health,
)
from models.health import Health
from schemas.settings import Settings

CATALOG_TTL_S = 1.0


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
    """``SegmentReader`` for asyncio: the same keys, decoding and merge pointers; no features.

    ``lookup`` reads the user hash and the alias pointer of every profile in one pipeline
    (plus the catalog when its cache is stale); only a merged profile costs one more round
    trip per hop, at most ``MAX_ALIAS_HOPS`` reads in all, like ``SegmentReader.lookup``.
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

    async def _fetch(
        self, profiles: list[str], with_catalog: bool = False
    ) -> list[tuple[dict[bytes, bytes], bytes | None]]:
        """User hash and alias pointer of each profile, in one round trip."""
        pipe = self.client.pipeline(transaction=False)
        for p in profiles:
            pipe.hgetall(self.keys.user(p))
            pipe.get(self.keys.alias(p))
        if with_catalog:
            pipe.hgetall(self.keys.segments)
        raw = await pipe.execute()
        if with_catalog:
            self.catalog.load(raw[-1])
        return [(raw[2 * i], raw[2 * i + 1]) for i in range(len(profiles))]

    async def lookup(self, profiles: list[str]) -> dict[str, UserSegment | None]:
        """Segments of profiles; a merged profile is followed to the one it lives in now."""
        out: dict[str, UserSegment | None] = dict.fromkeys(profiles)
        pending = {p: p for p in dict.fromkeys(profiles)}  # asked key → key to read now
        seen: dict[str, set[str]] = {p: set() for p in pending}
        for hop in range(MAX_ALIAS_HOPS):
            if not pending:
                break
            keys = list(dict.fromkeys(pending.values()))
            fetched = await self._fetch(keys, with_catalog=hop == 0 and self.catalog.stale())
            found = dict(zip(keys, fetched, strict=True))
            follow: dict[str, str] = {}
            for asked, key in pending.items():
                h, alias = found[key]
                seen[asked].add(key)
                if h:
                    out[asked] = decode_user(key, h, None, self.catalog.names)
                elif alias and (target := alias.decode()) not in seen[asked]:
                    follow[asked] = target
            pending = follow
        return out

    async def segments(self) -> dict[int, dict[str, Any]]:
        if self.catalog.stale():
            self.catalog.load(await self.client.hgetall(self.keys.segments))
        return self.catalog.segments

    async def health(self, segment_ids: list[int]) -> dict[int, Health]:
        return await read_health(self.client, self.keys, segment_ids)

    async def scan_members(self, segment: int, cursor: int, count: int) -> tuple[int, list[str]]:
        nxt, batch = await self.client.sscan(self.keys.members(segment), cursor=cursor, count=count)
        return int(nxt), [m.decode() if isinstance(m, bytes) else m for m in batch]


def resolve(user: str, found: dict[str, UserSegment | None]) -> UserSegment | None:
    """The first candidate profile of ``user`` that holds a segment (as the CLI does)."""
    return next((hit for k in candidates(user) if (hit := found.get(k)) is not None), None)
