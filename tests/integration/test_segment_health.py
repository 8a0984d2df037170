"""Per-segment health sums in the real Redis follow users exactly through every write.

Random writes (many stale, many moving users between segments, some changing only a
user's figures) and deletes go through the worker's own ``SegmentWriter``; a plain
Python model of the compare-and-set says which users hold which record in the end,
and the sums Redis keeps must equal the sums over those users, to the cent.
"""

from __future__ import annotations

import asyncio
import random
from collections.abc import Callable

import pytest
import redis.asyncio as aioredis

from segstream.consumers.queries import reader
from segstream.consumers.redis_view import SegmentWriter
from segstream.models.health import cents
from segstream.schemas.records import SegmentRecord
from segstream.schemas.settings import Settings

pytestmark = pytest.mark.integration

SEGMENTS = [0, 1, 2, 3]


def _record(rng: random.Random, profile: str) -> SegmentRecord:
    return SegmentRecord(
        profile=profile,
        segment=rng.choice(SEGMENTS),
        version=rng.randint(1, 3),
        seq=rng.randint(1, 12),
        updated_ms=1_700_000_000_000,
        scores={0: 1.0},
        revenue=round(rng.choice([0.0, rng.uniform(0, 900)]), 2),
        converted=rng.random() < 0.4,
        ad_cost=round(rng.choice([0.0, rng.uniform(0, 40)]), 2),
    )


def _newer(new: SegmentRecord, held: SegmentRecord | None) -> bool:
    return held is None or (new.seq, new.version) >= (held.seq, held.version)


async def _run(settings: Settings, seed: int) -> dict[str, SegmentRecord | None]:
    rng = random.Random(seed)
    held: dict[str, SegmentRecord | None] = {}
    client = aioredis.Redis.from_url(settings.redis_url.get_secret_value())
    writer = SegmentWriter(client, settings)
    try:
        for _ in range(60):
            batch: list[SegmentRecord] = []
            deletes: list[tuple[str, str | None]] = []
            for _ in range(rng.randint(1, 8)):  # one record per profile per batch, as the worker
                profile = f"u:{rng.randrange(25)}"
                if profile in {r.profile for r in batch} | {d for d, _ in deletes}:
                    continue
                if rng.random() < 0.08:
                    deletes.append((profile, None))
                else:
                    batch.append(_record(rng, profile))
            accepted = await writer.accepted(batch, deletes)
            # Redis says per record whether it took it: exactly the newer-or-equal ones
            assert accepted == [_newer(r, held.get(r.profile)) for r in batch]
            for r in batch:
                if _newer(r, held.get(r.profile)):
                    held[r.profile] = r
            for profile, _ in deletes:
                held[profile] = None
    finally:
        await client.aclose()
    return held


@pytest.mark.parametrize("seed", [1, 2, 3])
def test_health_sums_equal_the_sums_over_current_members(
    make_settings: Callable[..., Settings], seed: int
) -> None:
    s = make_settings()
    held = asyncio.run(_run(s, seed))
    health = reader(s).health(SEGMENTS)
    for sid in SEGMENTS:
        members = [r for r in held.values() if r is not None and r.segment == sid]
        h = health[sid]
        assert h.users == len(members)
        assert cents(h.revenue) == sum(cents(r.revenue) for r in members)
        assert h.converted == sum(r.converted for r in members)
        assert cents(h.ad_cost) == sum(cents(r.ad_cost) for r in members)
    assert sum(h.users for h in health.values()) == sum(r is not None for r in held.values())


@pytest.mark.parametrize("seed", range(4, 12))
def test_sums_kept_live_equal_sums_rebuilt_from_the_final_records(
    make_settings: Callable[..., Settings], seed: int
) -> None:
    """Field for field: the hashes a long history left equal the ones the final records
    alone write into an empty namespace (what ``rebuild-redis`` does)."""
    live, fresh = make_settings(), make_settings()
    held = asyncio.run(_run(live, seed))

    async def write_final() -> None:
        client = aioredis.Redis.from_url(fresh.redis_url.get_secret_value())
        try:
            await SegmentWriter(client, fresh).write([r for r in held.values() if r is not None])
        finally:
            await client.aclose()

    asyncio.run(write_final())
    for sid in SEGMENTS:
        a = _hash(live, reader(live).keys.health(sid))
        b = _hash(fresh, reader(fresh).keys.health(sid))
        assert a == b, sid


def _hash(settings: Settings, key: str) -> dict[bytes, bytes]:
    return reader(settings).client.hgetall(key)
