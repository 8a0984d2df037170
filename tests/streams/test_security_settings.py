"""TLS and SASL reach every Kafka client from the settings alone (no broker needed)."""

from __future__ import annotations

import shutil
import ssl
import subprocess
from pathlib import Path

import faust
import pytest
import redis.asyncio as aioredis
from confluent_kafka import KafkaException, Producer

from segstream.schemas.settings import Settings, kafka_client_config, kafka_ssl_context
from segstream.streams.engine import aiokafka_config, faust_broker_credentials

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


# ------------------------------------------------------------------ mutual TLS
KEY_PASSWORD = "k3y-pass-phrase"


@pytest.fixture(scope="module")
def client_cert(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """A throwaway self-signed client certificate, its key encrypted with KEY_PASSWORD and
    in the clear, and a key of another certificate (openssl, EC keys: milliseconds)."""
    # not a skip: the mutual TLS tests would silently not run (deploy/test installs openssl
    # through deploy/local/system-deps)
    assert shutil.which("openssl"), "these tests need the openssl command: apt-get install openssl"
    d = tmp_path_factory.mktemp("mtls")
    files = {n: d / f"{n}.pem" for n in ("cert", "key_encrypted", "key", "other_key")}
    cert, key, key_encrypted = str(files["cert"]), str(files["key"]), str(files["key_encrypted"])
    ec = ["-pkeyopt", "ec_paramgen_curve:P-256"]
    password = f"pass:{KEY_PASSWORD}"
    self_signed = ["openssl", "req", "-x509", "-newkey", "ec", *ec, "-days", "1", "-subj", "/CN=t"]
    for cmd in (
        [*self_signed, "-keyout", key_encrypted, "-out", cert, "-passout", password],
        ["openssl", "pkey", "-in", key_encrypted, "-out", key, "-passin", password],
        ["openssl", "genpkey", "-algorithm", "EC", *ec, "-out", str(files["other_key"])],
    ):
        subprocess.run(cmd, check=True, capture_output=True, timeout=30)
    return files


def mtls(cert: Path, key: Path, password: str | None = KEY_PASSWORD, **extra: str) -> Settings:
    fields = {"kafka_security_protocol": "SSL", "kafka_ssl_certfile": str(cert)}
    fields |= {"kafka_ssl_keyfile": str(key), **extra}
    if password is not None:
        fields["kafka_ssl_key_password"] = password
    return Settings(**fields)  # type: ignore[arg-type]


def test_confluent_clients_get_the_client_certificate_and_a_secret_password() -> None:
    s = mtls(Path("/certs/client.pem"), Path("/certs/client.key"))
    conf = kafka_client_config(s)
    assert conf["ssl.certificate.location"] == "/certs/client.pem"
    assert conf["ssl.key.location"] == "/certs/client.key"
    assert conf["ssl.key.password"] == KEY_PASSWORD
    assert KEY_PASSWORD not in repr(s) and KEY_PASSWORD not in str(s)
    assert KEY_PASSWORD not in str(s.masked())
    plain = kafka_client_config(mtls(Path("/c.pem"), Path("/k.pem"), password=None))
    assert "ssl.key.password" not in plain
    assert not {k for k in kafka_client_config(Settings()) if k.startswith("ssl.")}


def test_librdkafka_loads_the_client_key_with_its_password(client_cert) -> None:
    """Creating a client reads the key (no connection: nothing listens on port 9)."""
    for password in (KEY_PASSWORD, None):
        key = client_cert["key_encrypted" if password else "key"]
        conf = kafka_client_config(mtls(client_cert["cert"], key, password))
        producer = Producer({**conf, "bootstrap.servers": "127.0.0.1:9", "log_level": 0})
        assert producer.flush(0) == 0
        del producer
    wrong = kafka_client_config(mtls(client_cert["cert"], client_cert["key_encrypted"], "nope"))
    with pytest.raises(KafkaException, match=r"ssl\.key"):
        Producer({**wrong, "bootstrap.servers": "127.0.0.1:9", "log_level": 0})


def test_the_ssl_context_loads_the_client_certificate_chain(client_cert) -> None:
    cert = client_cert["cert"]
    for s in (mtls(cert, client_cert["key_encrypted"]), mtls(cert, client_cert["key"], None)):
        assert isinstance(kafka_ssl_context(s), ssl.SSLContext)
    for bad in (
        mtls(cert, client_cert["key_encrypted"], "wrong-password"),
        mtls(cert, client_cert["key_encrypted"], None),  # an error, not a prompt
        mtls(cert, client_cert["other_key"], None),  # not this certificate's key
    ):
        with pytest.raises(ssl.SSLError):
            kafka_ssl_context(bad)


def test_aiokafka_and_faust_load_the_client_certificate(client_cert) -> None:
    """Both go through kafka_ssl_context: a good chain gives a context, a wrong password
    fails at start-up in each, over SSL and SASL_SSL."""
    cert, key = client_cert["cert"], client_cert["key_encrypted"]
    good = mtls(cert, key, **SCRAM)
    assert isinstance(aiokafka_config(good)["ssl_context"], ssl.SSLContext)
    assert isinstance(faust_broker_credentials(good).ssl_context, ssl.SSLContext)
    assert isinstance(faust_broker_credentials(mtls(cert, key)), faust.SSLCredentials)
    for wrong in (mtls(cert, key, "wrong"), mtls(cert, key, "wrong", **SCRAM)):
        with pytest.raises(ssl.SSLError):
            aiokafka_config(wrong)
        with pytest.raises(ssl.SSLError):
            faust_broker_credentials(wrong)
