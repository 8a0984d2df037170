"""The HTTP API (consumers/api.py) against the real Redis, in a random namespace per test.

Segments are written with the worker's own ``SegmentWriter`` (Lua compare-and-set
and ``publish_model``), keys with ``segstream keys``' functions, so every test reads
the real key layout. Requests go through httpx's ASGI transport with the app's
lifespan run (its Redis pool); one test runs ``segstream api`` as a real server.
"""

from __future__ import annotations

import asyncio
import hashlib
import json
import os
import re
import signal
import socket
import time
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from dataclasses import replace
from pathlib import Path
from typing import Any

import httpx
import orjson
import pytest
import redis
import redis.asyncio as aioredis
from prometheus_client.parser import text_string_to_metric_families
from typer.testing import CliRunner

from segstream.consumers.api import Runtime, create_app
from segstream.consumers.api_keys import apikeys_key, create_key, revoke_key
from segstream.consumers.cli import app as cli_app
from segstream.consumers.exports import read
from segstream.consumers.redis_view import Keys, SegmentWriter
from segstream.schemas.records import SegmentRecord
from segstream.schemas.settings import Settings

pytestmark = [pytest.mark.integration, pytest.mark.anyio]
REPO = Path(__file__).resolve().parents[2]

CATALOG: dict[int, dict[str, Any]] = {
    0: {
        "id": 0,
        "name": "Bargain hunters",
        "share": 0.5,
        "version": 7,
        "centroid": {"frequency_30d": 2.0, "cart_rate": 0.4},
        "z": {"frequency_30d": -0.3, "cart_rate": 1.2},
    },
    1: {
        "id": 1,
        "name": "Loyal big spenders",
        "share": 0.3,
        "version": 7,
        "centroid": {"frequency_30d": 9.5, "cart_rate": 0.1},
        "z": {"frequency_30d": 2.1, "cart_rate": -0.4},
    },
    2: {
        "id": 2,
        "name": "Dormant",
        "share": 0.2,
        "version": 7,
        "centroid": {"frequency_30d": 0.1, "cart_rate": 0.0},
        "z": {"frequency_30d": -1.5, "cart_rate": -0.9},
    },
}


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"


class FakeClock:
    """Monotonic time the test moves (catalog and key cache TTLs, rate buckets)."""

    def __init__(self) -> None:
        self.t = 10_000.0

    def __call__(self) -> float:
        return self.t

    def advance(self, s: float) -> None:
        self.t += s


def admin(settings: Settings) -> redis.Redis:
    return redis.Redis.from_url(settings.redis_url.get_secret_value())


def rec(
    profile: str,
    segment: int,
    seq: int = 1,
    version: int = 7,
    scores: dict[int, float] | None = None,
) -> SegmentRecord:
    return SegmentRecord(
        profile=profile,
        segment=segment,
        version=version,
        seq=seq,
        updated_ms=1_700_000_000_000 + seq,
        scores=scores if scores is not None else {segment: 0.9, (segment + 1) % 3: 0.1},
        features={"frequency_30d": 1.0},
    )


async def seed(
    settings: Settings,
    records: list[SegmentRecord],
    catalog: dict[int, dict[str, Any]] = CATALOG,
    version: int = 7,
) -> None:
    client = aioredis.Redis.from_url(settings.redis_url.get_secret_value())
    try:
        writer = SegmentWriter(client, settings)
        await writer.publish_model(version, 1_700_000_000_000, ["frequency_30d"], catalog)
        for i in range(0, len(records), 500):
            await writer.write(records[i : i + 500])
    finally:
        await client.aclose()


def new_key(settings: Settings, *scopes: str, rate: float = 1000.0, name: str | None = None) -> str:
    key, _ = create_key(admin(settings), settings, scopes or ("segments:read",), rate, name)
    return key


def bearer(key: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {key}"}


@asynccontextmanager
async def serve(
    settings: Settings, clock: Callable[[], float] | None = None
) -> AsyncIterator[tuple[httpx.AsyncClient, Runtime]]:
    """The app with its lifespan run, and an httpx client speaking ASGI to it."""
    app = create_app(settings, clock=clock) if clock else create_app(settings)
    async with (
        app.router.lifespan_context(app),
        httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://api") as c,
    ):
        yield c, app.state.runtime


class RoundTrips:
    """Counts Redis round trips of one client: single commands plus pipeline executions."""

    def __init__(self, client: aioredis.Redis, monkeypatch: pytest.MonkeyPatch) -> None:
        self.n = 0
        self.commands: list[int] = []
        self.calls: list[tuple[Any, ...]] = []  # single commands, as sent
        original_execute = client.execute_command
        original_pipeline = client.pipeline

        async def execute_command(*args: Any, **kwargs: Any) -> Any:
            self.n += 1
            self.calls.append(args)
            return await original_execute(*args, **kwargs)

        def pipeline(*args: Any, **kwargs: Any) -> Any:
            pipe = original_pipeline(*args, **kwargs)
            original = pipe.execute

            async def execute(*a: Any, **kw: Any) -> Any:
                self.n += 1
                self.commands.append(len(pipe.command_stack))
                return await original(*a, **kw)

            pipe.execute = execute  # type: ignore[method-assign]
            return pipe

        monkeypatch.setattr(client, "execute_command", execute_command)
        monkeypatch.setattr(client, "pipeline", pipeline)


# ------------------------------------------------------------------ lookups
async def test_user_lookup_returns_the_stored_segment(make_settings):
    s = make_settings()
    await seed(
        s,
        [
            rec("u:alice", 1, seq=4, scores={0: 0.25, 1: 0.75}),
            rec("a:anon-9", 0, seq=2),
            rec("u:both", 2),
            rec("a:both", 0),
        ],
    )
    key = new_key(s, "segments:read")
    async with serve(s) as (c, _):
        r = await c.get("/v1/users/alice/segment", headers=bearer(key))
        assert r.status_code == 200, r.text
        assert r.headers["content-type"] == "application/json"
        assert r.json() == {
            "user_id": "alice",
            "profile": "u:alice",
            "segment": 1,
            "segment_name": "Loyal big spenders",
            "scores": {"0": 0.25, "1": 0.75},
            "model_version": 7,
            "updated_at_ms": 1_700_000_000_004,
        }
        # a bare id falls back to the anonymous id; a user id wins over it
        r = await c.get("/v1/users/anon-9/segment", headers=bearer(key))
        assert (r.status_code, r.json()["profile"], r.json()["segment"]) == (200, "a:anon-9", 0)
        r = await c.get("/v1/users/both/segment", headers=bearer(key))
        assert (r.json()["profile"], r.json()["segment"]) == ("u:both", 2)
        # typed keys are taken as given
        r = await c.get("/v1/users/a:both/segment", headers=bearer(key))
        assert (r.json()["profile"], r.json()["segment"]) == ("a:both", 0)
        r = await c.get("/v1/users/a:alice/segment", headers=bearer(key))
        assert r.status_code == 404


async def test_unknown_user_is_404_with_a_json_error(make_settings):
    s = make_settings()
    await seed(s, [rec("u:alice", 1)])
    key = new_key(s)
    async with serve(s) as (c, _):
        r = await c.get("/v1/users/ghost-42/segment", headers=bearer(key))
    assert r.status_code == 404
    assert r.headers["content-type"] == "application/json"
    body = r.json()
    assert body["error"] == "unknown_user"
    assert "ghost-42" in body["detail"]


async def test_single_lookup_is_one_redis_round_trip(make_settings, monkeypatch):
    s = make_settings()
    await seed(s, [rec("a:anon-1", 2)])
    key = new_key(s)
    async with serve(s) as (c, rt):
        assert (await c.get("/v1/users/anon-1/segment", headers=bearer(key))).status_code == 200
        trips = RoundTrips(rt.client, monkeypatch)
        r = await c.get("/v1/users/anon-1/segment", headers=bearer(key))
        assert r.status_code == 200
        assert r.json()["segment_name"] == "Dormant"
        assert trips.n == 1  # keys and catalog are cached; both candidates in one script call
        assert trips.calls[0][0] == "EVALSHA_RO"


async def test_batch_lookup_reports_unknown_ids_in_one_round_trip(make_settings, monkeypatch):
    s = make_settings()
    users = [f"cust-{i}" for i in range(300)]
    await seed(s, [rec(f"u:{u}", i % 3, seq=i + 1) for i, u in enumerate(users)])
    key = new_key(s)
    asked = [*users[:200], "ghost-1", "a:cust-5", users[0], "ghost-2"]
    async with serve(s) as (c, rt):
        await c.get("/healthz")
        trips = RoundTrips(rt.client, monkeypatch)
        # the key cache and the catalog are cold: their HGETALLs are the only other trips
        r = await c.post("/v1/segments/lookup", json={"user_ids": asked}, headers=bearer(key))
        assert [call[0] for call in trips.calls] == ["HGETALL", "HGETALL", "EVALSHA_RO"]
        assert trips.n == 3
        script_args = trips.calls[-1][3:]  # sha, numkeys, then prefixes, hops, groups
        assert script_args.count(2) == 202  # every asked id once, with its two candidates
        assert "u:ghost-1" in script_args and "a:ghost-1" in script_args
    assert r.status_code == 200, r.text
    body = r.json()
    assert body["unknown"] == ["ghost-1", "a:cust-5", "ghost-2"]
    assert set(body["results"]) == set(users[:200])
    for i, u in enumerate(users[:200]):
        got = body["results"][u]
        assert (got["user_id"], got["profile"], got["segment"]) == (u, f"u:{u}", i % 3)
        assert got["segment_name"] == CATALOG[i % 3]["name"]
        assert got["updated_at_ms"] == 1_700_000_000_000 + i + 1


async def test_batch_lookup_validates_its_body(make_settings):
    s = make_settings()
    await seed(s, [])
    key = new_key(s)
    async with serve(s) as (c, _):
        ids = [f"u{i}" for i in range(1001)]
        r = await c.post("/v1/segments/lookup", json={"user_ids": ids}, headers=bearer(key))
        assert r.status_code == 422
        assert r.json()["error"] == "invalid_request"
        assert r.json()["detail"][0]["loc"] == ["body", "user_ids"]
        assert (
            await c.post("/v1/segments/lookup", json={"user_ids": []}, headers=bearer(key))
        ).status_code == 422
        r = await c.post("/v1/segments/lookup", json={"ids": ["x"]}, headers=bearer(key))
        assert r.status_code == 422
        r = await c.post(
            "/v1/segments/lookup",
            content=b"{not json",
            headers={**bearer(key), "content-type": "application/json"},
        )
        assert r.status_code == 422
        r = await c.post("/v1/segments/lookup", json={"user_ids": ids[:1000]}, headers=bearer(key))
        assert r.status_code == 200
        assert len(r.json()["unknown"]) == 1000


async def test_lookup_checks_the_key_before_the_request(make_settings):
    s = make_settings()
    await seed(s, [rec("u:alice", 1)])
    key = new_key(s)
    async with serve(s) as (c, _):
        long_id = "x" * 1025
        r = await c.get(f"/v1/users/{long_id}/segment")
        assert r.status_code == 401  # no key: nothing about the request is told
        r = await c.post("/v1/segments/lookup", content=b"{not json")
        assert (r.status_code, r.json()["error"]) == (401, "unauthorized")
        r = await c.get(f"/v1/users/{long_id}/segment", headers=bearer(key))
        assert (r.status_code, r.json()["error"]) == (422, "invalid_request")
        assert r.json()["detail"][0]["loc"] == ["path", "user_id"]
        r = await c.get(f"/v1/users/{long_id[:1024]}/segment", headers=bearer(key))
        assert r.status_code == 404
        r = await c.get("/v1/users/alice/segment", headers={"Authorization": f"Basic {key}"})
        assert r.status_code == 401  # only Bearer
        r = await c.get("/v1/users/alice/segment", headers={"Authorization": f"bearer  {key} "})
        assert r.status_code == 200  # the scheme in any case, the key trimmed


async def test_a_merged_profile_resolves_to_the_profile_it_joined(make_settings):
    """The worker's merge (``SegmentWriter.write(deletes=...)``) leaves alias pointers."""
    s = make_settings()
    e = "e:" + "ab" * 32
    await seed(s, [rec("u:keeper", 1, seq=9), rec("a:old-device", 0), rec(e, 2)])
    client = aioredis.Redis.from_url(s.redis_url.get_secret_value())
    try:
        writer = SegmentWriter(client, s)
        await writer.write([], deletes=[("a:old-device", e), (e, "u:keeper")])
    finally:
        await client.aclose()
    r = admin(s)
    assert not r.exists(Keys(s).user("a:old-device"))
    r.set(Keys(s).alias("a:loop-1"), "a:loop-2")
    r.set(Keys(s).alias("a:loop-2"), "a:loop-1")
    key = new_key(s)
    async with serve(s) as (c, _):
        got = (await c.get("/v1/users/a:old-device/segment", headers=bearer(key))).json()
        assert (got["user_id"], got["profile"], got["segment"]) == ("a:old-device", "u:keeper", 1)
        assert got["segment_name"] == "Loyal big spenders"
        resp = await c.post(
            "/v1/segments/lookup",
            json={"user_ids": ["old-device", e, "loop-1", "keeper"]},
            headers=bearer(key),
        )
        body = resp.json()
        assert body["results"]["old-device"]["profile"] == "u:keeper"
        assert body["results"][e]["profile"] == "u:keeper"
        assert body["results"]["keeper"]["profile"] == "u:keeper"
        assert body["unknown"] == ["loop-1"]  # a pointer cycle ends, unknown


# ----------------------------------------------------------------- segments
async def test_segments_lists_the_catalog_with_live_sizes_and_health(make_settings):
    s = make_settings()
    records = [
        replace(rec(f"u:{i}", 0 if i < 5 else 1), revenue=10.0 * i, converted=i % 2 == 1, ad_cost=i)
        for i in range(8)
    ]
    await seed(s, records)
    key = new_key(s)
    async with serve(s) as (c, _):
        r = await c.get("/v1/segments", headers=bearer(key))
    assert r.status_code == 200, r.text
    body = {seg["id"]: seg for seg in r.json()}
    assert sorted(body) == [0, 1, 2]
    for sid in (0, 1, 2):
        members = [x for x in records if x.segment == sid]
        revenue = sum(x.revenue for x in members)
        converted = sum(x.converted for x in members)
        ad_cost = sum(x.ad_cost for x in members)
        assert body[sid] == {
            "id": sid,
            "name": CATALOG[sid]["name"],
            "size": len(members),
            "share": CATALOG[sid]["share"],
            "description": None,
            "centroid": CATALOG[sid]["centroid"],
            "z": CATALOG[sid]["z"],
            "health": {
                "users": len(members),
                "revenue": revenue,
                "converted": converted,
                "ad_cost": ad_cost,
                "conversion_rate": round(converted / len(members), 4) if members else None,
                "revenue_per_user": round(revenue / len(members), 2) if members else None,
                "cac": round(ad_cost / converted, 2) if converted else None,
                "roas": round(revenue / ad_cost, 3) if ad_cost else None,
            },
        }


async def test_catalog_is_cached_for_about_a_second(make_settings):
    s = make_settings()
    await seed(s, [rec("u:alice", 1)])
    key = new_key(s)
    clock = FakeClock()
    renamed = {**CATALOG, 1: {**CATALOG[1], "name": "Renamed"}}
    async with serve(s, clock) as (c, _):
        r = await c.get("/v1/users/alice/segment", headers=bearer(key))
        assert r.json()["segment_name"] == "Loyal big spenders"
        await seed(s, [], catalog=renamed, version=8)
        clock.advance(0.5)
        r = await c.get("/v1/users/alice/segment", headers=bearer(key))
        assert r.json()["segment_name"] == "Loyal big spenders"  # cached
        clock.advance(0.6)
        r = await c.get("/v1/users/alice/segment", headers=bearer(key))
        assert r.json()["segment_name"] == "Renamed"
        names = [x["name"] for x in (await c.get("/v1/segments", headers=bearer(key))).json()]
        assert "Renamed" in names


async def _walk(c: httpx.AsyncClient, key: str, segment: int, limit: int) -> list[list[str]]:
    pages: list[list[str]] = []
    cursor: str | None = "0"
    while cursor is not None:
        r = await c.get(
            f"/v1/segments/{segment}/members",
            params={"cursor": cursor, "limit": limit},
            headers=bearer(key),
        )
        assert r.status_code == 200, r.text
        body = r.json()
        assert len(body["members"]) <= limit
        pages.append(body["members"])
        cursor = body["next_cursor"]
        assert len(pages) < 1000, "pagination does not end"
    return pages


@pytest.mark.parametrize(("members", "limit"), [(60, 25), (700, 90)])
async def test_member_pages_return_every_member_exactly_once(make_settings, members, limit):
    # 60 members: a small (listpack) set, which SSCAN returns whole: pages split one batch.
    # 700 members: a hashtable set, walked over many SSCAN calls.
    s = make_settings()
    profiles = [f"u:m{i}" for i in range(members)]
    await seed(s, [rec(p, 2) for p in profiles] + [rec(f"u:other{i}", 0) for i in range(30)])
    key = new_key(s, "members:read")
    async with serve(s) as (c, _):
        pages = await _walk(c, key, 2, limit)
    flat = [m for page in pages for m in page]
    assert len(pages) >= 3
    assert len(flat) == len(set(flat))
    assert sorted(flat) == sorted(profiles)


async def test_member_pages_may_change_limit_midway(make_settings):
    s = make_settings()
    profiles = [f"u:m{i}" for i in range(700)]
    await seed(s, [rec(p, 1) for p in profiles])
    key = new_key(s, "members:read")
    flat: list[str] = []
    split = 0
    async with serve(s) as (c, _):
        cursor: str | None = "0"
        for i in range(2000):
            # small pages: SSCAN returns about COUNT members per call, more when a hash
            # bucket holds several (4 in 10 calls at COUNT 3), so over the ~200 calls some
            # batch is surely larger than its page (with pages of 400, only by luck)
            limit = (3, 7)[i % 2]
            r = await c.get(
                "/v1/segments/1/members",
                params={"cursor": cursor, "limit": limit},
                headers=bearer(key),
            )
            body = r.json()
            assert len(body["members"]) <= limit
            flat += body["members"]
            cursor = body["next_cursor"]
            split += cursor is not None and "." in cursor
            if cursor is None:
                break
    assert split > 0  # some SSCAN batch was larger than its page
    assert len(flat) == len(set(flat))
    assert sorted(flat) == sorted(profiles)


async def test_member_pages_validate_their_parameters(make_settings):
    s = make_settings()
    await seed(s, [rec("u:a", 0)])
    key = new_key(s, "members:read")
    async with serve(s) as (c, _):
        h = bearer(key)
        assert (await c.get("/v1/segments/0/members?limit=1001", headers=h)).status_code == 422
        assert (await c.get("/v1/segments/0/members?limit=0", headers=h)).status_code == 422
        r = await c.get("/v1/segments/0/members?cursor=nope", headers=h)
        assert (r.status_code, r.json()["error"]) == (422, "invalid_request")
        r = await c.get("/v1/segments/99/members", headers=h)
        assert (r.status_code, r.json()["error"]) == (404, "unknown_segment")
        r = await c.get("/v1/segments/2/members", headers=h)  # known, empty
        assert r.json() == {"members": [], "next_cursor": None}
        r = await c.get("/v1/segments/0/members", headers=h)
        assert r.json() == {"members": ["u:a"], "next_cursor": None}


# --------------------------------------------------------------------- auth
async def test_requests_without_a_valid_key_are_401(make_settings):
    s = make_settings()
    await seed(s, [rec("u:alice", 1)])
    key = new_key(s, "segments:read", "members:read")
    async with serve(s) as (c, _):
        for method, path in [
            ("GET", "/v1/users/alice/segment"),
            ("POST", "/v1/segments/lookup"),
            ("GET", "/v1/segments"),
            ("GET", "/v1/segments/1/members"),
        ]:
            body = {"json": {"user_ids": ["alice"]}} if method == "POST" else {}
            for headers in (
                {},
                bearer("sk_" + "x" * 43),
                bearer(key[:-1]),
                {"Authorization": f"Basic {key}"},
                {"Authorization": key},
            ):
                r = await c.request(method, path, headers=headers, **body)
                assert r.status_code == 401, (path, headers, r.text)
                assert r.headers["www-authenticate"].startswith("Bearer")
                assert r.json()["error"] == "unauthorized"
            r = await c.request(method, path, headers=bearer(key), **body)
            assert r.status_code == 200, (path, r.text)


async def test_keys_without_the_scope_are_403(make_settings):
    s = make_settings()
    await seed(s, [rec("u:alice", 1)])
    seg_only = new_key(s, "segments:read")
    members_only = new_key(s, "members:read")
    async with serve(s) as (c, _):
        r = await c.get("/v1/segments/1/members", headers=bearer(seg_only))
        assert (r.status_code, r.json()["error"]) == (403, "forbidden")
        assert "members:read" in r.json()["detail"]
        for path in ("/v1/users/alice/segment", "/v1/segments"):
            r = await c.get(path, headers=bearer(members_only))
            assert r.status_code == 403, path
        r = await c.post(
            "/v1/segments/lookup", json={"user_ids": ["alice"]}, headers=bearer(members_only)
        )
        assert r.status_code == 403
        assert (
            await c.get("/v1/segments/1/members", headers=bearer(members_only))
        ).status_code == 200
        assert (await c.get("/v1/segments", headers=bearer(seg_only))).status_code == 200


async def test_over_its_rate_a_key_gets_429_with_retry_after(make_settings):
    s = make_settings()
    await seed(s, [rec("u:alice", 1)])
    slow = new_key(s, rate=2)
    other = new_key(s, rate=2)
    async with serve(s) as (c, _):
        codes = [
            (await c.get("/v1/users/alice/segment", headers=bearer(slow))).status_code
            for _ in range(2)
        ]
        r = await c.get("/v1/users/alice/segment", headers=bearer(slow))
        assert codes == [200, 200]
        assert r.status_code == 429
        assert r.json()["error"] == "rate_limited"
        assert r.headers["retry-after"] == "1"
        # another key has its own bucket
        assert (await c.get("/v1/users/alice/segment", headers=bearer(other))).status_code == 200
        await asyncio.sleep(0.6)  # 2/s: one token back
        assert (await c.get("/v1/users/alice/segment", headers=bearer(slow))).status_code == 200
        assert (await c.get("/v1/users/alice/segment", headers=bearer(slow))).status_code == 429


async def test_revocation_and_new_keys_take_effect_within_the_cache_ttl(make_settings):
    s = make_settings(api_key_cache_s=5.0)
    await seed(s, [rec("u:alice", 1)])
    old = new_key(s, name="old")
    clock = FakeClock()
    async with serve(s, clock) as (c, _):
        assert (await c.get("/v1/segments", headers=bearer(old))).status_code == 200
        assert len(revoke_key(admin(s), s, "old")) == 1
        fresh = new_key(s, name="fresh")
        clock.advance(4.0)
        assert (await c.get("/v1/segments", headers=bearer(old))).status_code == 200  # cached
        assert (await c.get("/v1/segments", headers=bearer(fresh))).status_code == 401
        clock.advance(1.5)
        assert (await c.get("/v1/segments", headers=bearer(old))).status_code == 401
        assert (await c.get("/v1/segments", headers=bearer(fresh))).status_code == 200


# ------------------------------------------------------------ body, ops
async def test_bodies_over_the_limit_are_413(make_settings):
    s = make_settings()
    await seed(s, [])
    key = new_key(s)
    limit = s.api_max_body_bytes
    async with serve(s) as (c, _):
        # declared by Content-Length
        big = orjson.dumps({"user_ids": ["x" * (limit // 4)] * 5})
        r = await c.post(
            "/v1/segments/lookup",
            content=big,
            headers={**bearer(key), "content-type": "application/json"},
        )
        assert r.request.headers["content-length"] == str(len(big))
        assert (r.status_code, r.json()["error"]) == (413, "body_too_large")

        # streamed without a length
        async def chunks() -> AsyncIterator[bytes]:
            for _ in range(limit // 1024 + 2):
                yield b" " * 1024

        r = await c.post(
            "/v1/segments/lookup",
            content=chunks(),
            headers={**bearer(key), "content-type": "application/json"},
        )
        assert "content-length" not in r.request.headers
        assert (r.status_code, r.json()["error"]) == (413, "body_too_large")
        # without a key: the size is checked first
        r = await c.post("/v1/segments/lookup", content=big)
        assert r.status_code == 413
        # just under the limit is served
        ids = [f"{i:04d}" + "y" * 200 for i in range(1000)]
        ok = orjson.dumps({"user_ids": ids})
        assert len(ok) < limit
        r = await c.post(
            "/v1/segments/lookup",
            content=ok,
            headers={**bearer(key), "content-type": "application/json"},
        )
        assert r.status_code == 200, r.text
        assert len(r.json()["unknown"]) == 1000


def _closed_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


async def test_readyz_is_503_when_redis_is_unreachable(make_settings):
    s = make_settings(api_redis_url=f"redis://127.0.0.1:{_closed_port()}/0")
    async with serve(s) as (c, _):
        t0 = time.monotonic()
        r = await c.get("/readyz")
        assert r.status_code == 503
        assert r.json()["error"] == "redis_unavailable"
        assert time.monotonic() - t0 < 5
        assert (await c.get("/healthz")).status_code == 200
        r = await c.get("/v1/segments", headers=bearer("sk_whatever"))
        assert (r.status_code, r.json()["error"]) == (503, "redis_unavailable")


async def test_ops_endpoints_need_no_key_and_metrics_count_requests(make_settings):
    s = make_settings()
    await seed(s, [rec("u:alice", 1)])
    key = new_key(s)
    async with serve(s) as (c, _):
        assert (await c.get("/healthz")).json() == {"status": "ok"}
        r = await c.get("/readyz")
        assert (r.status_code, r.json()) == (200, {"status": "ready"})
        for user in ("alice", "alice", "ghost"):
            await c.get(f"/v1/users/{user}/segment", headers=bearer(key))
        await c.get("/v1/segments")
        await c.get("/no/such/route")
        big = b'{"user_ids": ["' + b"x" * 300_000 + b'"]}'
        too_big = await c.post("/v1/segments/lookup", content=big, headers=bearer(key))
        assert too_big.status_code == 413  # refused before routing: still its route's count
        r = await c.get("/metrics")
        assert r.status_code == 200
        assert r.headers["content-type"].startswith("text/plain")
    samples = {
        (sm.name, tuple(sorted(sm.labels.items()))): sm.value
        for fam in text_string_to_metric_families(r.text)
        for sm in fam.samples
    }
    route = "/v1/users/{user_id:path}/segment"

    def count(route: str, status: str, method: str = "GET") -> float:
        labels = (("method", method), ("route", route), ("status", status))
        return samples.get(("segstream_api_requests_total", labels), 0.0)

    assert count(route, "200") == 2
    assert count(route, "404") == 1
    assert count("/v1/segments", "401") == 1
    assert count("/healthz", "200") == 1
    assert count("unmatched", "404") == 1
    assert count("/v1/segments/lookup", "413", "POST") == 1
    assert samples[("segstream_api_request_seconds_count", (("route", route),))] == 3


async def test_openapi_documents_the_routes_and_bearer_auth(make_settings):
    s = make_settings()
    async with serve(s) as (c, _):
        r = await c.get("/openapi.json")
    assert r.status_code == 200
    doc = r.json()
    assert {
        "/v1/users/{user_id}/segment",
        "/v1/segments/lookup",
        "/v1/segments",
        "/v1/segments/{segment_id}/members",
        "/healthz",
        "/readyz",
    } <= set(doc["paths"])
    schemes = doc["components"]["securitySchemes"]
    assert any(v.get("scheme", "").lower() == "bearer" for v in schemes.values())
    for path, ops in doc["paths"].items():  # every /v1 operation names a declared scheme
        for op in ops.values() if path.startswith("/v1/") else ():
            assert [name for sec in op["security"] for name in sec] == ["HTTPBearer"], path
            assert set(schemes) == {"HTTPBearer"}
    (param,) = doc["paths"]["/v1/users/{user_id}/segment"]["get"]["parameters"]
    assert (param["name"], param["in"], param["schema"]["maxLength"]) == ("user_id", "path", 1024)
    body = doc["paths"]["/v1/segments/lookup"]["post"]["requestBody"]
    schema = body["content"]["application/json"]["schema"]
    assert schema["required"] == ["user_ids"]
    assert schema["properties"]["user_ids"]["maxItems"] == 1000


async def test_the_api_works_as_the_read_only_redis_user_deploy_makes(make_settings, redis_users):
    """The ACL user deploy/local/up makes (segapi): it reads seg:* and nothing else."""
    s = make_settings(api_redis_url=redis_users["SEGSTREAM_API_REDIS_URL"])
    await seed(s, [rec("u:alice", 1), rec("u:bob", 1)])
    key = new_key(s, "segments:read", "members:read")
    async with serve(s) as (c, rt):
        assert (await c.get("/readyz")).status_code == 200
        r = await c.get("/v1/users/alice/segment", headers=bearer(key))
        assert r.json()["segment"] == 1
        r = await c.post("/v1/segments/lookup", json={"user_ids": ["bob"]}, headers=bearer(key))
        assert set(r.json()["results"]) == {"bob"}
        r = await c.get("/v1/segments", headers=bearer(key))
        assert [x["size"] for x in r.json()] == [0, 2, 0]
        r = await c.get("/v1/segments/1/members", headers=bearer(key))
        assert sorted(r.json()["members"]) == ["u:alice", "u:bob"]
        with pytest.raises(redis.exceptions.NoPermissionError):
            await rt.client.set(Keys(s).user("u:alice"), "x")
        with pytest.raises(redis.exceptions.NoPermissionError):
            await rt.client.get("not-segstream")
        with pytest.raises(redis.exceptions.NoPermissionError):  # writing scripts: no
            await rt.client.eval("return 1", 0)
        # the ACL refuses the write before Redis's read-only script rule would
        with pytest.raises(redis.exceptions.ResponseError, match=r"can't run this command"):
            await rt.client.eval_ro(
                "return redis.call('SET', KEYS[1], 'x')", 1, Keys(s).user("u:alice")
            )
        admin(s).script_flush()  # a flushed script cache: the lookup loads it again
        r = await c.get("/v1/users/alice/segment", headers=bearer(key))
        assert (r.status_code, r.json()["segment"]) == (200, 1)


def test_segstream_api_with_two_worker_processes_serves_and_stops(cli_env, tmp_path, api_server):
    s = cli_env
    asyncio.run(seed(s, [rec("u:alice", 1), rec("u:bob", 2)]))
    key = new_key(s)
    log = tmp_path / "api.log"
    with (
        api_server(log, {}, ("--workers", "2")) as api,
        httpx.Client(base_url=api.base, headers=bearer(key), timeout=5) as c,
    ):
        for _ in range(20):  # connections land on either process
            assert c.get("/v1/users/alice/segment").json()["segment"] == 1
            assert c.get("/v1/users/bob/segment").json()["segment"] == 2
    assert api.proc.returncode in (0, -signal.SIGTERM), log.read_text()
    assert log.read_text().count("Application startup complete") == 2


# ---------------------------------------------------------------------- CLI
@pytest.fixture
def cli_env(make_settings, monkeypatch) -> Settings:
    s = make_settings()  # first: the servers' addresses come from the environment
    for name in list(os.environ):
        if name.startswith("SEGSTREAM_"):
            monkeypatch.delenv(name)
    monkeypatch.setenv("SEGSTREAM_NAMESPACE", s.namespace)
    monkeypatch.setenv("SEGSTREAM_REDIS_URL", s.redis_url.get_secret_value())
    monkeypatch.setenv("SEGSTREAM_KAFKA_BOOTSTRAP", s.kafka_bootstrap)
    return s


def test_keys_cli_creates_lists_and_revokes_keys_storing_only_hashes(cli_env):
    s = cli_env
    runner = CliRunner()
    result = runner.invoke(
        cli_app,
        ["keys", "create", "--scope", "segments:read", "--scope", "members:read",
         "--rate", "25", "--name", "crm-sync"],
    )  # fmt: skip
    assert result.exit_code == 0, result.output
    key = result.stdout.strip()
    assert re.fullmatch(r"sk_[A-Za-z0-9_\-]{43}", key)
    stored = admin(s).hgetall(apikeys_key(s))
    assert list(stored) == [hashlib.sha256(key.encode()).hexdigest().encode()]
    record = json.loads(next(iter(stored.values())))
    assert record["name"] == "crm-sync"
    assert sorted(record["scopes"]) == ["members:read", "segments:read"]
    assert record["rate_per_s"] == 25
    assert key.encode() not in b"".join([*stored, *stored.values()])

    dup = runner.invoke(
        cli_app, ["keys", "create", "--scope", "segments:read", "--name", "crm-sync"]
    )
    assert dup.exit_code == 1
    assert "exists" in dup.output
    bad = runner.invoke(cli_app, ["keys", "create", "--scope", "segments:write"])
    assert bad.exit_code == 1
    assert "unknown scope" in bad.output

    listed = runner.invoke(cli_app, ["keys", "list", "--json"])
    assert listed.exit_code == 0, listed.output
    rows = json.loads(listed.stdout)
    assert [(r["name"], r["scopes"], r["rate_per_s"]) for r in rows] == [
        ("crm-sync", ["members:read", "segments:read"], 25)
    ]
    assert key not in listed.output
    table = runner.invoke(cli_app, ["keys", "list"], env={"COLUMNS": "200"})
    assert "crm-sync" in table.stdout and key not in table.stdout

    assert runner.invoke(cli_app, ["keys", "revoke", "crm-sync"]).exit_code == 0
    assert admin(s).hlen(apikeys_key(s)) == 0
    gone = runner.invoke(cli_app, ["keys", "revoke", "crm-sync"])
    assert gone.exit_code == 1
    assert "no key named" in gone.output


def test_segstream_api_serves_over_http(cli_env, tmp_path, api_server):
    """``segstream api`` as a real uvicorn server: lookups, a streamed 413, graceful SIGTERM."""
    s = cli_env
    asyncio.run(seed(s, [rec("u:alice", 1)]))
    key = new_key(s)
    log = tmp_path / "api.log"
    with (
        api_server(log, {"SEGSTREAM_API_MAX_BODY_BYTES": "4096"}) as api,
        httpx.Client(base_url=api.base, headers=bearer(key), timeout=5) as c,
    ):
        r = c.get("/v1/users/alice/segment")
        assert (r.status_code, r.json()["segment_name"]) == (200, "Loyal big spenders")
        assert r.headers["content-type"] == "application/json"
        assert "server" not in r.headers
        r = c.get("/v1/users/nobody/segment")
        assert (r.status_code, r.json()["error"]) == (404, "unknown_user")
        r = c.post(
            "/v1/segments/lookup",
            content=iter([b'{"user_ids": ["', b"z" * 3000, b"z" * 3000, b'"]}']),
            headers={"content-type": "application/json"},
        )
        assert (r.status_code, r.json()["error"]) == (413, "body_too_large")
    # uvicorn shuts down gracefully, then re-raises the signal it caught
    assert api.proc.returncode in (0, -signal.SIGTERM), log.read_text()
    assert "Application shutdown complete" in log.read_text()


def test_api_keys_come_back_with_rebuild_redis_and_revoked_ones_do_not(cli_env):
    s = cli_env
    runner = CliRunner()
    made = {}
    for name in ("keep", "drop"):
        result = runner.invoke(
            cli_app, ["keys", "create", "--scope", "segments:read", "--name", name]
        )
        assert result.exit_code == 0, result.output
        made[name] = hashlib.sha256(result.stdout.strip().encode()).hexdigest()
    assert runner.invoke(cli_app, ["keys", "revoke", "drop"]).exit_code == 0
    stored = {k.decode(): v for k, v in read(s, s.topic("api-keys")) if k}
    assert stored[made["keep"]] is not None and stored[made["drop"]] is None  # tombstone
    before = admin(s).hgetall(apikeys_key(s))
    assert list(before) == [made["keep"].encode()]

    admin(s).delete(apikeys_key(s))  # Redis lost its keys
    done = runner.invoke(cli_app, ["rebuild-redis"])
    assert done.exit_code == 0, done.output
    assert "1 API keys" in done.stdout
    assert admin(s).hgetall(apikeys_key(s)) == before  # the revoked key stays revoked
