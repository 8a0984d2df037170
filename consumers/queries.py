"""Read-side queries over the live view: lookups and the segment table."""

from __future__ import annotations

from typing import Any

import redis

from segstream.consumers.redis_view import SegmentReader
from segstream.schemas.errors import RedisUnavailable
from segstream.schemas.settings import Settings

PREFIXES = ("u:", "a:", "e:")


def reader(settings: Settings) -> SegmentReader:
    url = settings.redis_url.get_secret_value()
    client = redis.Redis.from_url(url, socket_timeout=5)
    try:
        client.ping()
    except (redis.ConnectionError, redis.TimeoutError) as exc:
        raise RedisUnavailable(settings.masked()["redis_url"], str(exc)) from exc
    return SegmentReader(client, settings)


def candidates(user: str) -> list[str]:
    """Profile keys a user reference may mean: as given when typed, else user id then anon id."""
    if user.startswith(PREFIXES):
        return [user]
    return ["u:" + user, "a:" + user]


def lookup_users(settings: Settings, users: list[str]) -> tuple[list[dict[str, Any]], list[str]]:
    """One result per user (a segment or an error), and the users not found."""
    r = reader(settings)
    keys = [k for u in users for k in candidates(u)]
    found = r.lookup(keys)
    lines: list[dict[str, Any]] = []
    unknown: list[str] = []
    for user in users:
        hit = next((found[k] for k in candidates(user) if found.get(k)), None)
        if hit is None:
            unknown.append(user)
            lines.append(
                {
                    "user_id": user,
                    "error": "unknown user: no segment stored "
                    "(not seen yet, merged into another profile, or erased)",
                }
            )
            continue
        lines.append(
            {
                "user_id": user,
                "profile": hit.profile,
                "segment": hit.segment,
                "segment_name": hit.name,
                "scores": hit.scores,
                "features": hit.features,
                "model_version": hit.version,
                "updated_at_ms": hit.updated_ms,
                "seq": hit.seq,
            }
        )
    return lines, unknown


def segment_table(settings: Settings) -> list[dict[str, Any]]:
    r = reader(settings)
    profiles = r.segments()
    health = r.health(sorted(profiles))
    return [
        {**profiles[sid], "size": health[sid].users, "health": health[sid].as_dict()}
        for sid in sorted(profiles)
    ]
