"""The API's OpenAPI document against the API itself (no servers: an in-memory Redis).

A schema-driven fuzzer (schemathesis) reads the document from the app (/openapi.json over
ASGI) and sends every operation requests made from it, valid and invalid ones; every
answer must be a status the document declares for that operation, with a body its schema
allows, never a 5xx; a valid request must not be refused (422), an invalid one must be.
Deterministic (a fixed seed, derandomized) and small, so it runs in seconds.
"""

from __future__ import annotations

import os
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

import httpx
import pytest
import schemathesis
from api_fakes import KEY, MEMBERS_ONLY, SEGMENTS_ONLY, SLOW, FakeRedis, seeded
from hypothesis import HealthCheck, settings
from schemathesis.config import SchemathesisConfig

from segstream.consumers.api import create_app
from segstream.consumers.api.pages import encode_cursor
from segstream.schemas.settings import Settings

MEMBERS = "/v1/segments/{segment_id}/members"


def fuzz_config() -> SchemathesisConfig:
    """Every check schemathesis has, valid and invalid data, a fixed seed; the key to use."""
    return SchemathesisConfig.from_dict(
        {
            "seed": 13,
            "generation": {"mode": "all", "deterministic": True, "database": "none"},
            "auth": {"openapi": {"HTTPBearer": {"bearer": KEY}}},
        }
    )


def fuzz_settings() -> Settings:
    """Defaults, whatever SEGSTREAM_* the environment holds (read at collection)."""
    saved = {k: os.environ.pop(k) for k in list(os.environ) if k.startswith("SEGSTREAM_")}
    try:
        return Settings(namespace="openapi")
    finally:
        os.environ.update(saved)


# Loaded when the module is collected: schemathesis makes one test per operation from it.
# Loading starts the app's lifespan (on the in-memory Redis; schemathesis ends it at exit).
FUZZ_SETTINGS = fuzz_settings()
APP = create_app(FUZZ_SETTINGS, redis=seeded(FUZZ_SETTINGS))  # type: ignore[arg-type]
schema = schemathesis.openapi.from_asgi("/openapi.json", APP, config=fuzz_config())


@schema.parametrize()
@settings(
    max_examples=40,
    derandomize=True,
    database=None,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.filter_too_much],
)
def test_every_answer_is_one_the_document_declares(case):
    case.call_and_validate()


# -------------------------------------- every answer there is, against the document
ERROR_REF = "#/components/schemas/ErrorOut"
V1 = {
    ("GET", "/v1/users/{user_id}/segment"): {401, 403, 404, 422, 429, 500, 503},
    ("POST", "/v1/segments/lookup"): {401, 403, 413, 422, 429, 500, 503},
    ("GET", "/v1/segments"): {401, 403, 429, 500, 503},
    ("GET", MEMBERS): {401, 403, 404, 422, 429, 500, 503},
}


def test_every_error_an_operation_can_answer_is_declared_with_the_error_body():
    doc = APP.openapi()
    for (method, path), statuses in V1.items():
        responses = doc["paths"][path][method.lower()]["responses"]
        for status in statuses:
            body = responses[str(status)]["content"]["application/json"]["schema"]
            assert body == {"$ref": ERROR_REF}, (method, path, status)
    assert set(doc["paths"]["/readyz"]["get"]["responses"]) == {"200", "503"}


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"


@asynccontextmanager
async def serving(fake: FakeRedis, **overrides: Any) -> AsyncIterator[httpx.AsyncClient]:
    app = create_app(Settings(namespace="openapi", **overrides), redis=fake)  # type: ignore[arg-type]
    async with (
        app.router.lifespan_context(app),
        httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://api") as c,
    ):
        yield c


def assert_documented(method: str, path: str, response: httpx.Response) -> None:
    """The status is one the operation declares, and the body matches its schema."""
    operation = schema[path][method]
    assert operation.responses.find_by_status_code(response.status_code) is not None, (
        f"{method} {path} answered {response.status_code}, not in the document"
    )
    assert response.headers["content-type"] == "application/json"
    operation.validate_response(response)


def bearer(key: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {key}"}


USER, LOOKUP = "/v1/users/{user_id}/segment", "/v1/segments/lookup"
Request = tuple[str, str, str, dict[str, Any]]  # method, path template, url, httpx arguments
REQUESTS: list[Request] = [
    ("GET", USER, "/v1/users/alice/segment", {}),
    ("POST", LOOKUP, LOOKUP, {"json": {"user_ids": ["alice"]}}),
    ("GET", "/v1/segments", "/v1/segments", {}),
    ("GET", MEMBERS, "/v1/segments/1/members", {}),
]


def each(
    status: int, key: str | None, requests: list[Request] = REQUESTS
) -> list[tuple[int, str, str, str, dict[str, Any]]]:
    """``requests`` sent with ``key`` (None: without one), and the status each must get."""
    auth = {"headers": bearer(key)} if key else {}
    return [(status, m, t, url, {**x, **auth}) for m, t, url, x in requests]


@pytest.fixture
def clean_env(monkeypatch):
    for name in list(os.environ):
        if name.startswith("SEGSTREAM_"):
            monkeypatch.delenv(name)


@pytest.mark.anyio
@pytest.mark.parametrize(("method", "template", "url", "extra"), REQUESTS)
async def test_over_the_rate_is_a_documented_429(clean_env, method, template, url, extra):
    async with serving(seeded(FUZZ_SETTINGS)) as c:  # a key of one request a minute
        first = await c.request(method, url, headers=bearer(SLOW), **extra)
        second = await c.request(method, url, headers=bearer(SLOW), **extra)
    assert (first.status_code, second.status_code) == (200, 429)
    assert second.headers["retry-after"] == "60"
    assert_documented(method, template, second)


@pytest.mark.anyio
async def test_answers_of_every_kind_are_documented(clean_env):
    fake = seeded(FUZZ_SETTINGS)
    async with serving(fake, api_max_body_bytes=1024) as c:
        long_cursor = encode_cursor(2**64 - 1, 1000, "\U0001d11e" * 1024)
        too_long = long_cursor + "A"
        cases = [
            *each(200, KEY),
            *each(401, None),
            *each(401, "sk_not-a-key"),
            *each(403, MEMBERS_ONLY, REQUESTS[:3]),
            *each(403, SEGMENTS_ONLY, REQUESTS[3:]),
            *each(404, KEY, [("GET", MEMBERS, "/v1/segments/99/members", {})]),
            *each(404, KEY, [("GET", USER, "/v1/users/nobody/segment", {})]),
            *each(422, KEY, [
                ("GET", MEMBERS, "/v1/segments/1/members", {"params": {"cursor": "1.5.Y"}}),
                ("GET", MEMBERS, "/v1/segments/1/members", {"params": {"cursor": too_long}}),
                ("GET", MEMBERS, "/v1/segments/x/members", {}),
                ("GET", USER, f"/v1/users/{'x' * 1025}/segment", {}),
                ("POST", LOOKUP, LOOKUP, {"json": {"user_ids": []}}),
            ]),
            *each(413, KEY, [("POST", LOOKUP, LOOKUP, {"json": {"user_ids": ["u" * 1100]}})]),
        ]  # fmt: skip
        for status, method, template, url, extra in cases:
            r = await c.request(method, url, **extra)
            assert r.status_code == status, (method, url, r.text[:300])
            assert_documented(method, template, r)
        # the longest cursor there is: served (no such place: an empty last page)
        r = await c.get(
            "/v1/segments/1/members", params={"cursor": long_cursor}, headers=bearer(KEY)
        )
        assert (r.status_code, r.json()) == (200, {"members": [], "next_cursor": None})
        assert_documented("GET", MEMBERS, r)
        fake.refuse = True  # an ACL user without the permission: 500 redis_error
        for method, template, url, extra in REQUESTS:
            r = await c.request(method, url, headers=bearer(KEY), **extra)
            assert (r.status_code, r.json()["error"]) == (500, "redis_error"), url
            assert_documented(method, template, r)
        fake.refuse, fake.down = False, True  # 503 redis_unavailable
        for method, template, url, extra in [*REQUESTS, ("GET", "/readyz", "/readyz", {})]:
            r = await c.request(method, url, headers=bearer(KEY), **extra)
            assert (r.status_code, r.json()["error"]) == (503, "redis_unavailable"), url
            assert_documented(method, template, r)
