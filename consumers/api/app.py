"""The application: routes over the reader, behind auth, limits and metrics."""

from __future__ import annotations

import logging
import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Annotated, Any

import redis.asyncio as aioredis
from fastapi import FastAPI, Query, Request
from prometheus_client import (
    CONTENT_TYPE_LATEST,
    CollectorRegistry,
    Counter,
    Histogram,
    generate_latest,
)
from redis.exceptions import RedisError
from starlette.responses import Response

from segstream.consumers.api.errors import (
    ERRORS,
    TOO_LARGE,
    ApiError,
    OrjsonResponse,
    add_handlers,
    error_response,
)
from segstream.consumers.api.middleware import BodyLimit, Metrics
from segstream.consumers.api.pages import decode_cursor, members_page
from segstream.consumers.api.runtime import (
    SEGMENTS_READ,
    MembersRead,
    Runtime,
    SegmentsRead,
    authorize,
    bearer_token,
)
from segstream.consumers.api.schema import (
    BEARER,
    CURSOR_DESCRIPTION,
    CURSOR_PATTERN,
    LOOKUP_BODY,
    MAX_CURSOR_CHARS,
    MAX_ID_CHARS,
    MAX_PAGE,
    USER_ID_PARAMETER,
    ErrorOut,
    LookupOut,
    MembersOut,
    SegmentOut,
    UserSegmentOut,
    bad_cursor,
    parse_lookup,
    too_long,
    user_json,
)
from segstream.consumers.api_keys import Clock
from segstream.schemas.settings import Settings

log = logging.getLogger(__name__)


def create_app(
    settings: Settings | None = None,
    clock: Clock = time.monotonic,
    redis: aioredis.Redis | None = None,
) -> FastAPI:
    """The API application; Redis is connected by its lifespan (uvicorn, TestClient), or is
    ``redis``, a client the caller owns (the unit tests' in-memory one)."""
    settings = settings or Settings()
    rt = Runtime(settings, clock, redis)

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
    app.state.metrics_registry = registry
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

    add_handlers(app)

    # ------------------------------------------------------------- routes
    # The two lookup routes take the request as it is: auth, the path and the body are
    # checked here, not by FastAPI's dependency solving (more CPU than the rest of a
    # lookup); ``openapi_extra`` documents what a declared parameter would.
    @app.get(
        "/v1/users/{user_id:path}/segment",
        response_model=UserSegmentOut,
        responses={**ERRORS, 404: {"model": ErrorOut, "description": "Unknown user"}},
        tags=["segments"],
        openapi_extra={"parameters": [USER_ID_PARAMETER], "security": BEARER},
    )
    async def user_segment(request: Request) -> Response:
        """One user's live segment (one Redis call)."""
        await authorize(rt, bearer_token(request.headers.get("authorization")), SEGMENTS_READ)
        user_id: str = request.path_params["user_id"]
        if len(user_id) > MAX_ID_CHARS:
            raise ApiError(422, "invalid_request", too_long(user_id))
        hit = (await rt.reader.lookup([user_id]))[user_id]
        if hit is None:
            raise ApiError(
                404,
                "unknown_user",
                f"no segment stored for {user_id!r} "
                "(not seen yet, merged into a profile that is gone, or erased)",
            )
        return OrjsonResponse(user_json(user_id, hit))

    @app.post(
        "/v1/segments/lookup",
        response_model=LookupOut,
        responses={**ERRORS, 413: TOO_LARGE},
        tags=["segments"],
        openapi_extra={"requestBody": LOOKUP_BODY, "security": BEARER},
    )
    async def lookup(request: Request) -> Response:
        """Up to 1,000 users in one Redis call; the ones without a segment in `unknown`."""
        await authorize(rt, bearer_token(request.headers.get("authorization")), SEGMENTS_READ)
        body = parse_lookup(await request.body())
        found = await rt.reader.lookup(list(dict.fromkeys(body.user_ids)))
        results: dict[str, Any] = {}
        unknown: list[str] = []
        for user, hit in found.items():
            if hit is None:
                unknown.append(user)
            else:
                results[user] = user_json(user, hit)
        return OrjsonResponse({"results": results, "unknown": unknown})

    @app.get("/v1/segments", response_model=list[SegmentOut], responses=ERRORS, tags=["segments"])
    async def segments(_: SegmentsRead) -> Response:
        """The live segments: the catalog (cached for a second: names, descriptions,
        centres), and each segment's size and business figures now."""
        catalog = await rt.reader.segments()
        ids = sorted(catalog)
        health = await rt.reader.health(ids)
        return OrjsonResponse(
            [
                {
                    "id": sid,
                    "name": catalog[sid].get("name"),
                    "size": health[sid].users,
                    "share": catalog[sid].get("share"),
                    "description": catalog[sid].get("description"),
                    "centroid": catalog[sid].get("centroid") or {},
                    "z": catalog[sid].get("z") or {},
                    "health": health[sid].as_dict(),
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
        cursor: Annotated[
            str,
            Query(
                max_length=MAX_CURSOR_CHARS,
                description=CURSOR_DESCRIPTION,
                # checked by decode_cursor, with the same pattern and a shorter message
                json_schema_extra={"pattern": CURSOR_PATTERN},
            ),
        ] = "0",
        limit: Annotated[int, Query(ge=1, le=MAX_PAGE)] = 100,
    ) -> Response:
        """Profile keys in a segment, a page at a time (SSCAN; a page may hold fewer than
        `limit`, even none: continue while `next_cursor` is not null). Every member that
        stays in the segment during the walk is returned at least once; exactly once when
        the segment does not change."""
        try:
            scan, count, after = decode_cursor(cursor)
        except ValueError as exc:
            raise ApiError(422, "invalid_request", bad_cursor(str(exc))) from None
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
