"""The API's settings: defaults, validation, and its Redis URL masked like SEGSTREAM_REDIS_URL."""

from __future__ import annotations

import json
import os

import pytest
from pydantic import ValidationError
from typer.testing import CliRunner

from segstream.consumers.api import Runtime
from segstream.consumers.cli import app
from segstream.schemas.settings import Settings

API_PASSWORD = "ap-Qz31-very-secret"


@pytest.fixture(autouse=True)
def clean_env(monkeypatch):
    for name in list(os.environ):
        if name.startswith("SEGSTREAM_"):
            monkeypatch.delenv(name)


def test_defaults():
    s = Settings()
    assert (s.api_host, s.api_port) == ("127.0.0.1", 8080)
    assert s.api_redis_url is None
    assert s.api_key_cache_s == 5.0
    assert s.api_max_body_bytes == 262144


@pytest.mark.parametrize(
    ("name", "value"),
    [("api_port", "70000"), ("api_key_cache_s", "-1"), ("api_max_body_bytes", "10")],
)
def test_invalid_values_are_refused(monkeypatch, name, value):
    monkeypatch.setenv(f"SEGSTREAM_{name.upper()}", value)
    with pytest.raises(ValidationError):
        Settings()


def test_the_api_uses_its_own_redis_url_else_the_main_one():
    main = "redis://main:6379/0"
    assert Runtime(Settings(redis_url=main), clock=lambda: 0.0).redis_url() == main
    own = Settings(redis_url=main, api_redis_url="redis://segapi:pw@replica:6379/0")
    assert Runtime(own, clock=lambda: 0.0).redis_url() == "redis://segapi:pw@replica:6379/0"


def test_config_masks_the_api_redis_password_and_keeps_the_host(monkeypatch):
    monkeypatch.setenv(
        "SEGSTREAM_API_REDIS_URL", f"redis://segapi:{API_PASSWORD}@replica.internal:6380/0"
    )
    result = CliRunner().invoke(app, ["config", "--json"])
    assert result.exit_code == 0, result.output
    assert API_PASSWORD not in result.output
    data = json.loads(result.stdout)
    assert data["api_redis_url"] == "redis://segapi:****@replica.internal:6380/0"
    assert data["api_port"] == 8080


def test_config_shows_an_unset_api_redis_url_as_null():
    data = json.loads(CliRunner().invoke(app, ["config", "--json"]).stdout)
    assert data["api_redis_url"] is None
