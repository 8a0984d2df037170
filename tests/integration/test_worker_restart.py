"""A stopped and restarted worker resumes: state recovered exactly, the model goes on learning."""

from __future__ import annotations

import uuid
from collections.abc import Callable
from pathlib import Path
from typing import Any

import orjson
import pytest

from segstream.consumers.queries import lookup_users
from segstream.consumers.sample import produce_sample
from segstream.models import checkpoint
from segstream.models.segments import Snapshot
from segstream.schemas.settings import Settings
from segstream.streams.produce import send_all

Reader = Callable[[Settings, str], list[tuple[bytes | None, bytes | None]]]
pytestmark = [pytest.mark.integration, pytest.mark.e2e]


def _latest_checkpoint(settings: Settings, reader: Reader) -> Snapshot:
    records = [v for _, v in reader(settings, settings.topic("model")) if v]
    snap, _ = checkpoint.decode(
        records[-1], settings.model_secret.get_secret_value().encode(), with_learner=False
    )
    return snap


def test_restart_recovers_profiles_and_resumes_the_model(
    servers: None, tmp_path: Path, topic_reader: Reader, segmented: Callable[..., None]
) -> None:
    settings = Settings(namespace=f"rs{uuid.uuid4().hex[:8]}", metrics_port=0)
    _, g = produce_sample(settings, users=150, seed=5)
    profiles = sorted(g.truth)
    segmented(settings, tmp_path / "first.log", profiles)
    before = {line["profile"]: line for line in lookup_users(settings, profiles)[0]}
    snap1 = _latest_checkpoint(settings, topic_reader)

    # new behaviour for a few known users, then a second worker process
    touched = profiles[:10]
    end_ms = g.end_ms
    extra = []
    for n, profile in enumerate(touched):
        kind, _, ident = profile.partition(":")
        who = {"user_id": ident} if kind == "u" else {"anonymous_id": ident}
        for i in range(3):
            extra.append(
                (
                    "web",
                    ident.encode(),
                    orjson.dumps(
                        {
                            "event_id": f"restart-{n}-{i}",
                            "source": "web",
                            "type": "page_view",
                            "ts": end_ms + 60_000 * (i + 1),
                            "session_id": f"restart-{n}",
                            **who,
                        }
                    ),
                )
            )
    send_all(settings, extra)

    def caught_up(found: dict[str, Any]) -> bool:  # the new events are in, on a newer model
        return all(
            found[p] is not None
            and found[p].seq == before[p]["seq"] + 3
            and found[p].version > snap1.version
            for p in touched
        )

    segmented(settings, tmp_path / "second.log", profiles, ready=caught_up)
    after = {line["profile"]: line for line in lookup_users(settings, profiles)[0]}
    snap2 = _latest_checkpoint(settings, topic_reader)

    assert snap2.version > snap1.version  # resumed, not started over at 1
    assert snap2.n_seen > snap1.n_seen  # the learner kept what it had learned
    for profile in profiles:  # the table came back from the changelog, nothing twice
        grown = 3 if profile in touched else 0
        assert after[profile]["seq"] == before[profile]["seq"] + grown, profile
    unchanged = [p for p in profiles if p not in touched]
    kept = sum(after[p]["segment"] == before[p]["segment"] for p in unchanged)
    assert kept >= 0.99 * len(unchanged)  # ids stay stable across restarts and versions
