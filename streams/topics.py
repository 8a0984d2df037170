"""Topic layout, created up front with the Kafka admin API (Faust creates only its own).

====================  ==========  ===========  =========================================
topic                 partitions  cleanup      key → value
====================  ==========  ===========  =========================================
``{ns}.web|ad|crm``   N           delete       producer's choice → event JSON (input)
``{ns}.identity``     N           delete       alias → event or link (internal)
``{ns}.events``       N           delete       profile → event, merge or absorb (internal)
``{ns}.training``     1           compact      profile → latest raw features (internal)
``{ns}.model``        1           compact      "current" → signed model checkpoint
``{ns}.segments``     N           compact      profile → SegmentRecord (authoritative)
``{ns}.segment-changes`` N        delete       profile → SegmentChange
``{ns}.dlq``          N           delete       source key → DeadLetter
``{ns}.retargeting``  N           delete       profile → Trigger (deterministic id)
``{ns}.erasures``     1           compact      alias → Erasure (suppression list, kept)
``{ns}.audit``        1           delete, ∞    alias → AuditEntry (kept forever)
``{ns}.api-keys``     1           compact      key digest → ApiKey (revoked: tombstone)
====================  ==========  ===========  =========================================
"""

from __future__ import annotations

from dataclasses import dataclass, field

from confluent_kafka import admin as kafka_admin

from segstream.schemas.errors import KafkaUnavailable
from segstream.schemas.settings import Settings, kafka_client_config


@dataclass(frozen=True, slots=True)
class TopicSpec:
    name: str
    partitions: int
    config: dict[str, str] = field(default_factory=dict)


COMPACT = {"cleanup.policy": "compact", "min.cleanable.dirty.ratio": "0.1", "segment.ms": "3600000"}


def specs(settings: Settings) -> list[TopicSpec]:
    n = settings.partitions
    t = settings.topic
    return [
        *(TopicSpec(t(s), n) for s in ("web", "ad", "crm")),
        TopicSpec(t("identity"), n),
        TopicSpec(t("events"), n),
        TopicSpec(t("training"), 1, COMPACT),
        TopicSpec(t("model"), 1, COMPACT),
        TopicSpec(t("segments"), n, COMPACT),
        TopicSpec(t("segment-changes"), n),
        TopicSpec(t("dlq"), n),
        TopicSpec(t("retargeting"), n),
        TopicSpec(t("erasures"), 1, {**COMPACT, "retention.ms": "-1"}),
        TopicSpec(t("audit"), 1, {"retention.ms": "-1"}),
        TopicSpec(t("api-keys"), 1, {**COMPACT, "retention.ms": "-1"}),
    ]


def ensure_topics(settings: Settings, timeout: float = 30.0) -> list[str]:
    """Create missing topics; returns the names created. Existing topics are left as they are."""
    admin = kafka_admin.AdminClient(kafka_client_config(settings))
    try:
        existing = set(admin.list_topics(timeout=timeout).topics)
    except Exception as exc:  # confluent-kafka raises KafkaException subclasses
        raise KafkaUnavailable(settings.kafka_bootstrap, str(exc)) from exc
    wanted = [s for s in specs(settings) if s.name not in existing]
    if not wanted:
        return []
    new_topic = kafka_admin.NewTopic  # type: ignore[attr-defined]  # exported but undeclared
    futures = admin.create_topics(
        [
            new_topic(
                s.name,
                num_partitions=s.partitions,
                replication_factor=settings.replication_factor,
                config=s.config,
            )
            for s in wanted
        ],
        operation_timeout=timeout,
    )
    created = []
    for name, fut in futures.items():
        try:
            fut.result()
            created.append(name)
        except Exception as exc:
            if "TOPIC_ALREADY_EXISTS" not in str(exc):
                raise KafkaUnavailable(settings.kafka_bootstrap, str(exc)) from exc
    return created
