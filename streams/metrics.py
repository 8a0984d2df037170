"""Prometheus metrics of the worker. Names are public API (README, "Metrics")."""

from __future__ import annotations

from prometheus_client import Counter, Gauge, Histogram

KNOWN_TYPES = frozenset(
    {
        "page_view",
        "session_start",
        "add_to_cart",
        "checkout",
        "purchase",
        "impression",
        "click",
        "conversion",
        "deal_won",
        "deal_lost",
        "profile_update",
        "identify",
        "consent_change",
        "churn",
    }
)

EVENTS = Counter("segstream_events_total", "Valid events accepted at the edge", ["source", "type"])
DLQ = Counter("segstream_dlq_total", "Records sent to the dead-letter topic", ["reason", "stage"])
DUPLICATES = Counter("segstream_duplicates_total", "Records skipped as already applied")
LATE = Counter("segstream_late_events_total", "Events older than their profile's latest")
IDENTITY_CONFLICTS = Counter(
    "segstream_identity_conflicts_total",
    "Links refused because the alias belongs to another customer",
)
ASSIGN_ERRORS = Counter("segstream_assign_errors_total", "Segment assignments that failed")
SEGMENT_CHANGES = Counter("segstream_segment_changes_total", "Users who changed segment")
REDIS_WRITES = Counter("segstream_redis_writes_total", "Segment records written to Redis")
REDIS_ERRORS = Counter("segstream_redis_errors_total", "Failed Redis writes (retried)")
KAFKA_SEND_ERRORS = Counter("segstream_kafka_send_errors_total", "Failed sends (retried)")
BATCH_SECONDS = Histogram(
    "segstream_batch_seconds",
    "Time to process one batch",
    ["stage"],
    buckets=(0.001, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5),
)
MODEL_VERSION = Gauge("segstream_model_version", "Model version this worker assigns with")
SEGMENTS = Gauge("segstream_segments", "Segments in the current model")


def event_type_label(event_type: str) -> str:
    """Bound the label's cardinality: free-form names count as ``other``."""
    return event_type if event_type in KNOWN_TYPES else "other"
