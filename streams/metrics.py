"""Prometheus metrics of the worker. Names are public API (docs/reference/metrics.md)."""

from __future__ import annotations

from wsgiref.simple_server import WSGIServer

from prometheus_client import (
    REGISTRY,
    CollectorRegistry,
    Counter,
    Gauge,
    Histogram,
    start_http_server,
)

from segstream.schemas.errors import PortInUse
from segstream.schemas.settings import Settings
from segstream.streams.histograms import BatchHistogram

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
SUPPRESSED = Counter(
    "segstream_suppressed_total",
    "Records dropped because their person was erased (segstream erase)",
    ["stage"],
)
ERASED = Counter("segstream_erased_profiles_total", "Profiles deleted by an erasure")
ASSIGN_ERRORS = Counter("segstream_assign_errors_total", "Segment assignments that failed")
SEGMENT_CHANGES = Counter("segstream_segment_changes_total", "Users who changed segment")
REDIS_WRITES = Counter("segstream_redis_writes_total", "Segment records written to Redis")
STALE_WRITES = Counter(
    "segstream_stale_writes_total",
    "Segment records Redis refused: it held a newer one (another owner, a newer model)",
)
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
WRITE_LATENCY = BatchHistogram(  # two values per event: a batch's at once
    "segstream_write_latency_seconds",
    "From an event's time (clock=event) or its arrival in Kafka (clock=ingest) to its "
    "profile's segment written to Redis",
    "clock",
    # fine below 100 ms: the freshness target (p99 ≤ 100 ms) is read from these buckets
    buckets=(
        *(0.005, 0.01, 0.015, 0.02, 0.025, 0.03, 0.04, 0.05, 0.075, 0.1, 0.15, 0.25, 0.5),
        *(1, 2.5, 5, 10, 30, 60, 300, 3600, 86400),
    ),
)
CONSUMER_LAG = Gauge(
    "segstream_consumer_lag",
    "Records behind the high-water mark, per assigned partition",
    ["topic", "partition"],
)
LAST_BATCH = Gauge("segstream_last_batch_timestamp_seconds", "When a batch last finished")

# Model-level series: only the worker that owns the model (training partition) sets them.
MODEL_OWNER = Gauge("segstream_model_owner", "1 on the worker that trains the model, else 0")
SEGMENT_USERS = Gauge("segstream_segment_users", "Users in the segment now", ["segment"])
SEGMENT_SHARE = Gauge("segstream_segment_share", "Share of all users in the segment", ["segment"])
SEGMENT_REVENUE = Gauge(
    "segstream_segment_revenue", "Lifetime revenue of the segment's members", ["segment"]
)
SEGMENT_AD_COST = Gauge(
    "segstream_segment_ad_cost", "Ad cost attributed to the segment's members", ["segment"]
)
SEGMENT_CONVERSION = Gauge(
    "segstream_segment_conversion_rate", "Share of members who converted", ["segment"]
)
SEGMENT_CAC = Gauge("segstream_segment_cac", "Ad cost per converted member", ["segment"])
SEGMENT_ROAS = Gauge("segstream_segment_roas", "Revenue per unit of ad cost", ["segment"])
CENTROID_SHIFT = Gauge(
    "segstream_centroid_shift",
    "How far the segment's centre moved from its reference position (z units)",
    ["segment"],
)
CLUSTER_QUALITY = Gauge(
    "segstream_cluster_quality", "Clustering quality on a bounded sample", ["metric"]
)
FEATURE_DRIFT = Gauge(
    "segstream_feature_drift",
    "PSI of the population's values against the reference population, per feature",
    ["feature"],
)
SEGMENT_DRIFT = Gauge(
    "segstream_segment_drift", "PSI of the segment shares against the reference shares"
)
DRIFT_CHECKED = Gauge(
    "segstream_drift_checked_timestamp_seconds",
    "When drift was last judged (checks wait while a backlog or replay is worked off)",
)
DRIFT_DETECTED = Counter(
    "segstream_drift_detected_total",
    "Confirmed drifts (kind: feature, segment, centroid)",
    ["kind"],
)


def event_type_label(event_type: str) -> str:
    """Bound the label's cardinality: free-form names count as ``other``."""
    return event_type if event_type in KNOWN_TYPES else "other"


def serve_metrics(
    settings: Settings, port: int, registry: CollectorRegistry = REGISTRY, setting: str = ""
) -> WSGIServer | None:
    """Serve ``registry`` at ``/metrics`` on ``settings.metrics_host:port`` from a daemon
    thread, as the worker (``metrics_port``) and the trigger relay (``triggers_metrics_port``)
    do; port 0: nothing is served. The server is returned so that tests can shut it down.

    A port that cannot be listened on raises ``PortInUse`` naming ``setting`` (the
    environment variable that moves it)."""
    if not port:
        return None
    try:
        server, _ = start_http_server(port, addr=settings.metrics_host, registry=registry)
    except OSError as exc:
        raise PortInUse(settings.metrics_host, port, setting, exc.strerror or str(exc)) from exc
    return server
