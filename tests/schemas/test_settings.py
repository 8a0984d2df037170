"""schemas/settings.py: the typed settings object read from SEGSTREAM_* variables."""

from __future__ import annotations

import json
import os

import pytest
from pydantic import ValidationError

from segstream.schemas.settings import (
    DEFAULT_FEATURES,
    TOPICS,
    CluStreamConfig,
    DBStreamConfig,
    KMeansConfig,
    Settings,
    StreamKMeansConfig,
)


@pytest.fixture(autouse=True)
def clean_env(monkeypatch):
    """Start every test without SEGSTREAM_* variables from the outer environment."""
    for name in list(os.environ):
        if name.upper().startswith("SEGSTREAM_"):
            monkeypatch.delenv(name)


def test_defaults():
    s = Settings()
    assert s.namespace == "segstream"
    assert s.features == DEFAULT_FEATURES
    assert isinstance(s.clusterer, KMeansConfig)
    assert s.topic("web") == "segstream.web"


def test_env_prefix(monkeypatch):
    monkeypatch.setenv("SEGSTREAM_NAMESPACE", "shop")
    monkeypatch.setenv("SEGSTREAM_PARTITIONS", "12")
    monkeypatch.setenv("SEGSTREAM_REDIS_STORE_FEATURES", "false")
    monkeypatch.setenv("SEGSTREAM_HYSTERESIS", "0.3")
    s = Settings()
    assert (s.namespace, s.partitions, s.redis_store_features, s.hysteresis) == (
        "shop",
        12,
        False,
        0.3,
    )


def test_unprefixed_variables_are_not_read(monkeypatch):
    monkeypatch.setenv("NAMESPACE", "nope")
    monkeypatch.setenv("PARTITIONS", "99")
    s = Settings()
    assert (s.namespace, s.partitions) == ("segstream", 4)


def test_env_tuples_are_json(monkeypatch):
    monkeypatch.setenv("SEGSTREAM_FEATURES", '["recency_days", "purchases"]')
    monkeypatch.setenv("SEGSTREAM_SCHEMA_VERSIONS", "[2]")
    s = Settings()
    assert s.features == ("recency_days", "purchases")
    assert s.schema_versions == (2,)


@pytest.mark.parametrize(
    ("name", "value"),
    [
        ("SEGSTREAM_PARTITIONS", "0"),
        ("SEGSTREAM_PARTITIONS", "many"),
        ("SEGSTREAM_HYSTERESIS", "1.0"),
        ("SEGSTREAM_NAMESPACE", "has space"),
        ("SEGSTREAM_NAMESPACE", "a:b"),
        ("SEGSTREAM_KAFKA_SECURITY_PROTOCOL", "TLS"),
        ("SEGSTREAM_MAX_EVENT_BYTES", "10"),
    ],
)
def test_invalid_env_values_are_refused(monkeypatch, name, value):
    monkeypatch.setenv(name, value)
    with pytest.raises(ValidationError):
        Settings()


def test_extra_fields_are_forbidden():
    with pytest.raises(ValidationError) as info:
        Settings(namespace="x", not_a_setting=1)  # type: ignore[call-arg]
    assert info.value.errors()[0]["type"] == "extra_forbidden"


def test_settings_are_frozen():
    s = Settings()
    with pytest.raises(ValidationError):
        s.namespace = "other"  # type: ignore[misc]


@pytest.mark.parametrize(
    ("value", "cls"),
    [
        ('{"type": "kmeans"}', KMeansConfig),
        ('{"type": "streamkmeans", "chunk_size": 50}', StreamKMeansConfig),
        ('{"type": "dbstream"}', DBStreamConfig),
        ('{"type": "clustream", "n_macro_clusters": 3}', CluStreamConfig),
    ],
)
def test_clusterer_from_env_json(monkeypatch, value, cls):
    monkeypatch.setenv("SEGSTREAM_CLUSTERER", value)
    c = Settings().clusterer
    assert type(c) is cls
    for key, expected in json.loads(value).items():
        assert getattr(c, key) == expected


def test_clusterer_from_env_keeps_defaults_of_the_chosen_type(monkeypatch):
    monkeypatch.setenv("SEGSTREAM_CLUSTERER", '{"type":"dbstream"}')
    assert Settings().clusterer == DBStreamConfig()


def test_clusterer_from_nested_env_variables(monkeypatch):
    monkeypatch.setenv("SEGSTREAM_CLUSTERER__TYPE", "dbstream")
    monkeypatch.setenv("SEGSTREAM_CLUSTERER__CLUSTERING_THRESHOLD", "2.5")
    c = Settings().clusterer
    assert isinstance(c, DBStreamConfig)
    assert c.clustering_threshold == 2.5


@pytest.mark.parametrize(
    "value",
    [
        '{"type": "hdbscan"}',
        '{"type": "kmeans", "bogus": 1}',
        '{"type": "kmeans", "n_clusters": 1}',
        '{"type": "dbstream", "n_clusters": 3}',  # a KMeans field on another type
        '{"n_clusters": 3}',
    ],
)
def test_bad_clusterer_config_is_refused(monkeypatch, value):
    monkeypatch.setenv("SEGSTREAM_CLUSTERER", value)
    with pytest.raises(ValidationError):
        Settings()


def test_clusterer_from_init_dict():
    s = Settings(clusterer={"type": "clustream", "time_gap": 50})
    assert s.clusterer == CluStreamConfig(time_gap=50)


def test_topics_and_keys_use_the_namespace(monkeypatch):
    monkeypatch.setenv("SEGSTREAM_NAMESPACE", "demo-1")
    s = Settings()
    assert s.topic("web") == "demo-1.web"
    assert s.topic("segment-changes") == "demo-1.segment-changes"
    assert s.consumer_group == "demo-1-worker"
    assert s.redis_key("user", "u1") == "seg:demo-1:user:u1"
    assert s.redis_key() == "seg:demo-1"
    assert Settings(namespace="other").redis_key("x") == "seg:other:x"


SECRETS = {
    "SEGSTREAM_EMAIL_HASH_KEY": "hash-key-0xCAFE",
    "SEGSTREAM_MODEL_SECRET": "model-secret-0xBEEF",
    "SEGSTREAM_KAFKA_SASL_PASSWORD": "kafka-pw-0xF00D",
    "SEGSTREAM_REDIS_URL": "redis://default:redis-pw-0xD00D@redis.internal:6380/2",
}


def test_masked_hides_every_secret(monkeypatch):
    for name, value in SECRETS.items():
        monkeypatch.setenv(name, value)
    monkeypatch.setenv("SEGSTREAM_NAMESPACE", "prod")
    s = Settings()
    m = s.masked()
    text = json.dumps(m)
    for secret in ("hash-key-0xCAFE", "model-secret-0xBEEF", "kafka-pw-0xF00D", "redis-pw-0xD00D"):
        assert secret not in text
        assert secret not in repr(s)
        assert secret not in str(s)
    assert m["email_hash_key"] == m["model_secret"] == m["kafka_sasl_password"] == "**********"
    assert m["redis_url"] == "redis://default:****@redis.internal:6380/2"
    # the secrets are still there for the code that needs them
    assert s.email_hash_key.get_secret_value() == "hash-key-0xCAFE"


def test_masked_keeps_plain_settings_and_adds_names(monkeypatch):
    monkeypatch.setenv("SEGSTREAM_NAMESPACE", "prod")
    monkeypatch.setenv("SEGSTREAM_KAFKA_BOOTSTRAP", "k1:9092,k2:9092")
    m = Settings().masked()
    assert m["kafka_bootstrap"] == "k1:9092,k2:9092"
    assert m["kafka_sasl_password"] is None
    assert m["clusterer"] == {"type": "kmeans", "n_clusters": 5, "halflife": 0.1, "sigma": 1.0}
    assert m["topics"] == {t: f"prod.{t}" for t in TOPICS}
    assert m["consumer_group"] == "prod-worker"
    json.dumps(m)  # plain data


def test_masked_shows_empty_secret_as_empty(monkeypatch):
    monkeypatch.setenv("SEGSTREAM_MODEL_SECRET", "")
    assert Settings().masked()["model_secret"] == ""


@pytest.mark.parametrize(
    ("url", "shown"),
    [
        ("redis://localhost:6379/0", "redis://localhost:6379/0"),
        ("redis://:pw-only@host:6379", "redis://:****@host:6379"),
        ("rediss://user:p@ss:w0rd@host", "rediss://user:****@host"),
        ("redis://user@host", "redis://user@host"),
        ("unix://:sock-pw@/run/redis.sock", "unix://:****@/run/redis.sock"),
    ],
)
def test_masked_redis_url(monkeypatch, url, shown):
    monkeypatch.setenv("SEGSTREAM_REDIS_URL", url)
    assert Settings().masked()["redis_url"] == shown


def test_masked_redis_url_hides_a_query_string_password(monkeypatch):
    monkeypatch.setenv("SEGSTREAM_REDIS_URL", "redis://redis.internal:6379/0?password=qs-pw-42")
    assert "qs-pw-42" not in json.dumps(Settings().masked())


# ------------------------------------------------------------------ Kafka client certificate
MTLS_ENV = {
    "SEGSTREAM_KAFKA_SECURITY_PROTOCOL": "SSL",
    "SEGSTREAM_KAFKA_SSL_CERTFILE": "/certs/client.pem",
    "SEGSTREAM_KAFKA_SSL_KEYFILE": "/certs/client.key",
    "SEGSTREAM_KAFKA_SSL_KEY_PASSWORD": "mtls-key-pw-9",
}


@pytest.mark.parametrize("protocol", ["SSL", "SASL_SSL"])
def test_a_client_certificate_with_tls(monkeypatch, protocol):
    for name, value in {**MTLS_ENV, "SEGSTREAM_KAFKA_SECURITY_PROTOCOL": protocol}.items():
        monkeypatch.setenv(name, value)
    s = Settings()
    assert (s.kafka_ssl_certfile, s.kafka_ssl_keyfile) == ("/certs/client.pem", "/certs/client.key")
    assert s.kafka_ssl_key_password is not None
    assert s.kafka_ssl_key_password.get_secret_value() == "mtls-key-pw-9"
    assert "mtls-key-pw-9" not in repr(s)
    assert s.masked()["kafka_ssl_key_password"] == "**********"


@pytest.mark.parametrize(
    ("unset", "protocol", "says"),
    [
        ("SEGSTREAM_KAFKA_SSL_KEYFILE", "SSL", "SEGSTREAM_KAFKA_SSL_CERTFILE is set without it"),
        ("SEGSTREAM_KAFKA_SSL_CERTFILE", "SSL", "set without SEGSTREAM_KAFKA_SSL_CERTFILE"),
        ("SEGSTREAM_NAMESPACE", "PLAINTEXT", "needs TLS, and SEGSTREAM_KAFKA_SECURITY_PROTOCOL is"),
        ("SEGSTREAM_NAMESPACE", "SASL_PLAINTEXT", "use SSL or SASL_SSL"),
    ],
)
def test_a_client_certificate_needs_its_key_and_tls(monkeypatch, unset, protocol, says):
    for name, value in {**MTLS_ENV, "SEGSTREAM_KAFKA_SECURITY_PROTOCOL": protocol}.items():
        if name != unset:
            monkeypatch.setenv(name, value)
    with pytest.raises(ValidationError) as caught:
        Settings()
    (error,) = caught.value.errors()
    assert error["loc"] == ("kafka_ssl_keyfile",)  # the CLI names SEGSTREAM_KAFKA_SSL_KEYFILE
    assert says in error["msg"]
    assert "mtls-key-pw-9" not in str(caught.value)  # the error never shows the password


def test_a_key_password_needs_a_key(monkeypatch):
    monkeypatch.setenv("SEGSTREAM_KAFKA_SECURITY_PROTOCOL", "SSL")
    monkeypatch.setenv("SEGSTREAM_KAFKA_SSL_KEY_PASSWORD", "mtls-key-pw-9")
    with pytest.raises(ValidationError, match="KEY_PASSWORD is set without it") as caught:
        Settings()
    assert "mtls-key-pw-9" not in str(caught.value)
