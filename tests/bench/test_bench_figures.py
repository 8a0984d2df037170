"""The benchmark's own arithmetic: quantiles from histogram buckets, id churn."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Any

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "bench"))

from freshness import page_view, quantile
from quality import id_churn, latest

from segstream.schemas.parse import EventParser, Rejection

INF = float("inf")


def test_quantile_interpolates_inside_the_bucket_of_the_rank() -> None:
    after = {0.01: 50.0, 0.02: 90.0, 0.05: 99.0, 0.1: 100.0, INF: 100.0}
    assert quantile(0.5, {}, after) == pytest.approx(0.01)
    assert quantile(0.99, {}, after) == pytest.approx(0.05)
    assert quantile(0.7, {}, after) == pytest.approx(0.015)


def test_quantile_counts_only_what_came_between_the_scrapes() -> None:
    before = {0.01: 1000.0, 0.02: 1000.0, 0.05: 1000.0, INF: 1000.0}
    after = {0.01: 1000.0, 0.02: 1010.0, 0.05: 1020.0, INF: 1020.0}
    assert quantile(0.5, before, after) == pytest.approx(0.02)  # all new ones above 10 ms
    with pytest.raises(ValueError, match="no events"):
        quantile(0.5, after, after)


def rec(profile: str, seq: int, version: int, segment: int) -> dict[str, Any]:
    return {"profile": profile, "seq": seq, "version": version, "segment": segment}


def test_id_churn_counts_model_changes_without_new_events_only() -> None:
    same = frozenset({0, 1, 2, 3, 4})
    records: list[dict[str, Any] | str] = [
        rec("a", 1, 1, 0),
        rec("a", 1, 2, 1),  # same seq, new model, moved: churn
        rec("a", 2, 2, 2),  # a new event: not counted
        rec("b", 5, 1, 3),
        rec("b", 5, 2, 3),  # same seq, new model, stayed
        rec("b", 5, 2, 4),  # same model again: not a model change
        rec("b", 5, 3, 0),  # version 3 has a new segment: counted in id_churn_all only
        "b",  # merged away: its next record starts afresh
        rec("b", 5, 4, 1),
    ]
    got = id_churn(records, {1: same, 2: same, 3: same | {5}, 4: same | {5}})
    assert got == {
        "id_churn": 0.5,
        "id_churn_checked": 2,
        "id_churn_all": 2 / 3,
        "id_churn_all_checked": 3,
    }


def test_latest_drops_profiles_a_tombstone_ended() -> None:
    records: list[dict[str, Any] | str] = [rec("a", 1, 1, 0), rec("b", 1, 1, 2), "a"]
    assert latest(records) == {"b": rec("b", 1, 1, 2)}


def test_load_events_are_valid_events_of_the_profile_they_name() -> None:
    parser = EventParser(b"k" * 32)
    for profile in ("u:cust-000001", "a:anon-000002-829868"):
        _, value = page_view(profile, 7, 1_780_000_000_000)
        event = parser.parse(value, "web")
        assert not isinstance(event, Rejection), event
        assert (event.user_id or event.anonymous_id) == profile.split(":", 1)[1]
