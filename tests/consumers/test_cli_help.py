"""consumers/cli.py: every option that a setting also controls names its environment
variable in ``--help``, reads it, and ends in the one settings object.

The options come from walking the command tree, so a new command or option is checked
without a change here. An option corresponds to a setting when it declares an envvar
(which must be ``SEGSTREAM_<FIELD>`` of a real field) or when its name is a field, alone
or after the name of its command (``api --port``: ``api_port``).
"""

from __future__ import annotations

import os
import re
from collections.abc import Iterator
from typing import Any

import pytest
from typer.core import TyperGroup, TyperOption
from typer.main import get_command
from typer.testing import CliRunner

from segstream.consumers.cli import app
from segstream.schemas.settings import Settings

FIELDS = set(Settings.model_fields)
# options named like a setting that are not it, and why
NOT_SETTINGS = {
    ("generate", "seed"): "the sample generator's seed, not the clusterer's SEGSTREAM_SEED",
    ("demo", "seed"): "the sample generator's seed, not the clusterer's SEGSTREAM_SEED",
}


def env_name(field: str) -> str:
    return f"SEGSTREAM_{field.upper()}"


def commands(
    command: Any = None, path: tuple[str, ...] = ()
) -> Iterator[tuple[tuple[str, ...], Any]]:
    """Every command and group of the CLI with its path (``()`` is ``segstream``). Typer
    carries its own copy of click: its classes, not click's."""
    command = command or get_command(app)
    yield path, command
    if isinstance(command, TyperGroup):
        for name, sub in command.commands.items():
            yield from commands(sub, (*path, name))


def options(command: Any) -> list[TyperOption]:
    return [p for p in command.params if isinstance(p, TyperOption)]


def envvars(option: TyperOption) -> list[str]:
    if option.envvar is None:
        return []
    return [option.envvar] if isinstance(option.envvar, str) else list(option.envvar)


def named_setting(path: tuple[str, ...], option: TyperOption) -> str | None:
    """The setting an option's name says it is: the name alone or after a command's."""
    assert option.name
    names = {option.name} | {f"{part.replace('-', '_')}_{option.name}" for part in path}
    found = sorted(names & FIELDS)
    assert len(found) <= 1, (path, option.name, found)
    return found[0] if found else None


def setting_options() -> list[tuple[tuple[str, ...], TyperOption, str]]:
    """(command path, option, its variable) for every option a setting also controls."""
    out = []
    for path, command in commands():
        for option in options(command):
            named = named_setting(path, option)
            if named and (path[-1], option.name) not in NOT_SETTINGS:
                out.append((path, option, env_name(named)))
            elif envvars(option):
                out.extend((path, option, var) for var in envvars(option))
    return out


def help_text(runner: CliRunner, path: tuple[str, ...]) -> str:
    result = runner.invoke(app, [*path, "--help"])
    assert result.exit_code == 0, result.output
    return re.sub(r"[\s│]+", " ", result.output)  # one line, without rich's box


pytestmark = pytest.mark.usefixtures("clean_env")


@pytest.fixture
def runner() -> CliRunner:
    return CliRunner()


def test_the_walk_reaches_the_sub_commands_and_finds_options_with_settings():
    paths = {path for path, _ in commands()}
    assert {("api",), ("dev", "up"), ("schemas", "export"), ("keys", "create")} <= paths
    found = {(path, option.name, var) for path, option, var in setting_options()}
    assert {
        (("api",), "host", "SEGSTREAM_API_HOST"),
        (("api",), "port", "SEGSTREAM_API_PORT"),
    } <= found


def test_every_declared_envvar_is_a_setting_and_shown():
    for path, command in commands():
        for option in options(command):
            for var in envvars(option):
                field = var.removeprefix("SEGSTREAM_").lower()
                assert var.startswith("SEGSTREAM_") and field in FIELDS, (path, option.name, var)
                assert option.show_envvar, (path, option.name)


def test_every_option_named_like_a_setting_reads_its_variable():
    for path, option, var in setting_options():
        assert envvars(option) == [var], (path, option.name)
        assert option.show_envvar, (path, option.name)
        # neither flag nor variable given: the setting decides, with its own default
        assert option.default is None, (path, option.name)


def test_options_named_like_a_setting_but_not_it_are_listed_with_a_reason():
    seen = {
        (path[-1], option.name): named_setting(path, option)
        for path, command in commands()
        if path
        for option in options(command)
    }
    for key in NOT_SETTINGS:
        assert seen.get(key), f"{key} is gone or no longer named like a setting"
    for path, command in commands():
        for option in options(command):
            if path and (path[-1], option.name) in NOT_SETTINGS:
                assert not envvars(option), (path, option.name)


@pytest.mark.parametrize("path", [path for path, _ in commands()], ids=" ".join)
def test_help_shows_the_variable_of_each_option_a_setting_controls(runner, path):
    text = help_text(runner, path)
    for where, option, var in setting_options():
        if where == path:
            assert f"[env var: {var}]" in text, (path, option.name)
    # Typer says it: no hand-written "[SEGSTREAM_X: default]" beside an option
    assert not re.search(r"\[SEGSTREAM_\w+:", text), text


def test_help_shows_the_settings_default_beside_the_variable(runner):
    text = help_text(runner, ("api",))
    assert "[env var: SEGSTREAM_API_HOST] [default: (127.0.0.1)]" in text
    assert "[env var: SEGSTREAM_API_PORT] [default: (8080)]" in text


def test_top_level_help_says_where_the_settings_are(runner):
    text = help_text(runner, ())
    assert "SEGSTREAM_*" in text
    assert "segstream config" in text


def test_config_names_the_variable_of_every_setting_and_of_nothing_else(runner):
    result = runner.invoke(app, ["config"])
    assert result.exit_code == 0, result.output
    shown = set(re.findall(r"SEGSTREAM_\w+", result.output))
    assert shown == {env_name(f) for f in FIELDS}


# ------------------------------------------------------- the value ends in Settings


@pytest.fixture
def served(monkeypatch) -> dict[str, Any]:
    """`segstream api` without a server: what it would run, and with which settings."""
    import uvicorn

    import segstream.consumers.api as api

    seen: dict[str, Any] = {}

    def create_app(settings: Settings | None = None) -> str:
        seen["settings"] = settings
        return "app"

    def run(target: Any, **kwargs: Any) -> None:
        seen.update(kwargs, target=target)
        seen["environ"] = {k: v for k, v in os.environ.items() if k.startswith("SEGSTREAM_API")}

    monkeypatch.setattr(api, "create_app", create_app)
    monkeypatch.setattr(uvicorn, "run", run)
    for name in ("SEGSTREAM_API_HOST", "SEGSTREAM_API_PORT"):
        monkeypatch.setenv(name, "x")  # so that monkeypatch removes what the command sets
        monkeypatch.delenv(name)
    return seen


def test_api_listens_where_the_settings_say(runner, served):
    result = runner.invoke(app, ["api"])
    assert result.exit_code == 0, result.output
    assert (served["host"], served["port"]) == ("127.0.0.1", 8080)
    assert (served["settings"].api_host, served["settings"].api_port) == ("127.0.0.1", 8080)


def test_api_variable_and_option_end_in_the_one_settings_object(runner, served, monkeypatch):
    monkeypatch.setenv("SEGSTREAM_API_HOST", "0.0.0.0")  # noqa: S104 - a value, not a bind
    monkeypatch.setenv("SEGSTREAM_API_PORT", "9001")
    result = runner.invoke(app, ["api"])
    assert result.exit_code == 0, result.output
    assert (served["host"], served["port"]) == ("0.0.0.0", 9001)  # noqa: S104
    s = served["settings"]
    assert (s.api_host, s.api_port) == ("0.0.0.0", 9001)  # noqa: S104
    assert type(s.api_port) is int

    result = runner.invoke(app, ["api", "--port", "9002", "--host", "127.0.0.2"])
    assert result.exit_code == 0, result.output
    assert (served["host"], served["port"]) == ("127.0.0.2", 9002)
    assert (served["settings"].api_host, served["settings"].api_port) == ("127.0.0.2", 9002)


def test_api_processes_build_the_same_settings_as_the_options(runner, served):
    result = runner.invoke(app, ["api", "--workers", "2", "--port", "9003"])
    assert result.exit_code == 0, result.output
    assert served["target"] == "segstream.consumers.api:create_app"
    assert served["port"] == 9003
    # each process builds its settings from the environment: the option is in it
    assert served["environ"] == {
        "SEGSTREAM_API_HOST": "127.0.0.1",
        "SEGSTREAM_API_PORT": "9003",
    }


@pytest.mark.parametrize(
    ("env", "args", "named"),
    [
        ({"SEGSTREAM_API_PORT": "many"}, [], "SEGSTREAM_API_PORT"),
        ({"SEGSTREAM_API_PORT": "70000"}, [], "SEGSTREAM_API_PORT"),
        # Typer takes an empty variable as not given; the setting refuses it
        ({"SEGSTREAM_API_HOST": ""}, [], "SEGSTREAM_API_HOST"),
        ({}, ["--host", ""], "SEGSTREAM_API_HOST"),
    ],
)
def test_api_refuses_a_bad_value_naming_the_variable(runner, served, monkeypatch, env, args, named):
    for name, value in env.items():
        monkeypatch.setenv(name, value)
    result = runner.invoke(app, ["api", *args])
    assert result.exit_code == 2
    assert named in result.output
    assert "port" not in served  # nothing served
