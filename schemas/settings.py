"""The one typed settings object, read from ``SEGSTREAM_*`` environment variables.

Built once at start-up and passed down; nothing else reads the environment.

>>> s = Settings(namespace="demo")
>>> s.topic("web")
'demo.web'
>>> s.redis_key("user", "u1")
'seg:demo:user:u1'
"""

from __future__ import annotations

import ssl
from typing import Annotated, Any, Literal
from urllib.parse import parse_qsl, urlsplit, urlunsplit

from pydantic import BaseModel, ConfigDict, Field, SecretStr, ValidationInfo, field_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

from segstream.models.triggers import Rule

SOURCES = ("web", "ad", "crm")

# Every feature the updater can compute. Anything not listed in `features` never
# reaches clustering; profile attributes (age, gender, region...) are not features
# at all, so they cannot be used for targeting by mistake.
DEFAULT_FEATURES = (
    "recency_days",
    "frequency_30d",
    "monetary_180d",
    "sessions_30d",
    "pages_per_session",
    "cart_rate",
    "purchases",
    "ad_clicks_30d",
    "ad_cost_180d",
    "crm_amount_180d",
    "share_paid",
    "share_social",
    "share_email",
)


class KMeansConfig(BaseModel):
    """River ``cluster.KMeans`` (default): fast, stable centroids."""

    model_config = ConfigDict(frozen=True, extra="forbid")
    type: Literal["kmeans"] = "kmeans"
    n_clusters: int = Field(5, ge=2, le=64)
    halflife: float = Field(0.1, gt=0, le=1)
    sigma: float = Field(1.0, gt=0)


class StreamKMeansConfig(BaseModel):
    """River ``cluster.STREAMKMeans``: periodic batch k-means over a sketch."""

    model_config = ConfigDict(frozen=True, extra="forbid")
    type: Literal["streamkmeans"] = "streamkmeans"
    n_clusters: int = Field(5, ge=2, le=64)
    chunk_size: int = Field(100, ge=10)


class DBStreamConfig(BaseModel):
    """River ``cluster.DBSTREAM``: density based, finds the number of segments itself."""

    model_config = ConfigDict(frozen=True, extra="forbid")
    type: Literal["dbstream"] = "dbstream"
    clustering_threshold: float = Field(1.5, gt=0)
    fading_factor: float = Field(0.01, gt=0, le=1)
    cleanup_interval: float = Field(2.0, gt=0)
    intersection_factor: float = Field(0.3, gt=0, le=1)
    minimum_weight: float = Field(1.0, gt=0)


class CluStreamConfig(BaseModel):
    """River ``cluster.CluStream``: micro-clusters plus an offline k-means."""

    model_config = ConfigDict(frozen=True, extra="forbid")
    type: Literal["clustream"] = "clustream"
    n_macro_clusters: int = Field(5, ge=2, le=64)
    max_micro_clusters: int = Field(100, ge=10)
    time_gap: int = Field(1000, ge=10)


CLUSTERER_TYPES = ("kmeans", "streamkmeans", "dbstream", "clustream")
ClustererConfig = Annotated[
    KMeansConfig | StreamKMeansConfig | DBStreamConfig | CluStreamConfig,
    Field(discriminator="type"),
]


class Settings(BaseSettings):
    """segstream configuration. Every field is ``SEGSTREAM_<NAME>`` in the environment."""

    model_config = SettingsConfigDict(
        env_prefix="SEGSTREAM_",
        env_nested_delimiter="__",
        extra="forbid",
        frozen=True,
    )

    namespace: str = Field("segstream", pattern=r"^[A-Za-z0-9_\-]{1,64}$")

    # Kafka
    kafka_bootstrap: str = "localhost:9092"
    kafka_security_protocol: Literal["PLAINTEXT", "SSL", "SASL_PLAINTEXT", "SASL_SSL"] = "PLAINTEXT"
    kafka_sasl_mechanism: Literal["PLAIN", "SCRAM-SHA-256", "SCRAM-SHA-512"] | None = None
    kafka_sasl_username: str | None = None
    kafka_sasl_password: SecretStr | None = None
    kafka_ssl_cafile: str | None = None
    # mutual TLS: the client's certificate (PEM) and its private key, both or neither, with
    # an SSL protocol; the key's password if it is encrypted. The keyfile comes last: its
    # check sees the others (a check on the password would print it in the error).
    kafka_ssl_certfile: str | None = None
    kafka_ssl_key_password: SecretStr | None = None
    kafka_ssl_keyfile: str | None = Field(None, validate_default=True)
    partitions: int = Field(4, ge=1, le=1024)
    replication_factor: int = Field(1, ge=1)

    # Redis
    redis_url: SecretStr = SecretStr("redis://localhost:6379/0")
    redis_store_features: bool = True

    # Worker
    worker_id: str = "worker-1"
    web_port: int = Field(6066, ge=0, le=65535)
    metrics_port: int = Field(9108, ge=0, le=65535)
    metrics_host: str = "127.0.0.1"  # 0.0.0.0 in containers, so Prometheus can scrape
    data_dir: str = ".local/worker"
    batch_size: int = Field(500, ge=1, le=100_000)
    batch_within_s: float = Field(0.01, gt=0, le=10)  # each hop waits up to this to fill a batch
    # the longest the broker holds the worker's fetch when the partitions in it are quiet;
    # while it is held, partitions read meanwhile wait for the next one (Faust: 1,500 ms)
    fetch_max_wait_ms: int = Field(20, ge=1, le=10_000)
    # an envelope (internal topics: one record per destination partition per batch) is cut
    # at this size; below the broker's message.max.bytes (1 MiB by default)
    envelope_max_bytes: int = Field(256 * 1024, ge=1024, le=64 * 1024 * 1024)
    commit_interval_s: float = Field(1.0, gt=0)
    event_loop: Literal["uvloop", "asyncio"] = "uvloop"  # uvloop: less overhead per event
    link_cache_size: int = Field(100_000, ge=0)  # identity links remembered as sent
    # profiles kept decoded between batches (hot users skip the JSON); 0: none
    profile_cache_size: int = Field(20_000, ge=0)
    # a partition holding records that this worker leaves unread this long while its
    # others move is restarted (faust-streaming #629); 0: never
    stall_restart_s: float = Field(60.0, ge=0)
    # how soon the group gives a crashed worker's partitions to the others (Kafka's
    # group.min.session.timeout.ms, 6 s by default, is the floor); heartbeats every third
    kafka_session_timeout_s: float = Field(30.0, ge=1, le=3600)

    # Validation at the edge
    max_event_bytes: int = Field(64 * 1024, ge=256)
    max_future_skew_s: int = Field(24 * 3600, ge=0)
    min_event_year: int = Field(2000, ge=1970)
    schema_versions: tuple[int, ...] = (1, 2)

    # Privacy
    email_hash_key: SecretStr = SecretStr("segstream-dev-key-change-me")

    # Features and segments
    features: tuple[str, ...] = DEFAULT_FEATURES
    paid_channels: tuple[str, ...] = ("google_ads", "meta", "tiktok", "linkedin", "bing_ads")
    social_channels: tuple[str, ...] = ("social", "facebook", "instagram", "tiktok", "meta")
    email_channels: tuple[str, ...] = ("email", "newsletter", "crm")
    dedupe_window: int = Field(256, ge=1, le=4096)
    clusterer: ClustererConfig = KMeansConfig()
    seed: int = 42
    hysteresis: float = Field(0.15, ge=0, lt=1)
    match_max_distance: float = Field(3.0, gt=0)
    train_sample_every: int = Field(1, ge=1)
    # a version after this many new samples, besides every publish_every_s; each version
    # re-assigns every user, so versions in quick succession cost what events cost
    publish_every_samples: int = Field(20_000, ge=1)
    learn_every_samples: int = Field(2_000, ge=1)  # a learning step, without a new version
    publish_every_s: float = Field(10.0, gt=0)
    model_secret: SecretStr = SecretStr("segstream-dev-model-key-change-me")

    # Drift (models/drift.py): checked once per model cycle on the population sample
    drift_features: tuple[str, ...] | None = None  # None: the features but lifetime totals
    drift_feature_psi: float = Field(0.25, gt=0)
    drift_segment_psi: float = Field(0.1, gt=0)
    drift_centroid_shift: float = Field(1.0, gt=0)  # z units
    drift_confirm: int = Field(3, ge=1)  # consecutive checks over the threshold
    drift_max_lag: int = Field(5000, ge=0)  # records behind (all inputs) above which drift waits
    quality_sample: int = Field(1000, ge=0, le=5000)  # users in the silhouette (0: off)

    # HTTP API (segstream api)
    # never empty: an empty variable is "not given" to `api --host` and would listen everywhere
    api_host: str = Field("127.0.0.1", min_length=1)
    api_port: int = Field(8080, ge=0, le=65535)
    api_redis_url: SecretStr | None = None  # its own read-only Redis user; else redis_url
    api_key_cache_s: float = Field(5.0, ge=0)  # a revoked key works at most this long
    api_max_body_bytes: int = Field(256 * 1024, ge=1024)

    # Retargeting triggers (`segstream triggers`)
    trigger_rules: tuple[Rule, ...] = ()
    webhook_urls: tuple[str, ...] = ()
    webhook_secret: SecretStr = SecretStr("whsec_" + "c2Vnc3RyZWFtLWRldi13ZWJob29rLXNlY3JldA==")
    webhook_timeout_s: float = Field(5.0, gt=0)
    webhook_max_attempts: int = Field(6, ge=1, le=50)
    webhook_backoff_s: float = Field(0.5, ge=0)
    webhook_backoff_max_s: float = Field(60.0, gt=0)
    webhook_concurrency: int = Field(16, ge=1, le=1024)
    triggers_tick_s: float = Field(1.0, gt=0)
    # the relay's /metrics, on metrics_host; its own port, so that a worker and a relay
    # on one host do not collide (0: not served)
    triggers_metrics_port: int = Field(9109, ge=0, le=65535)

    @field_validator("kafka_ssl_keyfile")
    @classmethod
    def _client_certificate(cls, keyfile: str | None, info: ValidationInfo) -> str | None:
        certfile = info.data.get("kafka_ssl_certfile")
        if certfile and not keyfile:
            raise ValueError(
                "SEGSTREAM_KAFKA_SSL_CERTFILE is set without it: mutual TLS needs the "
                "client certificate and its private key, set both or neither"
            )
        if keyfile and not certfile:
            raise ValueError(
                "set without SEGSTREAM_KAFKA_SSL_CERTFILE: mutual TLS needs the client "
                "certificate and its private key, set both or neither"
            )
        if not keyfile and info.data.get("kafka_ssl_key_password") is not None:
            raise ValueError(
                "SEGSTREAM_KAFKA_SSL_KEY_PASSWORD is set without it: the password decrypts "
                "the client key, set the key file (and SEGSTREAM_KAFKA_SSL_CERTFILE) or drop it"
            )
        protocol = info.data.get("kafka_security_protocol")
        if keyfile and protocol not in (None, "SSL", "SASL_SSL"):
            raise ValueError(
                f"a client certificate needs TLS, and SEGSTREAM_KAFKA_SECURITY_PROTOCOL is "
                f"{protocol}: use SSL or SASL_SSL, or unset the certificate and key"
            )
        return keyfile

    # ------------------------------------------------------------------ names
    def topic(self, name: str) -> str:
        """Full topic name for a logical topic (``web``, ``segments``, ...)."""
        return f"{self.namespace}.{name}"

    @property
    def consumer_group(self) -> str:
        return f"{self.namespace}-worker"

    @property
    def edge_group(self) -> str:
        """The group of the workers' edge processes (they read the source topics)."""
        return f"{self.namespace}-edge"

    @property
    def trainer_group(self) -> str:
        """The group of the workers' trainer processes: the one holding partition 0 of
        ``training`` trains, and records there how far it has read (for the lag figures;
        it reads the topic whole, outside the group)."""
        return f"{self.namespace}-trainer"

    def redis_key(self, *parts: str) -> str:
        """Redis key under the namespace, always starting ``seg:`` (the API's ACL)."""
        return ":".join(("seg", self.namespace, *parts))

    def masked(self) -> dict[str, Any]:
        """Effective settings as plain data, secrets masked; safe to print or log."""
        data = self.model_dump(mode="json")
        for name, value in self:
            if isinstance(value, SecretStr):
                data[name] = "**********" if value.get_secret_value() else ""
        data["redis_url"] = _mask_url(self.redis_url.get_secret_value())
        if self.api_redis_url is not None:
            data["api_redis_url"] = _mask_url(self.api_redis_url.get_secret_value())
        data["topics"] = {t: self.topic(t) for t in TOPICS}
        data["consumer_group"] = self.consumer_group
        data["edge_group"] = self.edge_group
        return data


TOPICS = (
    "web",
    "ad",
    "crm",
    "identity",
    "events",
    "training",
    "model",
    "segments",
    "segment-changes",
    "dlq",
    "retargeting",
    "erasures",
    "audit",
    "api-keys",
)


def _mask_url(url: str) -> str:
    """Mask passwords in a URL, in ``user:secret@`` and in a ``password=`` query.

    >>> _mask_url("redis://u:s3@h:6379/0?password=x&db=1")
    'redis://u:****@h:6379/0?password=****&db=1'
    """
    parts = urlsplit(url)
    netloc = parts.netloc
    if "@" in netloc:
        creds, _, host = netloc.rpartition("@")
        user, colon, _ = creds.partition(":")
        netloc = f"{user}{':****' if colon else ''}@{host}"
    query = "&".join(
        f"{k}=****" if k.lower() in ("password", "pass", "pwd") else (f"{k}={v}" if v else k)
        for k, v in parse_qsl(parts.query, keep_blank_values=True)
    )
    return urlunsplit((parts.scheme, netloc, parts.path, query, parts.fragment))


def kafka_client_config(settings: Settings) -> dict[str, Any]:
    """librdkafka (confluent-kafka) configuration for admin clients and producers."""
    conf: dict[str, Any] = {
        "bootstrap.servers": settings.kafka_bootstrap,
        "security.protocol": settings.kafka_security_protocol,
    }
    if settings.kafka_sasl_mechanism:
        conf["sasl.mechanism"] = settings.kafka_sasl_mechanism
        conf["sasl.username"] = settings.kafka_sasl_username or ""
        conf["sasl.password"] = (
            settings.kafka_sasl_password.get_secret_value() if settings.kafka_sasl_password else ""
        )
    if settings.kafka_ssl_cafile:
        conf["ssl.ca.location"] = settings.kafka_ssl_cafile
    if settings.kafka_ssl_certfile:
        conf["ssl.certificate.location"] = settings.kafka_ssl_certfile
        conf["ssl.key.location"] = settings.kafka_ssl_keyfile
    if settings.kafka_ssl_key_password is not None:
        conf["ssl.key.password"] = settings.kafka_ssl_key_password.get_secret_value()
    return conf


def kafka_ssl_context(settings: Settings) -> ssl.SSLContext:
    """TLS of the asyncio clients (aiokafka readers, the Faust apps): the brokers' CA
    (default: the system's) and, for mutual TLS, the client's certificate and key. A key
    that does not match the certificate or its password raises ``ssl.SSLError``; a
    missing file, ``OSError``: at start-up, before any connection."""
    context = ssl.create_default_context(cafile=settings.kafka_ssl_cafile)
    if settings.kafka_ssl_certfile:
        password = settings.kafka_ssl_key_password
        context.load_cert_chain(
            settings.kafka_ssl_certfile,
            settings.kafka_ssl_keyfile,
            # "" rather than None: an encrypted key without its password is an error, never
            # OpenSSL's interactive prompt (a plain key ignores the password)
            password.get_secret_value() if password is not None else "",
        )
    return context
