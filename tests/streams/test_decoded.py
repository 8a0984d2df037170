"""streams.app.Decoded: profiles kept decoded between batches, least recently used first
out, and nothing kept when the capacity is 0."""

from __future__ import annotations

from segstream.models.features import new_profile
from segstream.streams.app import Decoded


def test_least_recently_used_go_first() -> None:
    cache = Decoded(2)
    a, b, c = (new_profile(k) for k in ("u:a", "u:b", "u:c"))
    cache.put(b"a", a)
    cache.put(b"b", b)
    assert cache.get(b"a") is a  # a is now the most recent
    cache.put(b"c", c)
    assert cache.get(b"b") is None
    assert cache.get(b"a") is a and cache.get(b"c") is c
    cache.discard(b"a")
    assert cache.get(b"a") is None
    cache.clear()
    assert cache.get(b"c") is None


def test_capacity_zero_keeps_nothing() -> None:
    cache = Decoded(0)
    cache.put(b"a", new_profile("u:a"))
    assert cache.get(b"a") is None
