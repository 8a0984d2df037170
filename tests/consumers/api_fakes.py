"""An in-memory stand-in for the API's Redis client, for unit tests of the whole app.

It answers the commands the API sends (HGETALL, SSCAN, SCARD and HMGET in a pipeline,
EVALSHA_RO/EVAL_RO of the lookup script, PING) from dicts, so the real routes, reader,
key cache and rate limiter run over it: ``create_app(settings, redis=FakeRedis(settings))``.
"""

from __future__ import annotations

from typing import Any

import orjson
from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import NoPermissionError

from segstream.consumers.api_keys import SCOPES, ApiKey, apikeys_key, hash_key
from segstream.consumers.redis_view import Keys, format_scores
from segstream.schemas.settings import Settings

KEY = "sk_openapi-test-key-with-every-scope"
SEGMENTS_ONLY = "sk_openapi-test-key-without-members"
MEMBERS_ONLY = "sk_openapi-test-key-without-segments"
SLOW = "sk_openapi-test-key-one-request-a-minute"
LISTPACK_ENTRIES = 128  # Redis's set-max-listpack-entries

CATALOG: dict[int, dict[str, Any]] = {
    0: {"id": 0, "name": "Bargain hunters", "share": 0.5, "version": 7,
        "centroid": {"frequency_30d": 2.0}, "z": {"frequency_30d": -0.3}},
    1: {"id": 1, "name": "Loyal big spenders", "share": 0.3, "version": 7,
        "centroid": {"frequency_30d": 9.5}, "z": {"frequency_30d": 2.1}},
    2: {"id": 2, "name": "Dormant", "share": 0.2, "version": 7,
        "centroid": {"frequency_30d": 0.1}, "z": {"frequency_30d": -1.5}},
}  # fmt: skip


class FakeRedis:
    """Hashes, sets and strings in dicts. ``down``: every command fails to connect;
    ``refuse``: Redis refuses every command (an ACL user without the permission)."""

    def __init__(self, settings: Settings) -> None:
        self.keys = Keys(settings)
        self.hashes: dict[str, dict[bytes, bytes]] = {}
        self.sets: dict[str, set[bytes]] = {}
        self.strings: dict[str, bytes] = {}
        self.down = False
        self.refuse = False
        apikeys = self.hashes.setdefault(apikeys_key(settings), {})
        for key, scopes, rate in (
            (KEY, SCOPES, 1e9),
            (SEGMENTS_ONLY, ("segments:read",), 1e9),
            (MEMBERS_ONLY, ("members:read",), 1e9),
            (SLOW, SCOPES, 1 / 60),
        ):
            record = ApiKey(key, frozenset(scopes), rate, 1_700_000_000_000)
            apikeys[hash_key(key).encode()] = record.to_json()
        self.hashes[self.keys.segments] = {
            str(sid).encode(): orjson.dumps(seg) for sid, seg in CATALOG.items()
        }

    def _check(self) -> None:
        if self.down:
            raise RedisConnectionError("fake Redis is down")
        if self.refuse:
            raise NoPermissionError("NOPERM this user has no permissions to run this command")

    # ------------------------------------------------------------ writes (test setup)
    def add_profile(self, profile: str, segment: int, alias_of: str | None = None) -> None:
        if alias_of is not None:
            self.strings[self.keys.alias(profile)] = alias_of.encode()
            return
        scores = {segment: 0.75, (segment + 1) % 3: 0.25}
        self.hashes[self.keys.user(profile)] = {
            b"s": str(segment).encode(),
            b"c": format_scores(scores).encode(),
            b"v": b"7",
            b"t": b"1700000000000",
            b"q": b"1",
        }
        self.sets.setdefault(self.keys.members(segment), set()).add(profile.encode())
        health = self.hashes.setdefault(self.keys.health(segment), {})
        health[b"r"] = str(int(health.get(b"r", b"0")) + 1999).encode()

    # --------------------------------------------------------------------- reads
    async def ping(self) -> bool:
        self._check()
        return True

    async def hgetall(self, key: str) -> dict[bytes, bytes]:
        self._check()
        return dict(self.hashes.get(key, {}))

    async def sscan(self, key: str, cursor: int = 0, count: int = 10) -> tuple[int, list[bytes]]:
        """A small set whole, whatever COUNT (as Redis does with a listpack); else batches of
        ``count`` from an index into the sorted members."""
        self._check()
        members = sorted(self.sets.get(key, set()))
        if len(members) <= LISTPACK_ENTRIES:
            return 0, members
        batch = members[cursor : cursor + count]
        nxt = cursor + count
        return (0 if nxt >= len(members) else nxt), batch

    def pipeline(self, transaction: bool = True) -> FakePipeline:
        return FakePipeline(self)

    async def evalsha_ro(self, sha: str, numkeys: int, *args: Any) -> list[list[bytes]]:
        """The lookup script (consumers/lookup_segment.lua), in Python."""
        self._check()
        user_prefix, alias_prefix, max_reads = str(args[0]), str(args[1]), int(args[2])
        out: list[list[bytes]] = []
        i = 3
        while i < len(args):
            n = int(args[i])
            hit: list[bytes] = []
            for profile in args[i + 1 : i + 1 + n]:
                found = self._find(str(profile), user_prefix, alias_prefix, max_reads)
                if found:
                    hit = found
                    break
            out.append(hit)
            i += n + 1
        return out

    eval_ro = evalsha_ro

    def _find(self, profile: str, user_prefix: str, alias_prefix: str, reads: int) -> list[bytes]:
        seen: set[str] = set()
        for _ in range(reads):
            seen.add(profile)
            h = self.hashes.get(user_prefix + profile)
            if h:
                return [profile.encode(), h[b"s"], h[b"c"], h[b"v"], h[b"t"], h[b"q"]]
            target = self.strings.get(alias_prefix + profile)
            if target is None or target.decode() in seen:
                return []
            profile = target.decode()
        return []

    async def aclose(self) -> None:
        return None


class FakePipeline:
    def __init__(self, redis: FakeRedis) -> None:
        self.redis = redis
        self.calls: list[tuple[str, str, tuple[Any, ...]]] = []

    def scard(self, key: str) -> None:
        self.calls.append(("scard", key, ()))

    def hmget(self, key: str, *fields: str) -> None:
        self.calls.append(("hmget", key, fields))

    async def execute(self) -> list[Any]:
        self.redis._check()
        out: list[Any] = []
        for op, key, fields in self.calls:
            if op == "scard":
                out.append(len(self.redis.sets.get(key, set())))
            else:
                h = self.redis.hashes.get(key, {})
                out.append([h.get(f.encode()) for f in fields])
        return out


def seeded(settings: Settings) -> FakeRedis:
    """Profiles in every segment: 0 and 2 small sets (SSCAN returns them whole: a page can
    end inside the batch), 1 a large one (SSCAN batches of COUNT)."""
    fake = FakeRedis(settings)
    fake.add_profile("u:alice", 1)
    fake.add_profile("a:anon-9", 0)
    for i in range(40):
        fake.add_profile(f"a:anon-{i:02d}-{'é' * i}", 0)
    fake.add_profile("a:alice-phone", 1, alias_of="u:alice")
    for i in range(250):
        fake.add_profile(f"u:m{i:03d}", 1)
    fake.add_profile("e:" + "ab" * 32, 2)
    fake.add_profile("u:Zoë ☃ 𝄞", 2)
    fake.add_profile("a:" + "𝄞" * 256, 2)  # the longest id an event holds
    return fake
