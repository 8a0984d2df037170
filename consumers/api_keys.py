"""API keys of the HTTP API: creation, hashing, scopes, the key cache and rate limits.

A key is ``sk_`` followed by 43 URL-safe characters (``secrets.token_urlsafe(32)``,
256 random bits). It is shown once, when created; Redis keeps only its SHA-256 in
the hash ``seg:{ns}:apikeys`` (field: hex digest, value: JSON ``{name, scopes,
rate_per_s, created_ms}``), so a read of Redis never yields a usable key.

The API process loads that hash whole and keeps it for ``SEGSTREAM_API_KEY_CACHE_S``
seconds: a revoked key stops working within that time, a new key starts working
within it, and an unknown key costs no Redis round trip. Rate limits are token
buckets in the API process: with N API processes a key can make N times its rate.

Management (``segstream keys``) uses the admin ``SEGSTREAM_REDIS_URL``; the API
only reads, so its own Redis user (``SEGSTREAM_API_REDIS_URL``) can be read-only.

Redis is a view here too: every created key's record (under its digest) and every
revocation (a tombstone) also goes to the compacted ``api-keys`` topic, from which
``segstream rebuild-redis`` restores the hash.
"""

from __future__ import annotations

import asyncio
import hashlib
import math
import re
import secrets
import time
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from typing import Any

import orjson
import redis
import redis.asyncio as aioredis

from segstream.schemas.errors import RedisUnavailable, SegstreamError
from segstream.schemas.settings import Settings

SCOPES = ("segments:read", "members:read")
KEY_PREFIX = "sk_"
NAME_PATTERN = r"^[A-Za-z0-9_.\-]{1,64}$"

Clock = Callable[[], float]


class ApiKeyError(SegstreamError):
    """A key cannot be created or revoked as asked (bad scope, duplicate or unknown name)."""


def apikeys_key(settings: Settings) -> str:
    """The Redis hash of API keys (under ``seg:`` like every segstream key)."""
    return settings.redis_key("apikeys")


def generate_key() -> str:
    """A new random API key: ``sk_`` + 256 bits, URL-safe."""
    return KEY_PREFIX + secrets.token_urlsafe(32)


def hash_key(key: str) -> str:
    """What is stored and compared: the SHA-256 of the key, as hex."""
    return hashlib.sha256(key.encode()).hexdigest()


@dataclass(frozen=True, slots=True)
class ApiKey:
    """What the API knows about a key (never the key itself)."""

    name: str
    scopes: frozenset[str]
    rate_per_s: float
    created_ms: int

    def allows(self, scope: str) -> bool:
        return scope in self.scopes

    def to_json(self) -> bytes:
        return orjson.dumps(
            {
                "name": self.name,
                "scopes": sorted(self.scopes),
                "rate_per_s": self.rate_per_s,
                "created_ms": self.created_ms,
            }
        )

    @classmethod
    def from_json(cls, raw: bytes | str) -> ApiKey:
        data = orjson.loads(raw)
        return cls(
            name=str(data["name"]),
            scopes=frozenset(str(s) for s in data["scopes"]),
            rate_per_s=float(data["rate_per_s"]),
            created_ms=int(data["created_ms"]),
        )


def validate_scopes(scopes: Iterable[str]) -> frozenset[str]:
    out = frozenset(scopes)
    if not out:
        raise ApiKeyError(f"a key needs at least one scope ({', '.join(SCOPES)})")
    unknown = sorted(out.difference(SCOPES))
    if unknown:
        raise ApiKeyError(f"unknown scope {', '.join(unknown)}: use {', '.join(SCOPES)}")
    return out


def parse_keys(raw: Mapping[bytes | str, bytes | str]) -> dict[str, ApiKey]:
    """The stored hash as ``{sha256 hex: ApiKey}``; unreadable entries are left out."""
    out: dict[str, ApiKey] = {}
    for field, value in raw.items():
        try:
            out[field.decode() if isinstance(field, bytes) else field] = ApiKey.from_json(value)
        except (ValueError, KeyError, TypeError):
            continue
    return out


# ----------------------------------------------------------- management (CLI)
def admin_client(settings: Settings) -> redis.Redis:
    """A synchronous client on the admin ``SEGSTREAM_REDIS_URL``, checked with PING."""
    client = redis.Redis.from_url(settings.redis_url.get_secret_value(), socket_timeout=5)
    try:
        client.ping()
    except (redis.ConnectionError, redis.TimeoutError) as exc:
        raise RedisUnavailable(settings.masked()["redis_url"], str(exc)) from exc
    return client


def create_key(
    client: redis.Redis,
    settings: Settings,
    scopes: Iterable[str],
    rate_per_s: float,
    name: str | None = None,
    now_ms: int | None = None,
) -> tuple[str, ApiKey]:
    """Store a new key; returns ``(the key, its record)``. Names are unique."""
    valid = validate_scopes(scopes)
    if not (rate_per_s > 0 and math.isfinite(rate_per_s)):
        raise ApiKeyError(f"the rate must be a positive number of requests/s: {rate_per_s}")
    key = generate_key()
    digest = hash_key(key)
    name = name or f"key-{digest[:8]}"
    if not re.match(NAME_PATTERN, name):
        raise ApiKeyError(f"invalid name {name!r}: 1-64 letters, digits, '_', '-', '.'")
    record = ApiKey(
        name=name,
        scopes=valid,
        rate_per_s=float(rate_per_s),
        created_ms=now_ms if now_ms is not None else int(time.time() * 1000),
    )
    hkey = apikeys_key(settings)

    def add(pipe: Any) -> None:  # redis.client.Pipeline, in WATCH mode
        taken = {k.name for k in parse_keys(pipe.hgetall(hkey)).values()}
        if name in taken:
            raise ApiKeyError(f"a key named {name!r} exists already (revoke it first)")
        pipe.multi()
        pipe.hset(hkey, digest, record.to_json())

    client.transaction(add, hkey)
    return key, record


def list_keys(client: redis.Redis, settings: Settings) -> list[ApiKey]:
    return sorted(
        parse_keys(client.hgetall(apikeys_key(settings))).values(),
        key=lambda k: (k.created_ms, k.name),
    )


def keys_named(client: redis.Redis, settings: Settings, name: str) -> list[str]:
    """The digests of the keys named ``name``."""
    return [
        d for d, k in parse_keys(client.hgetall(apikeys_key(settings))).items() if k.name == name
    ]


def revoke_key(client: redis.Redis, settings: Settings, name: str) -> list[str]:
    """Delete the keys named ``name``; returns their digests (none: no such key)."""
    digests = keys_named(client, settings, name)
    if digests:
        client.hdel(apikeys_key(settings), *digests)
    return digests


# ------------------------------------------------- the authoritative copy (Kafka)
def publish_keys(settings: Settings, records: Mapping[str, ApiKey | None]) -> None:
    """Write ``{digest: record}`` to the compacted ``api-keys`` topic (None: revoked) and
    wait for the broker; raises RuntimeError when it does not take them."""
    from segstream.streams.produce import deliver
    from segstream.streams.topics import ensure_topics

    ensure_topics(settings)
    topic = settings.topic("api-keys")
    try:
        deliver(
            settings,
            [(topic, d.encode(), r.to_json() if r else None) for d, r in records.items()],
        )
    except RuntimeError as exc:
        raise RuntimeError(f"the API key change was not recorded in Kafka: {exc}") from None


def stored_keys(settings: Settings) -> dict[str, ApiKey | None]:
    """The latest record per digest on ``api-keys`` (None: revoked)."""
    from segstream.consumers.exports import read

    out: dict[str, ApiKey | None] = {}
    for key, value in read(settings, settings.topic("api-keys")):
        if key is not None:
            out[key.decode()] = ApiKey.from_json(value) if value else None
    return out


def restore_keys(client: redis.Redis, settings: Settings) -> int:
    """Make the Redis hash hold what ``api-keys`` holds (revoked keys are removed, keys
    made before the topic existed are kept); returns how many keys it holds now."""
    hkey = apikeys_key(settings)
    records = stored_keys(settings)
    live = {d: r.to_json() for d, r in records.items() if r is not None}
    revoked = [d for d, r in records.items() if r is None]
    pipe = client.pipeline(transaction=True)
    if live:
        pipe.hset(hkey, mapping=live)  # type: ignore[arg-type]  # redis-py's mapping stub
    if revoked:
        pipe.hdel(hkey, *revoked)
    pipe.hlen(hkey)
    return int(pipe.execute()[-1])


# -------------------------------------------------------------- API process
class TokenBucket:
    """``rate`` tokens a second, at most ``burst`` saved up; starts full."""

    __slots__ = ("burst", "clock", "rate", "stamp", "tokens")

    def __init__(self, rate: float, burst: float | None = None, clock: Clock = time.monotonic):
        if rate <= 0:
            raise ValueError("rate must be positive")
        self.rate = rate
        self.burst = burst if burst is not None else max(1.0, rate)
        self.clock = clock
        self.tokens = self.burst
        self.stamp = clock()

    def take(self) -> float:
        """Take one token: 0.0 when allowed, else the seconds until one is available."""
        now = self.clock()
        self.tokens = min(self.burst, self.tokens + (now - self.stamp) * self.rate)
        self.stamp = now
        if self.tokens >= 1.0:
            self.tokens -= 1.0
            return 0.0
        return (1.0 - self.tokens) / self.rate


class RateLimiter:
    """One token bucket per key (by hash), in this process. Burst: one second's worth."""

    def __init__(self, clock: Clock = time.monotonic) -> None:
        self.clock = clock
        self.buckets: dict[str, TokenBucket] = {}

    def check(self, digest: str, rate_per_s: float) -> float:
        """0.0 when the request may go ahead, else seconds to wait (for ``Retry-After``)."""
        bucket = self.buckets.get(digest)
        if bucket is None or bucket.rate != rate_per_s:
            bucket = self.buckets[digest] = TokenBucket(rate_per_s, clock=self.clock)
        return bucket.take()

    def forget_except(self, digests: Iterable[str]) -> None:
        keep = set(digests)
        for d in [d for d in self.buckets if d not in keep]:
            del self.buckets[d]


def retry_after(wait_s: float) -> str:
    """``Retry-After`` is whole seconds: round up, at least 1."""
    return str(max(1, math.ceil(wait_s)))


class KeyCache:
    """All API keys, loaded with one HGETALL and kept for ``ttl`` seconds."""

    def __init__(
        self,
        client: aioredis.Redis,
        settings: Settings,
        ttl: float,
        clock: Clock = time.monotonic,
        on_refresh: Callable[[dict[str, ApiKey]], None] | None = None,
    ) -> None:
        self.client = client
        self.hkey = apikeys_key(settings)
        self.ttl = ttl
        self.clock = clock
        self.on_refresh = on_refresh
        self.keys: dict[str, ApiKey] = {}
        self.loaded_at: float | None = None
        self._lock = asyncio.Lock()

    def _fresh(self) -> bool:
        return self.loaded_at is not None and self.clock() - self.loaded_at < self.ttl

    async def get(self, digest: str) -> ApiKey | None:
        if not self._fresh():
            async with self._lock:
                if not self._fresh():  # another request may have refreshed meanwhile
                    self.keys = parse_keys(await self.client.hgetall(self.hkey))
                    self.loaded_at = self.clock()
                    if self.on_refresh is not None:
                        self.on_refresh(self.keys)
        return self.keys.get(digest)
