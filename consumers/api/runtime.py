"""What the handlers share (Redis pool, reader, key cache, rate limiter) and the auth check."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Annotated, cast

import redis.asyncio as aioredis
from fastapi import Depends, Request
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer
from redis.asyncio.retry import Retry
from redis.backoff import ExponentialWithJitterBackoff

from segstream.consumers.api.errors import ApiError
from segstream.consumers.api.reader import AsyncSegmentReader
from segstream.consumers.api_keys import ApiKey, Clock, KeyCache, RateLimiter, hash_key, retry_after
from segstream.schemas.settings import Settings

REDIS_TIMEOUT_S = 2.0
REDIS_MAX_CONNECTIONS = 64


class Runtime:
    """What the handlers share: made by the lifespan, gone after it."""

    def __init__(
        self, settings: Settings, clock: Clock, client: aioredis.Redis | None = None
    ) -> None:
        self.settings = settings
        self.clock = clock
        self.limiter = RateLimiter(clock)
        self._given = client  # a client the caller owns (tests: an in-memory one)
        self._client: aioredis.Redis | None = None
        self._reader: AsyncSegmentReader | None = None
        self._keys: KeyCache | None = None

    def redis_url(self) -> str:
        s = self.settings
        return (s.api_redis_url or s.redis_url).get_secret_value()

    async def start(self) -> None:
        if self._given is not None:
            self._client = self._given
        else:
            pool = aioredis.ConnectionPool.from_url(
                self.redis_url(),
                max_connections=REDIS_MAX_CONNECTIONS,
                socket_timeout=REDIS_TIMEOUT_S,
                socket_connect_timeout=REDIS_TIMEOUT_S,
                health_check_interval=30,
                retry=Retry(ExponentialWithJitterBackoff(cap=0.2, base=0.02), 2),
            )
            self._client = aioredis.Redis(connection_pool=pool)
        self._reader = AsyncSegmentReader(self._client, self.settings, clock=self.clock)
        self._keys = KeyCache(
            self._client,
            self.settings,
            ttl=self.settings.api_key_cache_s,
            clock=self.clock,
            on_refresh=lambda keys: self.limiter.forget_except(keys),
        )

    async def stop(self) -> None:
        if self._client is not None and self._given is None:
            pool = self._client.connection_pool
            await self._client.aclose()
            await pool.disconnect()
        self._client = self._reader = self._keys = None

    @property
    def client(self) -> aioredis.Redis:
        if self._client is None:
            raise RuntimeError("the API is not started (lifespan not run)")
        return self._client

    @property
    def reader(self) -> AsyncSegmentReader:
        if self._reader is None:
            raise RuntimeError("the API is not started (lifespan not run)")
        return self._reader

    @property
    def keys(self) -> KeyCache:
        if self._keys is None:
            raise RuntimeError("the API is not started (lifespan not run)")
        return self._keys


bearer = HTTPBearer(auto_error=False, description="An API key from `segstream keys create`.")
Credentials = Annotated[HTTPAuthorizationCredentials | None, Depends(bearer)]


def runtime(request: Request) -> Runtime:
    return cast(Runtime, request.app.state.runtime)


def bearer_token(authorization: str | None) -> str | None:
    """The key in ``Authorization: Bearer <key>`` (``None`` when absent), as ``HTTPBearer``."""
    scheme, _, token = (authorization or "").partition(" ")
    token = token.strip()
    return token if scheme.lower() == "bearer" and token else None


async def authorize(rt: Runtime, token: str | None, scope: str) -> ApiKey:
    """The key, when valid, with ``scope`` and within its rate; else 401, 403 or 429.

    Called directly by the lookup routes (FastAPI's dependency solving costs more CPU
    than the rest of a lookup) and through ``require`` by the others.
    """
    if token is None:
        raise ApiError(
            401,
            "unauthorized",
            "missing API key: send Authorization: Bearer <key>",
            {"WWW-Authenticate": "Bearer"},
        )
    digest = hash_key(token)
    key = await rt.keys.get(digest)
    if key is None:
        raise ApiError(
            401,
            "unauthorized",
            "invalid or revoked API key",
            {"WWW-Authenticate": 'Bearer error="invalid_token"'},
        )
    if not key.allows(scope):
        raise ApiError(
            403,
            "forbidden",
            f"this API key lacks the scope {scope}",
            {"WWW-Authenticate": f'Bearer error="insufficient_scope", scope="{scope}"'},
        )
    wait = rt.limiter.check(digest, key.rate_per_s)
    if wait > 0:
        raise ApiError(
            429,
            "rate_limited",
            f"over this key's limit of {key.rate_per_s:g} requests/s (per API process)",
            {"Retry-After": retry_after(wait)},
        )
    return key


def require(
    scope: str,
) -> Callable[[Request, HTTPAuthorizationCredentials | None], Awaitable[ApiKey]]:
    """A dependency: ``authorize`` for ``scope``."""

    async def check(request: Request, creds: Credentials) -> ApiKey:
        return await authorize(runtime(request), creds.credentials if creds else None, scope)

    return check


SEGMENTS_READ = "segments:read"
MEMBERS_READ = "members:read"
SegmentsRead = Annotated[ApiKey, Depends(require(SEGMENTS_READ))]
MembersRead = Annotated[ApiKey, Depends(require(MEMBERS_READ))]
