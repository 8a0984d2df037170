"""TLS and SASL reach every Kafka client from the settings alone (no broker needed)."""

from __future__ import annotations

import ssl

import faust
import redis.asyncio as aioredis

from schemas.settings import Settings, kafka_client_config
from streams.app import faust_broker_credentials
from streams.readers import aiokafka_config

SCRAM = {
    "kafka_security_protocol": "SASL_SSL",
    "kafka_sasl_mechanism": "SCRAM-SHA-512",
    "kafka_sasl_username": "segstream",
    "kafka_sasl_password": "s3cret-pw",
}


def test_confluent_clients_get_sasl_over_tls() -> None:
    conf = kafka_client_config(Settings(**SCRAM))  # type: ignore[arg-type]
    assert conf["security.protocol"] == "SASL_SSL"
    assert conf["sasl.mechanism"] == "SCRAM-SHA-512"
    assert (conf["sasl.username"], conf["sasl.password"]) == ("segstream", "s3cret-pw")


def test_aiokafka_readers_get_sasl_over_tls() -> None:
    conf = aiokafka_config(Settings(**SCRAM))  # type: ignore[arg-type]
    assert conf["security_protocol"] == "SASL_SSL"
    assert conf["sasl_mechanism"] == "SCRAM-SHA-512"
    assert conf["sasl_plain_password"] == "s3cret-pw"
    assert isinstance(conf["ssl_context"], ssl.SSLContext)


def test_the_faust_worker_gets_sasl_over_tls_or_plain_tls() -> None:
    creds = faust_broker_credentials(Settings(**SCRAM))  # type: ignore[arg-type]
    assert isinstance(creds, faust.SASLCredentials)
    assert (creds.mechanism.value, creds.username) == ("SCRAM-SHA-512", "segstream")
    assert isinstance(creds.ssl_context, ssl.SSLContext)
    tls_only = faust_broker_credentials(Settings(kafka_security_protocol="SSL"))
    assert isinstance(tls_only, faust.SSLCredentials)
    assert faust_broker_credentials(Settings()) is None


def test_a_rediss_url_is_redis_over_tls() -> None:
    pool = aioredis.ConnectionPool.from_url("rediss://segworker:pw@redis.example:6380/0")
    assert pool.connection_class is aioredis.SSLConnection
