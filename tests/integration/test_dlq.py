"""``segstream dlq show`` and ``replay`` on the real broker, with real workers: records
refused for an unknown schema version are replayed after the worker learns it."""

from __future__ import annotations

import os
import subprocess
import sys
import uuid
from collections.abc import Callable
from pathlib import Path

import orjson
import pytest

from segstream.consumers.dlq import show, without_redacted_email
from segstream.consumers.queries import lookup_users
from segstream.models.synthetic import Generator
from segstream.schemas.privacy import REDACTED_EMAIL, hash_email_field
from segstream.schemas.settings import Settings
from segstream.streams.produce import send_all
from segstream.streams.topics import ensure_topics

pytestmark = [pytest.mark.integration, pytest.mark.e2e]

TS = 1_767_225_600_000  # 2026-01-01


def page_view(event_id: str, user: str, **extra: object) -> bytes:
    return orjson.dumps(
        {"event_id": event_id, "type": "page_view", "ts": TS, "user_id": user}
        | {"session_id": f"s-{user}", "page": "/pricing", "channel": "organic"}
        | extra
    )


def cli(settings: Settings, *args: str, env: dict[str, str] | None = None) -> str:
    done = subprocess.run(
        [sys.executable, "-m", "segstream.consumers.cli", *args],
        env={**os.environ, "SEGSTREAM_NAMESPACE": settings.namespace, **(env or {})},
        capture_output=True,
        text=True,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    return done.stdout


def test_without_redacted_email_drops_only_the_redacted_field() -> None:
    raw = orjson.dumps({"user_id": "u", "email": REDACTED_EMAIL, "page": "/x"})
    value, removed = without_redacted_email(raw)
    assert removed and orjson.loads(value) == {"user_id": "u", "page": "/x"}
    assert without_redacted_email(b"{not json") == (b"{not json", False)
    assert without_redacted_email(b"[1]") == (b"[1]", False)
    plain = orjson.dumps({"user_id": "u"})
    assert without_redacted_email(plain) == (plain, False)


def test_letters_refused_for_a_schema_version_are_replayed_after_the_fix(
    servers: None, tmp_path: Path, segmented: Callable[..., None]
) -> None:
    s = Settings(namespace=f"dl{uuid.uuid4().hex[:8]}", metrics_port=0)
    ensure_topics(s)
    g = Generator(users=60, seed=8)
    key = s.email_hash_key.get_secret_value().encode()
    population = [
        (e.source, e.key.encode(), orjson.dumps(hash_email_field(e.value, key))) for e in g.events()
    ]
    future = [  # schema version 3: not known to the worker yet
        ("web", b"v3-a", page_view("v3-1", "v3-a", schema_version=3)),
        ("web", b"v3-a", page_view("v3-2", "v3-a", schema_version=3)),
        ("web", b"v3-b", page_view("v3-3", "v3-b", schema_version=3, email="v3.b@example.com")),
    ]
    send_all(s, [*population, *future])
    log = tmp_path / "worker.log"
    segmented(s, log, sorted(g.truth))

    summary = orjson.loads(cli(s, "dlq", "show", "--json", "--since", "1h"))
    assert summary["by_reason"] == {"unknown_schema_version": 3}
    assert summary["by_topic"] == {s.topic("web"): 3}
    assert "v3.b@example.com" not in str(summary)  # redacted in the letter
    table = cli(s, "dlq", "show", "--since", "1h")
    assert "unknown_schema_version" in table and "3 dead letters" in table
    assert show(s, None, ["malformed_json"]).letters == 0

    # the fix: the worker now accepts version 3; the letters go back to their topic
    fixed = {"SEGSTREAM_SCHEMA_VERSIONS": "[1, 2, 3]"}
    dry = cli(s, "dlq", "replay", "--reason", "unknown_schema_version", "--dry-run")
    assert "would replay 3 letters" in dry
    out = cli(s, "dlq", "replay", "--reason", "unknown_schema_version")
    assert "replayed 3 letters (unknown_schema_version 3)" in out
    assert "1 of them without their redacted email field" in out
    out = cli(s, "dlq", "replay", "--reason", "unknown_schema_version")  # twice: harmless
    segmented(s, tmp_path / "fixed.log", ["u:v3-a", "u:v3-b"], env=fixed)

    lines, unknown = lookup_users(s, ["u:v3-a", "u:v3-b"])
    assert unknown == []
    features = {line["profile"]: line["features"] for line in lines}
    # replayed twice, counted once: two page views in one session for v3-a
    assert features["u:v3-a"]["pages_per_session"] == 2.0
    assert features["u:v3-b"]["pages_per_session"] == 1.0
    after = show(s, None)
    assert after.by_reason == {"unknown_schema_version": 3}  # none refused again
