"""consumers/cli.py: the commands that need no Kafka or Redis (config, schemas export)."""

from __future__ import annotations

import json
import os

import pytest
from typer.testing import CliRunner

from segstream.consumers.cli import app
from segstream.schemas.settings import TOPICS

SECRETS = {
    "SEGSTREAM_EMAIL_HASH_KEY": "hk-Xq81-very-secret",
    "SEGSTREAM_MODEL_SECRET": "ms-Zt55-very-secret",
    "SEGSTREAM_KAFKA_SASL_PASSWORD": "kp-Wm20-very-secret",
}
REDIS_PASSWORD = "rp-Jv77-very-secret"
REDIS_QUERY_PASSWORD = "rq-Lk09-very-secret"


pytestmark = pytest.mark.usefixtures("clean_env")


@pytest.fixture
def runner() -> CliRunner:
    return CliRunner()


def test_config_json_prints_topics_and_consumer_group_under_the_namespace(runner, monkeypatch):
    monkeypatch.setenv("SEGSTREAM_NAMESPACE", "shop-eu")
    monkeypatch.setenv("SEGSTREAM_PARTITIONS", "12")
    result = runner.invoke(app, ["config", "--json"])
    assert result.exit_code == 0, result.output
    data = json.loads(result.stdout)
    assert data["namespace"] == "shop-eu"
    assert data["partitions"] == 12
    assert set(data["topics"]) == set(TOPICS)
    assert data["topics"]["web"] == "shop-eu.web"
    assert data["topics"]["segment-changes"] == "shop-eu.segment-changes"
    assert all(name.startswith("shop-eu.") for name in data["topics"].values())
    assert "shop-eu" in data["consumer_group"]


def test_config_json_differs_by_namespace(runner, monkeypatch):
    monkeypatch.setenv("SEGSTREAM_NAMESPACE", "one")
    one = json.loads(runner.invoke(app, ["config", "--json"]).stdout)
    monkeypatch.setenv("SEGSTREAM_NAMESPACE", "two")
    two = json.loads(runner.invoke(app, ["config", "--json"]).stdout)
    assert one["consumer_group"] != two["consumer_group"]
    assert set(one["topics"].values()).isdisjoint(two["topics"].values())


def set_secrets(monkeypatch):
    for name, value in SECRETS.items():
        monkeypatch.setenv(name, value)
    monkeypatch.setenv("SEGSTREAM_KAFKA_SASL_MECHANISM", "PLAIN")
    monkeypatch.setenv("SEGSTREAM_KAFKA_SASL_USERNAME", "svc-seg")
    monkeypatch.setenv(
        "SEGSTREAM_REDIS_URL",
        f"redis://default:{REDIS_PASSWORD}@cache.internal:6380/2"
        f"?password={REDIS_QUERY_PASSWORD}&ssl_cert_reqs=none",
    )


def assert_no_secret(output: str) -> None:
    for value in (*SECRETS.values(), REDIS_PASSWORD, REDIS_QUERY_PASSWORD):
        assert value not in output


def test_config_json_never_prints_secret_values(runner, monkeypatch):
    set_secrets(monkeypatch)
    result = runner.invoke(app, ["config", "--json"])
    assert result.exit_code == 0, result.output
    assert_no_secret(result.output)
    data = json.loads(result.stdout)
    # masked, but still useful: the host and the non-secret settings are shown
    assert "cache.internal:6380" in data["redis_url"]
    assert "ssl_cert_reqs=none" in data["redis_url"]
    assert data["kafka_sasl_username"] == "svc-seg"
    for field in ("email_hash_key", "model_secret", "kafka_sasl_password"):
        assert data[field]  # present, but not the value
        assert data[field] != os.environ["SEGSTREAM_" + field.upper()]


def test_config_table_never_prints_secret_values(runner, monkeypatch):
    set_secrets(monkeypatch)
    result = runner.invoke(app, ["config"])
    assert result.exit_code == 0, result.output
    assert "cache.internal" in result.output  # the table is not truncated
    assert "SEGSTREAM_EMAIL_HASH_KEY" in result.output
    assert_no_secret(result.output)


@pytest.mark.parametrize("value", ["0", "many", "-3"])
def test_invalid_setting_exits_2_naming_the_variable(runner, monkeypatch, value):
    monkeypatch.setenv("SEGSTREAM_PARTITIONS", value)
    result = runner.invoke(app, ["config", "--json"])
    assert result.exit_code == 2
    assert "SEGSTREAM_PARTITIONS" in result.output
    assert result.stdout == ""  # no half-printed configuration


def test_every_invalid_setting_is_named(runner, monkeypatch):
    monkeypatch.setenv("SEGSTREAM_PARTITIONS", "0")
    monkeypatch.setenv("SEGSTREAM_NAMESPACE", "bad namespace!")
    result = runner.invoke(app, ["config"])
    assert result.exit_code == 2
    assert "SEGSTREAM_PARTITIONS" in result.output
    assert "SEGSTREAM_NAMESPACE" in result.output


def test_invalid_setting_message_does_not_echo_a_secret(runner, monkeypatch):
    monkeypatch.setenv("SEGSTREAM_PARTITIONS", "0")
    set_secrets(monkeypatch)
    result = runner.invoke(app, ["config"])
    assert result.exit_code == 2
    assert_no_secret(result.output)


def test_invalid_nested_clusterer_setting_names_the_real_variable(runner, monkeypatch):
    monkeypatch.setenv("SEGSTREAM_CLUSTERER__TYPE", "dbstream")
    monkeypatch.setenv("SEGSTREAM_CLUSTERER__FADING_FACTOR", "5")
    result = runner.invoke(app, ["config"])
    assert result.exit_code == 2
    assert "SEGSTREAM_CLUSTERER__FADING_FACTOR" in result.output


def test_schemas_export_writes_json_schema_per_source(runner, tmp_path):
    out = tmp_path / "contracts" / "v2"
    result = runner.invoke(app, ["schemas", "export", "--out", str(out)])
    assert result.exit_code == 0, result.output
    files = sorted(p.name for p in out.iterdir())
    assert files == ["ad.schema.json", "crm.schema.json", "web.schema.json"]
    for source in ("web", "ad", "crm"):
        path = out / f"{source}.schema.json"
        schema = json.loads(path.read_text())
        assert schema["type"] == "object"
        assert "event_id" in schema["properties"]
        assert "event_id" in schema["required"]
        assert "event_id" in path.read_text()
        assert str(path) in result.output.replace("\n", "")


def test_schemas_export_overwrites_into_an_existing_folder(runner, tmp_path):
    (tmp_path / "web.schema.json").write_text("stale")
    result = runner.invoke(app, ["schemas", "export", "--out", str(tmp_path)])
    assert result.exit_code == 0, result.output
    assert "event_id" in json.loads((tmp_path / "web.schema.json").read_text())["properties"]


def test_schemas_differ_per_source(runner, tmp_path):
    runner.invoke(app, ["schemas", "export", "--out", str(tmp_path)])
    web = json.loads((tmp_path / "web.schema.json").read_text())
    ad = json.loads((tmp_path / "ad.schema.json").read_text())
    assert web != ad
    assert "channel" in ad["required"]  # an ad event must say which channel
