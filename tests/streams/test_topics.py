"""streams/topics.py: the topic layout (specs only; creating topics needs a broker)."""

from __future__ import annotations

import os

import pytest

from segstream.schemas.settings import TOPICS, Settings
from segstream.streams.topics import TopicSpec, specs

COMPACTED = {"training", "model", "segments", "erasures", "api-keys"}
SINGLE_PARTITION = {"training", "model", "erasures", "audit", "api-keys"}
KEPT_FOREVER = {"erasures", "audit", "api-keys"}


@pytest.fixture(autouse=True)
def clean_env(monkeypatch):
    for name in list(os.environ):
        if name.startswith("SEGSTREAM_"):
            monkeypatch.delenv(name)


def by_logical_name(settings: Settings) -> dict[str, TopicSpec]:
    prefix = settings.namespace + "."
    out = {}
    for spec in specs(settings):
        assert spec.name.startswith(prefix), spec.name
        out[spec.name.removeprefix(prefix)] = spec
    return out


@pytest.mark.parametrize(("namespace", "partitions"), [("shop", 7), ("t-1_x", 1), ("big", 64)])
def test_every_topic_has_a_spec_under_the_namespace(namespace, partitions):
    s = Settings(namespace=namespace, partitions=partitions)
    names = [spec.name for spec in specs(s)]
    assert len(names) == len(set(names))
    assert set(by_logical_name(s)) == set(TOPICS)
    assert set(names) == {s.topic(t) for t in TOPICS}


def test_compacted_topics_are_the_authoritative_copies():
    s = Settings(namespace="shop", partitions=6)
    compacted = {
        name
        for name, spec in by_logical_name(s).items()
        if spec.config.get("cleanup.policy") == "compact"
    }
    assert compacted == COMPACTED


def test_other_topics_keep_the_default_delete_policy():
    s = Settings(namespace="shop", partitions=6)
    for name, spec in by_logical_name(s).items():
        if name not in COMPACTED:
            assert spec.config.get("cleanup.policy", "delete") == "delete", name


def test_erasures_and_the_audit_trail_never_expire():
    for name, spec in by_logical_name(Settings(namespace="shop")).items():
        assert (spec.config.get("retention.ms") == "-1") == (name in KEPT_FOREVER), name


@pytest.mark.parametrize("partitions", [1, 3, 12])
def test_partitions(partitions):
    s = Settings(namespace="shop", partitions=partitions)
    for name, spec in by_logical_name(s).items():
        expected = 1 if name in SINGLE_PARTITION else partitions
        assert spec.partitions == expected, name


def test_partitions_follow_the_environment(monkeypatch):
    monkeypatch.setenv("SEGSTREAM_PARTITIONS", "9")
    monkeypatch.setenv("SEGSTREAM_NAMESPACE", "envns")
    parts = {name: spec.partitions for name, spec in by_logical_name(Settings()).items()}
    assert parts["web"] == parts["segments"] == parts["dlq"] == 9
    assert parts["training"] == parts["model"] == 1


def test_layout_is_the_same_in_every_namespace():
    s = Settings(namespace="shop")
    a = {spec.name: dict(spec.config) for spec in specs(s)}
    b = {spec.name: dict(spec.config) for spec in specs(Settings(namespace="other"))}
    assert list(a.values()) == list(b.values())
    assert list(a) != list(b)
