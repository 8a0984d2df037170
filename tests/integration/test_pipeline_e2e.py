"""The whole pipeline on the real broker and Redis: one worker run, several checks.

Input: the synthetic stream (planted personas), copies of a share of its events
(in the same batch and much later), malformed records on every source topic,
and a CSV exported "from elsewhere" replayed with --map/--set.
"""

from __future__ import annotations

import csv
import os
import random
import subprocess
import sys
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import httpx
import orjson
import pytest
from sklearn.metrics import adjusted_rand_score

from segstream.consumers.api_keys import admin_client, create_key
from segstream.consumers.queries import lookup_users
from segstream.models.arrival import browsers
from segstream.models.features import FeatureSpace, feature_space
from segstream.models.health import cents, value_of
from segstream.models.oracle import OracleResult
from segstream.models.oracle import run as oracle_run
from segstream.models.synthetic import Generator
from segstream.schemas.parse import EventParser
from segstream.schemas.privacy import hash_email_field
from segstream.schemas.records import (
    DeadLetter,
    SegmentChange,
    SegmentEvent,
    SegmentRecord,
    is_segment_event,
)
from segstream.schemas.settings import Settings
from segstream.streams.produce import send_all
from segstream.streams.topics import ensure_topics

pytestmark = [pytest.mark.integration, pytest.mark.e2e]

Reader = Callable[[Settings, str], list[tuple[bytes | None, bytes | None]]]
USERS = 300
CSV_USERS = 20
RAW_EMAIL = "leak.me@example.com"
BAD = [  # (source, bytes, reason the DLQ must give)
    ("web", b"{not json", "malformed_json"),
    ("web", b"\xff\xfe\x00garbage", "invalid_utf8"),
    (
        "ad",
        b'{"source": "ad", "type": "click", "ts": 1767225600000, "anonymous_id": "x",'
        b' "channel": "meta"}',
        "invalid_field",
    ),  # no event_id
    (
        "crm",
        b'{"event_id": "b1", "schema_version": 9, "type": "purchase",'
        b' "ts": 1767225600000, "user_id": "u"}',
        "unknown_schema_version",
    ),
    ("web", b'{"event_id": "b2", "type": "page_view", "ts": 1767225600000}', "missing_identity"),
    (
        "crm",
        b'{"event_id": "b3", "type": "purchase", "ts": 4102444800000, "user_id": "u"}',
        "ts_in_future",
    ),
    (
        "crm",
        b'{"event_id": "b4", "type": "purchase", "ts": "yesterday", "email": "'
        + RAW_EMAIL.encode()
        + b'"}',
        "invalid_field",
    ),
    ("ad", b"[1, 2, 3]", "not_an_object"),
]


@dataclass
class Run:
    settings: Settings
    generator: Generator
    events: list[tuple[str, bytes, bytes]]
    csv_profiles: list[str]
    worker_log: Path


def _csv(path: Path, end_ms: int) -> list[str]:
    """History exported from another tool (``models.arrival.browsers``, ``CSV_USERS`` of
    them): its own column names, ISO times."""
    profiles = []
    with path.open("w", newline="") as f:
        w = csv.writer(f)
        w.writerow(["Id", "Visitor", "When", "Kind", "Page", "Session"])
        for e in browsers(end_ms, users=CSV_USERS):
            v = e.value
            when = datetime.fromtimestamp(v["ts"] / 1000, tz=UTC).isoformat()
            w.writerow([v["event_id"], e.key, when, v["type"], v["page"], v["session_id"]])
            if "a:" + e.key not in profiles:
                profiles.append("a:" + e.key)
    return profiles


@pytest.fixture(scope="module")
def run(
    servers: None,
    tmp_path_factory: pytest.TempPathFactory,
    segmented: Callable[..., None],
    redis_users: dict[str, str],
) -> Iterator[Run]:
    settings = Settings(namespace=f"e2e{uuid.uuid4().hex[:8]}", metrics_port=0, publish_every_s=2)
    ensure_topics(settings)
    g = Generator(users=USERS, seed=11)
    key = settings.email_hash_key.get_secret_value().encode()
    events = [
        (e.source, e.key.encode(), orjson.dumps(hash_email_field(e.value, key))) for e in g.events()
    ]
    rng = random.Random(3)
    stream: list[tuple[str, bytes | None, bytes]] = []
    for i, ev in enumerate(events):
        stream.append(ev)
        if i % 17 == 0:
            stream.append(ev)  # a copy right behind: same batch
        if i % 41 == 0:
            src, raw, _ = BAD[(i // 41) % len(BAD)]
            stream.append((src, None, raw))
    stream += rng.sample(events, len(events) // 10)  # copies much later: other batches
    stream += [(src, None, raw) for src, raw, _ in BAD]
    send_all(settings, stream)

    tmp = tmp_path_factory.mktemp("e2e")
    csv_path = tmp / "export.csv"
    csv_profiles = _csv(csv_path, g.end_ms)
    env = {**os.environ, "SEGSTREAM_NAMESPACE": settings.namespace}
    subprocess.run(
        [
            sys.executable,
            "-m",
            "segstream.consumers.cli",
            "replay",
            str(csv_path),
            "--source",
            "web",
            "--map",
            "event_id=Id",
            "--map",
            "anonymous_id=Visitor",
            "--map",
            "ts=When",
            "--map",
            "type=Kind",
            "--map",
            "page=Page",
            "--map",
            "session_id=Session",
            "--set",
            "device_type=desktop",
            "--set",
            "channel=organic",
        ],
        check=True,
        env=env,
    )
    log = tmp / "worker.log"
    # five planted personas plus the CSV visitors, who behave like none of them;
    # the worker writes Redis as the ACL user deploy/local made for it
    segmented(
        settings,
        log,
        sorted(g.truth) + csv_profiles,
        env={
            "SEGSTREAM_CLUSTERER": '{"type": "kmeans", "n_clusters": 6}',
            "SEGSTREAM_REDIS_URL": redis_users["SEGSTREAM_REDIS_URL"],
        },
    )
    yield Run(settings, g, events, csv_profiles, log)


def _lookup(run: Run, profiles: list[str]) -> dict[str, dict[str, object]]:
    lines, unknown = lookup_users(run.settings, profiles)
    assert unknown == []
    return {str(line["profile"]): line for line in lines}


def test_users_land_in_segments_matching_the_planted_personas(run: Run) -> None:
    found = _lookup(run, sorted(run.generator.truth))
    keys = sorted(found)
    ari = adjusted_rand_score(
        [run.generator.truth[k] for k in keys], [found[k]["segment"] for k in keys]
    )
    assert len(keys) == USERS
    assert ari >= 0.9, f"ARI {ari:.3f}"


@pytest.fixture(scope="module")
def oracle(run: Run) -> OracleResult:
    """The single-process recomputation of every profile from the generated events."""
    s = run.settings
    parser = EventParser(
        s.email_hash_key.get_secret_value().encode(), now=lambda: datetime.now(tz=UTC)
    )
    return oracle_run([(src, raw) for src, _, raw in run.events], parser, _space(s))


def _space(s: Settings) -> FeatureSpace:
    return feature_space(s.features, s.paid_channels, s.social_channels, s.email_channels)


def test_duplicates_change_nothing_features_equal_the_oracle(
    run: Run, oracle: OracleResult
) -> None:
    space = _space(run.settings)
    found = _lookup(run, sorted(run.generator.truth))
    for profile, line in found.items():
        expected = space.raw(oracle.profiles[profile], oracle.watermark_ms)
        got = line["features"]
        assert isinstance(got, dict)
        for name, value in expected.items():
            assert got[name] == pytest.approx(value, rel=1e-3, abs=1e-3), (profile, name)


def test_malformed_records_reach_the_dlq_with_reasons_and_no_raw_email(
    run: Run, topic_reader: Reader
) -> None:
    letters = [
        DeadLetter.from_json(v)
        for _, v in topic_reader(run.settings, run.settings.topic("dlq"))
        if v
    ]
    interleaved = sum(1 for i in range(len(run.events)) if i % 41 == 0)
    assert len(letters) == len(BAD) + interleaved
    want = {reason for _, _, reason in BAD}
    assert {d.reason for d in letters} == want
    for d in letters:
        assert d.stage == "edge" and d.topic.startswith(run.settings.namespace)
        assert RAW_EMAIL not in d.value and RAW_EMAIL not in d.detail
    by_value = {d.raw_value(): d.reason for d in letters}
    for _, raw, reason in BAD:
        if RAW_EMAIL.encode() not in raw:
            assert by_value[raw] == reason


def test_csv_export_replayed_with_map_and_set_gets_segments(run: Run) -> None:
    found = _lookup(run, run.csv_profiles)
    assert len(found) == CSV_USERS
    for line in found.values():
        features = line["features"]
        assert isinstance(features, dict) and features["pages_per_session"] >= 3


def test_segments_topic_is_the_authoritative_copy_of_redis(run: Run, topic_reader: Reader) -> None:
    latest: dict[bytes, bytes | None] = {}
    for k, v in topic_reader(run.settings, run.settings.topic("segments")):
        assert k is not None
        latest[k] = v
    found = _lookup(run, sorted(run.generator.truth))
    for profile, line in found.items():
        raw = latest[profile.encode()]
        assert raw is not None
        record = SegmentRecord.from_json(raw)
        assert (record.segment, record.version) == (line["segment"], line["model_version"])


def test_every_user_entered_a_segment_once_per_change_with_deterministic_ids(
    run: Run, topic_reader: Reader
) -> None:
    records = [
        orjson.loads(v)
        for _, v in topic_reader(run.settings, run.settings.topic("segment-changes"))
        if v
    ]
    changes = [c for c in records if not is_segment_event(c)]
    ids = [c["id"] for c in changes]
    assert len(ids) == len(set(ids))
    for c in changes:
        assert c["id"] == SegmentChange.make_id(
            c["profile"], c["old"], c["new"], c["seq"], c["version"]
        )
    entered = {c["profile"] for c in changes if c["old"] is None}
    assert set(run.generator.truth) <= entered

    # segment-level events: every segment a user entered was announced when it appeared
    events = [c for c in records if is_segment_event(c)]
    appeared = {e["segment"] for e in events if e["event"] == "appeared"}
    assert {c["new"] for c in changes} <= appeared
    for e in events:
        made = SegmentEvent.make(e["segment"], e["event"], e["version"], e["at_ms"], e["name"])
        assert e["id"] == made.id and (e["event"] == "appeared") == (e["name"] is not None)


def test_lookup_by_an_anonymous_id_follows_the_merge_to_the_customer(run: Run) -> None:
    known = [u for u in run.generator.users if u.user_id][:40]
    lines, unknown = lookup_users(run.settings, [u.anonymous_id for u in known])
    assert unknown == []
    by_anon = {line["user_id"]: line for line in lines}
    customer = _lookup(run, [f"u:{u.user_id}" for u in known])
    for u in known:
        line = by_anon[u.anonymous_id]
        assert line["profile"] == f"u:{u.user_id}"
        assert line["segment"] == customer[f"u:{u.user_id}"]["segment"]


def test_the_api_serves_the_live_segments_as_the_read_only_user(
    run: Run,
    oracle: OracleResult,
    redis_users: dict[str, str],
    api_server: Callable[..., Any],
    tmp_path: Path,
) -> None:
    """A real ``segstream api`` (as the segapi ACL user) agrees with Redis on every user,
    follows merges, and reports segment sizes and health sums that match the oracle."""
    s = run.settings
    key, _ = create_key(admin_client(s), s, ["segments:read", "members:read"], 10_000)
    env = {
        "SEGSTREAM_NAMESPACE": s.namespace,
        "SEGSTREAM_API_REDIS_URL": redis_users["SEGSTREAM_API_REDIS_URL"],
    }
    profiles = sorted(run.generator.truth) + run.csv_profiles
    expected = _lookup(run, profiles)
    auth = {"Authorization": f"Bearer {key}"}
    with (
        api_server(tmp_path / "api.log", env) as api,
        httpx.Client(base_url=api.base, headers=auth, timeout=10) as c,
    ):
        r = c.post("/v1/segments/lookup", json={"user_ids": profiles})
        assert r.status_code == 200, r.text
        assert r.json()["unknown"] == []
        for profile, got in r.json()["results"].items():
            want = expected[profile]
            assert (got["segment"], got["model_version"]) == (
                want["segment"],
                want["model_version"],
            )
        known = next(u for u in run.generator.users if u.user_id)
        r = c.get(f"/v1/users/{known.anonymous_id}/segment")
        assert r.status_code == 200, r.text
        assert r.json()["profile"] == f"u:{known.user_id}"

        catalog = c.get("/v1/segments").json()
        members: dict[int, list[str]] = {}
        for seg in catalog:
            members[seg["id"]] = _all_members(c, seg["id"])
            assert seg["size"] == len(members[seg["id"]]) == seg["health"]["users"]
            assert seg["name"] and seg["description"]
    assert api.proc.returncode in (0, -15), api.log.read_text()

    assert sorted(m for ms in members.values() for m in ms) == sorted(profiles)
    for seg in catalog:
        values = [value_of(oracle.profiles[m]) for m in members[seg["id"]] if m in oracle.profiles]
        assert len(values) == len(set(members[seg["id"]]) - set(run.csv_profiles))
        h, n = seg["health"], len(values)
        revenue = sum(cents(round(v.revenue, 2)) for v in values)
        assert abs(cents(h["revenue"]) - revenue) <= n, seg["id"]
        assert h["converted"] == sum(v.converted for v in values)
        ad_cost = sum(cents(round(v.ad_cost, 2)) for v in values)
        assert abs(cents(h["ad_cost"]) - ad_cost) <= n, seg["id"]


def _all_members(c: httpx.Client, segment: int) -> list[str]:
    out: list[str] = []
    cursor: str | None = "0"
    while cursor is not None:
        page = c.get(f"/v1/segments/{segment}/members", params={"cursor": cursor, "limit": 50})
        assert page.status_code == 200, page.text
        out += page.json()["members"]
        cursor = page.json()["next_cursor"]
    return out


def test_every_model_cycle_left_its_figures_in_the_history_stream(run: Run) -> None:
    from segstream.consumers.queries import reader

    r = reader(run.settings)
    history = r.history()
    assert history, "no history entries"
    versions = [h["version"] for h in history]
    assert versions == sorted(versions) and versions[-1] == r.model()["version"]
    last = history[-1]
    assert {int(k) for k in last["segments"]} == set(r.segments())
    users = sum(s["users"] for s in last["segments"].values())
    assert 0 < users <= USERS + CSV_USERS  # sizes as of that cycle (later writes not in it)


def _view(settings: Settings) -> dict[str, object]:
    """Every key of the namespace's live view, by type (history and API keys left out)."""
    import redis

    client = redis.Redis.from_url(settings.redis_url.get_secret_value())
    out: dict[str, object] = {}
    for key in client.scan_iter(match=f"seg:{settings.namespace}:*", count=1000):
        name = key.decode()
        kind = client.type(key).decode()
        if name.endswith((":history", ":apikeys")):
            continue
        if kind == "hash":
            out[name] = client.hgetall(key)
        elif kind == "set":
            out[name] = client.smembers(key)
        else:
            out[name] = client.get(key)
    client.close()
    return out


def test_redis_flushed_then_rebuilt_from_kafka_is_the_same_view(
    run: Run, redis_users: dict[str, str]
) -> None:
    """It empties the namespace in Redis and writes it back: later tests see the rebuilt
    view, which must be the same."""
    import redis

    before = _view(run.settings)
    assert any(":alias:" in k for k in before) and any(":health:" in k for k in before)
    client = redis.Redis.from_url(run.settings.redis_url.get_secret_value())
    for key in before:
        client.delete(key)
    client.close()
    assert _view(run.settings) == {}
    env = {
        **os.environ,
        "SEGSTREAM_NAMESPACE": run.settings.namespace,
        "SEGSTREAM_REDIS_URL": redis_users["SEGSTREAM_REDIS_URL"],  # as the worker's user
    }
    done = subprocess.run(
        [sys.executable, "-m", "segstream.consumers.cli", "rebuild-redis"],
        env=env, capture_output=True, text=True, check=False,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    assert "rebuilt" in done.stdout
    assert _view(run.settings) == before


def test_the_worker_log_holds_no_raw_email_and_no_secret(
    run: Run, redis_users: dict[str, str]
) -> None:
    text = run.worker_log.read_text()
    assert "worker" in text.lower() and len(text) > 1000  # a real log was read
    assert RAW_EMAIL not in text
    assert "@example.com" not in text
    s = run.settings
    secrets = [
        s.email_hash_key.get_secret_value(),
        s.model_secret.get_secret_value(),
        redis_users["SEGSTREAM_REDIS_URL"].split("@")[0].split(":")[-1],  # the password
    ]
    for secret in secrets:
        assert secret not in text
