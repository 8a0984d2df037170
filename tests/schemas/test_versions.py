"""schemas/versions.py: upgrading older schema versions."""

from __future__ import annotations

from segstream.schemas.events import SCHEMA_VERSION
from segstream.schemas.versions import upgrade


def test_v1_fields_are_renamed():
    v1 = {"schema_version": 1, "timestamp": 5, "anon_id": "a", "event_id": "e"}
    assert upgrade(v1) == {
        "schema_version": SCHEMA_VERSION,
        "ts": 5,
        "anonymous_id": "a",
        "event_id": "e",
    }


def test_upgrade_does_not_mutate_its_input():
    v1 = {"schema_version": 1, "timestamp": 5, "anon_id": "a"}
    before = dict(v1)
    upgrade(v1)
    assert v1 == before


def test_current_and_unversioned_data_pass_through_unchanged():
    v2 = {"schema_version": 2, "ts": 5, "timestamp": 9, "anon_id": "x"}
    assert upgrade(v2) is v2
    unversioned = {"ts": 5}
    assert upgrade(unversioned) is unversioned


def test_current_version_is_2():
    assert SCHEMA_VERSION == 2
