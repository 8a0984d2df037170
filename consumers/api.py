"""``segstream api``: the personalization lookup API (HTTP/JSON, FastAPI + uvicorn).

It only reads Redis (HGETALL, GET, SCARD, SSCAN, PING), so it can run as a read-only
Redis user limited to ``seg:*`` (``SEGSTREAM_API_REDIS_URL``; falls back to
``SEGSTREAM_REDIS_URL``).

==========================================  ==================  ==========================
route                                       scope               answer
==========================================  ==================  ==========================
``GET /v1/users/{id}/segment``              ``segments:read``   one user's segment (404
                                                                ``unknown_user``)
``POST /v1/segments/lookup``                ``segments:read``   up to 1,000 users at once
``GET /v1/segments``                        ``segments:read``   the segment catalog + sizes
``GET /v1/segments/{id}/members``           ``members:read``    profile keys, SSCAN pages
``GET /healthz`` ``/readyz`` ``/metrics``   none                liveness, Redis PING,
                                                                Prometheus
==========================================  ==================  ==========================

A user lookup is one Redis round trip: the user hashes of every candidate profile
key (``consumers.queries.candidates``) and their merge pointers in one pipeline;
segment names come from the catalog, cached in the process for a second (when it
is stale, its HGETALL rides in the same pipeline). Only a user whose profile was
merged into another costs one more round trip per hop.

Errors are JSON ``{"error": code, "detail": ...}``: 401 ``unauthorized``, 403
``forbidden``, 404 ``unknown_user`` / ``unknown_segment`` / ``not_found``, 413
``body_too_large``, 422 ``invalid_request``, 429 ``rate_limited`` (with
``Retry-After``), 503 ``redis_unavailable``.
"""

from __future__ import annotations

import base64
import binascii
import logging
import re
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Mapping
from contextlib import asynccontextmanager
from typing import Annotated, Any, cast

import orjson
import redis.asyncio as aioredis
from fastapi import Depends, FastAPI, Path, Query, Request
from fastapi.exceptions import RequestValidationError
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer
from prometheus_client import (
    CONTENT_TYPE_LATEST,
    CollectorRegistry,
    Counter,
    Histogram,
    generate_latest,
)
from pydantic import BaseModel, ConfigDict, Field, StringConstraints
from redis.asyncio.retry import Retry
from redis.backoff import ExponentialWithJitterBackoff
from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import RedisError
from redis.exceptions import TimeoutError as RedisTimeoutError
from starlette.exceptions import HTTPException
from starlette.responses import JSONResponse, Response
from starlette.routing import BaseRoute, Match
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from consumers.api_keys import ApiKey, Clock, KeyCache, RateLimiter, hash_key, retry_after
from consumers.queries import candidates
from consumers.redis_view import MAX_ALIAS_HOPS, Keys, UserSegment, decode_user
from schemas.settings import Settings

log = logging.getLogger(__name__)

MAX_BATCH = 1000
MAX_PAGE = 1000
MAX_ID_CHARS = 1024
CATALOG_TTL_S = 1.0
REDIS_TIMEOUT_S = 2.0
REDIS_MAX_CONNECTIONS = 64


class OrjsonResponse(JSONResponse):
    """JSON rendered by orjson (FastAPI's own ``ORJSONResponse`` is deprecated)."""

    def render(self, content: Any) -> bytes:
        return orjson.dumps(content, option=orjson.OPT_NON_STR_KEYS)


class ApiError(Exception):
    """An answer other than 200, rendered as ``{"error": code, "detail": detail}``."""

    def __init__(
        self, status: int, error: str, detail: Any, headers: dict[str, str] | None = None
    ) -> None:
        super().__init__(f"{status} {error}: {detail}")
        self.status = status
        self.error = error
        self.detail = detail
        self.headers = headers


def error_response(
    status: int, error: str, detail: Any, headers: Mapping[str, str] | None = None
) -> OrjsonResponse:
    return OrjsonResponse({"error": error, "detail": detail}, status_code=status, headers=headers)


# ----------------------------------------------------------------- models
# For validation and the OpenAPI document; answers are built as plain dicts.
UserId = Annotated[str, StringConstraints(min_length=1, max_length=MAX_ID_CHARS)]


class LookupRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")
    user_ids: list[UserId] = Field(min_length=1, max_length=MAX_BATCH)


class UserSegmentOut(BaseModel):
    user_id: str
    profile: str = Field(description="The profile key holding the segment (u:, a: or e:).")
    segment: int
    segment_name: str | None
    scores: dict[str, float] = Field(description="Segment id → score.")
    model_version: int
    updated_at_ms: int = Field(description="Event time of the last update, ms since epoch.")


class LookupOut(BaseModel):
    results: dict[str, UserSegmentOut]
    unknown: list[str]


class SegmentOut(BaseModel):
    id: int
    name: str | None
    size: int = Field(description="Members now (SCARD).")
    share: float | None = Field(description="Share of the population in the model's sample.")
    centroid: dict[str, float]
    z: dict[str, float]


class MembersOut(BaseModel):
    members: list[str]
    next_cursor: str | None = Field(description="Pass as `cursor` for the next page; null: done.")


class ErrorOut(BaseModel):
    error: str
    detail: Any


# ----------------------------------------------------------------- reader
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

    async def sizes(self, segment_ids: list[int]) -> dict[int, int]:
        pipe = self.client.pipeline(transaction=False)
        for sid in segment_ids:
            pipe.scard(self.keys.members(sid))
        return dict(zip(segment_ids, await pipe.execute(), strict=True))

    async def scan_members(self, segment: int, cursor: int, count: int) -> tuple[int, list[str]]:
        nxt, batch = await self.client.sscan(self.keys.members(segment), cursor=cursor, count=count)
        return int(nxt), [m.decode() if isinstance(m, bytes) else m for m in batch]


def resolve(user: str, found: dict[str, UserSegment | None]) -> UserSegment | None:
    """The first candidate profile of ``user`` that holds a segment (as the CLI does)."""
    return next((hit for k in candidates(user) if (hit := found.get(k)) is not None), None)


def user_json(user: str, hit: UserSegment) -> dict[str, Any]:
    return {
        "user_id": user,
        "profile": hit.profile,
        "segment": hit.segment,
        "segment_name": hit.name,
        "scores": {str(k): v for k, v in hit.scores.items()},
        "model_version": hit.version,
        "updated_at_ms": hit.updated_ms,
    }


# ------------------------------------------------------------- pagination
# A page cursor is the SSCAN cursor, or, when one SSCAN batch was larger than the
# page, "<SSCAN cursor>.<COUNT>.<base64 of the last member returned>": the next page
# repeats that SSCAN (same cursor and COUNT, so the same batch of a set that did not
# change) and continues after that member, in sorted order.
_CURSOR = re.compile(r"^([0-9]{1,20})(?:\.([0-9]{1,4})\.([A-Za-z0-9_\-]*))?$")


def encode_cursor(scan: int, count: int | None = None, after: str | None = None) -> str:
    if after is None or count is None:
        return str(scan)
    return f"{scan}.{count}.{base64.urlsafe_b64encode(after.encode()).decode().rstrip('=')}"


def decode_cursor(text: str) -> tuple[int, int | None, str | None]:
    """``(SSCAN cursor, COUNT, after)``; ValueError when ``text`` is not one of ours."""
    m = _CURSOR.match(text)
    if m is None or int(m[1]) >= 2**64:
        raise ValueError(f"invalid cursor {text!r}")
    if m[2] is None:
        return int(m[1]), None, None
    count = int(m[2])
    if not 1 <= count <= MAX_PAGE:
        raise ValueError(f"invalid cursor {text!r}")
    b64 = m[3] + "=" * (-len(m[3]) % 4)
    try:
        after = base64.urlsafe_b64decode(b64).decode()
    except (binascii.Error, UnicodeDecodeError) as exc:
        raise ValueError(f"invalid cursor {text!r}") from exc
    return int(m[1]), count, after


def members_page(
    batch: list[str], scan: int, count: int, after: str | None, next_scan: int, limit: int
) -> tuple[list[str], str | None]:
    """At most ``limit`` members of one SSCAN batch (from cursor ``scan``), and the next cursor."""
    ordered = sorted(set(batch))
    if after is not None:
        ordered = [m for m in ordered if m > after]
    if len(ordered) > limit:
        page = ordered[:limit]
        return page, encode_cursor(scan, count, page[-1])
    return ordered, None if next_scan == 0 else encode_cursor(next_scan)


# ---------------------------------------------------------------- ASGI layers
class BodyTooLarge(HTTPException):
    """Raised from ``receive``: FastAPI re-raises HTTPExceptions met while reading a body."""

    def __init__(self, limit: int) -> None:
        super().__init__(413, f"the request body is larger than {limit} bytes")


class BodyLimit:
    """413 for a body over ``max_bytes``: by Content-Length up front, else while it streams."""

    def __init__(self, app: ASGIApp, max_bytes: int) -> None:
        self.app = app
        self.max_bytes = max_bytes

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        for name, value in scope["headers"]:
            if name == b"content-length":
                try:
                    length = int(value)
                except ValueError:
                    length = -1
                if length < 0:
                    await error_response(400, "bad_request", "invalid Content-Length")(
                        scope, receive, send
                    )
                    return
                if length > self.max_bytes:
                    await self._reject(scope, receive, send)
                    return
        received = 0
        started = False

        async def limited() -> Message:
            nonlocal received
            message = await receive()
            if message["type"] == "http.request":
                received += len(message.get("body", b""))
                if received > self.max_bytes:
                    raise BodyTooLarge(self.max_bytes)
            return message

        async def tracked(message: Message) -> None:
            nonlocal started
            if message["type"] == "http.response.start":
                started = True
            await send(message)

        try:
            await self.app(scope, limited, tracked)
        except BodyTooLarge:
            if started:
                raise
            await self._reject(scope, receive, send)

    async def _reject(self, scope: Scope, receive: Receive, send: Send) -> None:
        detail = f"the request body is larger than {self.max_bytes} bytes"
        await error_response(413, "body_too_large", detail, {"Connection": "close"})(
            scope, receive, send
        )


class Metrics:
    """Requests by route template, method and status; latency by route."""

    def __init__(
        self, app: ASGIApp, routes: list[BaseRoute], requests: Counter, latency: Histogram
    ) -> None:
        self.app = app
        self.routes = routes
        self.requests = requests
        self.latency = latency

    def _route(self, scope: Scope) -> str:
        """The template of the route that will answer (path and method), as the router picks."""
        partial: BaseRoute | None = None
        for route in self.routes:
            match, _ = route.matches(scope)
            if match == Match.FULL:
                return str(getattr(route, "path", "other"))
            if match == Match.PARTIAL and partial is None:
                partial = route
        return "unmatched" if partial is None else str(getattr(partial, "path", "other"))

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        route = self._route(scope)
        status = 500
        t0 = time.perf_counter()

        async def tracked(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = int(message["status"])
            await send(message)

        try:
            await self.app(scope, receive, tracked)
        finally:
            self.latency.labels(route).observe(time.perf_counter() - t0)
            self.requests.labels(route, scope["method"], str(status)).inc()


# -------------------------------------------------------------------- app
class Runtime:
    """What the handlers share: made by the lifespan, gone after it."""

    def __init__(self, settings: Settings, clock: Clock) -> None:
        self.settings = settings
        self.clock = clock
        self.limiter = RateLimiter(clock)
        self._client: aioredis.Redis | None = None
        self._reader: AsyncSegmentReader | None = None
        self._keys: KeyCache | None = None

    def redis_url(self) -> str:
        s = self.settings
        return (s.api_redis_url or s.redis_url).get_secret_value()

    async def start(self) -> None:
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
        if self._client is not None:
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


# ------------------------------------------------------------------- auth
bearer = HTTPBearer(auto_error=False, description="An API key from `segstream keys create`.")
Credentials = Annotated[HTTPAuthorizationCredentials | None, Depends(bearer)]


def runtime(request: Request) -> Runtime:
    return cast(Runtime, request.app.state.runtime)


def require(
    scope: str,
) -> Callable[[Request, HTTPAuthorizationCredentials | None], Awaitable[ApiKey]]:
    """A dependency: a valid key with ``scope``, within its rate; else 401, 403 or 429."""

    async def check(request: Request, creds: Credentials) -> ApiKey:
        rt = runtime(request)
        if creds is None:
            raise ApiError(
                401,
                "unauthorized",
                "missing API key: send Authorization: Bearer <key>",
                {"WWW-Authenticate": "Bearer"},
            )
        digest = hash_key(creds.credentials)
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

    return check


SegmentsRead = Annotated[ApiKey, Depends(require("segments:read"))]
MembersRead = Annotated[ApiKey, Depends(require("members:read"))]


ERRORS: dict[int | str, dict[str, Any]] = {
    code: {"model": ErrorOut, "description": text}
    for code, text in (
        (401, "Missing or invalid API key"),
        (403, "The key lacks the scope"),
        (422, "Invalid request"),
        (429, "Over the key's rate (per API process); see Retry-After"),
        (503, "Redis unavailable"),
    )
}


def create_app(settings: Settings | None = None, clock: Clock = time.monotonic) -> FastAPI:
    """The API application; Redis is connected by its lifespan (uvicorn, TestClient)."""
    settings = settings or Settings()
    rt = Runtime(settings, clock)

    @asynccontextmanager
    async def lifespan(_: FastAPI) -> AsyncIterator[None]:
        await rt.start()
        try:
            yield
        finally:
            await rt.stop()

    app = FastAPI(
        title="segstream personalization API",
        version="1",
        description="Live customer segments: lookups, the segment catalog, members.",
        lifespan=lifespan,
        default_response_class=OrjsonResponse,
    )
    app.state.runtime = rt

    registry = CollectorRegistry()
    requests = Counter(
        "segstream_api_requests",
        "HTTP requests by route template, method and status",
        ["route", "method", "status"],
        registry=registry,
    )
    latency = Histogram(
        "segstream_api_request_seconds",
        "HTTP request latency by route template",
        ["route"],
        registry=registry,
        buckets=(0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5),
    )
    # Added last = outermost: metrics see every answer, the 413s included.
    app.add_middleware(BodyLimit, max_bytes=settings.api_max_body_bytes)
    app.add_middleware(Metrics, routes=app.router.routes, requests=requests, latency=latency)

    # ------------------------------------------------------------- errors
    @app.exception_handler(ApiError)
    async def _api_error(_: Request, exc: ApiError) -> Response:
        return error_response(exc.status, exc.error, exc.detail, exc.headers)

    @app.exception_handler(HTTPException)
    async def _http_error(_: Request, exc: HTTPException) -> Response:
        code = {
            404: "not_found",
            405: "method_not_allowed",
            413: "body_too_large",
        }.get(exc.status_code, "http_error")
        return error_response(exc.status_code, code, exc.detail, exc.headers)

    @app.exception_handler(RequestValidationError)
    async def _invalid(_: Request, exc: RequestValidationError) -> Response:
        detail = [
            {"loc": list(e.get("loc", ())), "msg": e.get("msg"), "type": e.get("type")}
            for e in exc.errors()
        ]
        return error_response(422, "invalid_request", detail)

    @app.exception_handler(RedisError)
    async def _redis(_: Request, exc: RedisError) -> Response:
        if isinstance(exc, RedisConnectionError | RedisTimeoutError):
            log.warning("redis unavailable: %s", exc)
            return error_response(503, "redis_unavailable", "Redis did not answer; try again")
        log.error("redis error: %r", exc)
        return error_response(500, "redis_error", "Redis refused the request; see the API log")

    # ------------------------------------------------------------- routes
    @app.get(
        "/v1/users/{user_id:path}/segment",
        response_model=UserSegmentOut,
        responses={**ERRORS, 404: {"model": ErrorOut, "description": "Unknown user"}},
        tags=["segments"],
    )
    async def user_segment(
        user_id: Annotated[
            str,
            Path(
                max_length=MAX_ID_CHARS,
                description="A user id (tries u:<id>, then a:<id>) or a profile key u:, a:, e:.",
            ),
        ],
        _: SegmentsRead,
    ) -> Response:
        """One user's live segment (one Redis round trip)."""
        found = await rt.reader.lookup(candidates(user_id))
        hit = resolve(user_id, found)
        if hit is None:
            raise ApiError(
                404,
                "unknown_user",
                f"no segment stored for {user_id!r} "
                "(not seen yet, merged into a profile that is gone, or erased)",
            )
        return OrjsonResponse(user_json(user_id, hit))

    @app.post("/v1/segments/lookup", response_model=LookupOut, responses=ERRORS, tags=["segments"])
    async def lookup(body: LookupRequest, _: SegmentsRead) -> Response:
        """Up to 1,000 users in one Redis round trip; the ones without a segment in `unknown`."""
        users = list(dict.fromkeys(body.user_ids))
        found = await rt.reader.lookup(list(dict.fromkeys(k for u in users for k in candidates(u))))
        results: dict[str, Any] = {}
        unknown: list[str] = []
        for user in users:
            hit = resolve(user, found)
            if hit is None:
                unknown.append(user)
            else:
                results[user] = user_json(user, hit)
        return OrjsonResponse({"results": results, "unknown": unknown})

    @app.get("/v1/segments", response_model=list[SegmentOut], responses=ERRORS, tags=["segments"])
    async def segments(_: SegmentsRead) -> Response:
        """The live segments: catalog (cached for a second) and sizes (SCARD)."""
        catalog = await rt.reader.segments()
        ids = sorted(catalog)
        sizes = await rt.reader.sizes(ids)
        return OrjsonResponse(
            [
                {
                    "id": sid,
                    "name": catalog[sid].get("name"),
                    "size": sizes[sid],
                    "share": catalog[sid].get("share"),
                    "centroid": catalog[sid].get("centroid") or {},
                    "z": catalog[sid].get("z") or {},
                }
                for sid in ids
            ]
        )

    @app.get(
        "/v1/segments/{segment_id}/members",
        response_model=MembersOut,
        responses={**ERRORS, 404: {"model": ErrorOut, "description": "Unknown segment"}},
        tags=["segments"],
    )
    async def members(
        segment_id: int,
        _: MembersRead,
        cursor: Annotated[str, Query(max_length=2048, description="From next_cursor.")] = "0",
        limit: Annotated[int, Query(ge=1, le=MAX_PAGE)] = 100,
    ) -> Response:
        """Profile keys in a segment, a page at a time (SSCAN; a page may hold fewer than
        `limit`, even none: continue while `next_cursor` is not null). Every member that
        stays in the segment during the walk is returned at least once; exactly once when
        the segment does not change."""
        try:
            scan, count, after = decode_cursor(cursor)
        except ValueError as exc:
            raise ApiError(422, "invalid_request", str(exc)) from None
        count = count or limit
        next_scan, batch = await rt.reader.scan_members(segment_id, scan, count)
        empty = scan == 0 and next_scan == 0 and not batch
        if empty and segment_id not in await rt.reader.segments():
            raise ApiError(404, "unknown_segment", f"no segment {segment_id}")
        page, next_cursor = members_page(batch, scan, count, after, next_scan, limit)
        return OrjsonResponse({"members": page, "next_cursor": next_cursor})

    @app.get("/healthz", tags=["operations"])
    async def healthz() -> dict[str, str]:
        """The process is up (no Redis call)."""
        return {"status": "ok"}

    @app.get(
        "/readyz",
        tags=["operations"],
        responses={503: {"model": ErrorOut, "description": "Redis unavailable"}},
    )
    async def readyz() -> Response:
        """Redis answers PING."""
        try:
            await rt.client.ping()
        except (RedisError, OSError) as exc:
            log.warning("readyz: redis did not answer PING: %s", exc)
            return error_response(503, "redis_unavailable", "Redis did not answer PING")
        return OrjsonResponse({"status": "ready"})

    @app.get("/metrics", include_in_schema=False)
    async def metrics() -> Response:
        return Response(generate_latest(registry), media_type=CONTENT_TYPE_LATEST)

    return app
