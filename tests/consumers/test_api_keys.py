"""consumers/api_keys.py without Redis: key format and hashing, scopes, token buckets."""

from __future__ import annotations

import hashlib
import os
import re

import orjson
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from segstream.consumers.api_keys import (
    SCOPES,
    ApiKey,
    ApiKeyError,
    RateLimiter,
    TokenBucket,
    apikeys_key,
    generate_key,
    hash_key,
    parse_keys,
    retry_after,
    validate_scopes,
)
from segstream.schemas.settings import Settings


@pytest.fixture(autouse=True)
def clean_env(monkeypatch):
    for name in list(os.environ):
        if name.startswith("SEGSTREAM_"):
            monkeypatch.delenv(name)


class FakeClock:
    def __init__(self, t: float = 1000.0) -> None:
        self.t = t

    def __call__(self) -> float:
        return self.t

    def advance(self, s: float) -> None:
        self.t += s


# ------------------------------------------------------------------ keys
def test_generated_keys_are_prefixed_url_safe_and_carry_256_bits():
    key = generate_key()
    assert re.fullmatch(r"sk_[A-Za-z0-9_\-]{43}", key), key


def test_generated_keys_differ():
    keys = {generate_key() for _ in range(200)}
    assert len(keys) == 200


def test_hash_is_sha256_hex_of_the_key():
    key = "sk_example"
    assert hash_key(key) == hashlib.sha256(b"sk_example").hexdigest()
    assert re.fullmatch(r"[0-9a-f]{64}", hash_key(generate_key()))


def test_hash_does_not_contain_the_key_and_differs_per_key():
    a, b = generate_key(), generate_key()
    assert hash_key(a) != hash_key(b)
    assert a[3:] not in hash_key(a)
    assert hash_key(a) == hash_key(a)


def test_keys_live_under_the_namespace_seg_prefix():
    assert apikeys_key(Settings(namespace="shop")) == "seg:shop:apikeys"


# ---------------------------------------------------------------- scopes
def test_known_scopes_are_accepted():
    assert validate_scopes(["segments:read"]) == frozenset({"segments:read"})
    assert validate_scopes(["members:read", "segments:read", "members:read"]) == frozenset(SCOPES)


@pytest.mark.parametrize("scopes", [[], ["segments:write"], ["segments:read", "admin"]])
def test_unknown_or_no_scopes_are_refused(scopes):
    with pytest.raises(ApiKeyError):
        validate_scopes(scopes)


def test_a_key_allows_exactly_its_scopes():
    key = ApiKey("k", frozenset({"segments:read"}), 10.0, 1)
    assert key.allows("segments:read")
    assert not key.allows("members:read")
    assert not key.allows("segments")


def test_record_round_trips_through_json_without_the_secret():
    rec = ApiKey("crm-sync", frozenset(SCOPES), 2.5, 1_700_000_000_000)
    raw = rec.to_json()
    assert ApiKey.from_json(raw) == rec
    assert set(orjson.loads(raw)) == {"name", "scopes", "rate_per_s", "created_ms"}


def test_parse_keys_skips_unreadable_entries():
    good = ApiKey("a", frozenset({"segments:read"}), 1.0, 5)
    raw = {
        b"aa" * 32: good.to_json(),
        b"bb" * 32: b"not json",
        b"cc" * 32: b'{"name": "x"}',
    }
    assert parse_keys(raw) == {"aa" * 32: good}


# ---------------------------------------------------------- token bucket
def test_bucket_allows_a_burst_of_its_rate_then_refuses():
    clock = FakeClock()
    bucket = TokenBucket(2.0, clock=clock)
    assert bucket.take() == 0.0
    assert bucket.take() == 0.0
    wait = bucket.take()
    assert wait == pytest.approx(0.5)


def test_bucket_refills_at_its_rate():
    clock = FakeClock()
    bucket = TokenBucket(4.0, clock=clock)
    for _ in range(4):
        assert bucket.take() == 0.0
    assert bucket.take() > 0
    clock.advance(0.25)  # one token
    assert bucket.take() == 0.0
    assert bucket.take() > 0


def test_bucket_never_saves_more_than_its_burst():
    clock = FakeClock()
    bucket = TokenBucket(3.0, clock=clock)
    clock.advance(3600)
    allowed = sum(1 for _ in range(10) if bucket.take() == 0.0)
    assert allowed == 3


def test_slow_rates_still_allow_one_request():
    clock = FakeClock()
    bucket = TokenBucket(0.1, clock=clock)
    assert bucket.take() == 0.0
    assert bucket.take() == pytest.approx(10.0)
    clock.advance(10.0)
    assert bucket.take() == 0.0


def test_refused_requests_do_not_consume_tokens():
    clock = FakeClock()
    bucket = TokenBucket(1.0, clock=clock)
    assert bucket.take() == 0.0
    for _ in range(5):
        assert bucket.take() > 0
    clock.advance(1.0)
    assert bucket.take() == 0.0


@settings(database=None, max_examples=100, deadline=None)
@given(
    rate=st.floats(min_value=0.5, max_value=50),
    steps=st.lists(st.floats(min_value=0, max_value=2), min_size=1, max_size=60),
)
def test_bucket_never_allows_more_than_burst_plus_rate_times_elapsed(rate, steps):
    clock = FakeClock()
    bucket = TokenBucket(rate, clock=clock)
    allowed = 0
    for dt in steps:
        clock.advance(dt)
        allowed += bucket.take() == 0.0
    elapsed = clock.t - 1000.0
    assert allowed <= bucket.burst + rate * elapsed + 1e-9


def test_rate_limiter_keeps_one_bucket_per_key():
    clock = FakeClock()
    limiter = RateLimiter(clock)
    assert limiter.check("a", 1.0) == 0.0
    assert limiter.check("a", 1.0) > 0
    assert limiter.check("b", 1.0) == 0.0  # another key is not affected


def test_rate_limiter_forgets_revoked_keys():
    limiter = RateLimiter(FakeClock())
    limiter.check("a", 1.0)
    limiter.check("b", 1.0)
    limiter.forget_except(["b"])
    assert set(limiter.buckets) == {"b"}


@pytest.mark.parametrize(("wait", "header"), [(0.01, "1"), (0.5, "1"), (1.0, "1"), (1.2, "2")])
def test_retry_after_is_whole_seconds_rounded_up(wait, header):
    assert retry_after(wait) == header
