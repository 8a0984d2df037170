"""segstream installs as one import package, ``segstream``, and its console script works
from a wheel installed outside the checkout; the commands that need the checkout say so."""

from __future__ import annotations

import subprocess
import zipfile
from pathlib import Path

import pytest

from segstream.consumers import checkout
from segstream.schemas.errors import EXIT_FAILURE, NeedsCheckout

REPO = Path(__file__).resolve().parents[2]
SUBPACKAGES = ("consumers", "consumers/api", "models", "schemas", "streams")


def test_the_wheel_holds_exactly_one_top_level_package(wheel: Path) -> None:
    names = zipfile.ZipFile(wheel).namelist()
    dist_info = "-".join(wheel.name.split("-")[:2]) + ".dist-info"
    assert {name.split("/", 1)[0] for name in names} == {"segstream", dist_info}
    for sub in SUBPACKAGES:
        assert f"segstream/{sub}/__init__.py" in names, sub
    # the Lua scripts the API and the worker load at run time are package data
    for script in ("lookup_segment.lua", "write_segments.lua", "delete_segment.lua"):
        assert f"segstream/consumers/{script}" in names
    assert not [n for n in names if n.startswith(("segstream/tests", "segstream/bench"))]


def run(bin_dir: Path, cwd: Path, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [str(bin_dir / "segstream"), *args], cwd=cwd, capture_output=True, text=True, timeout=120
    )


def test_the_installed_wheel_imports_its_own_copy(installed_wheel: Path, tmp_path: Path) -> None:
    probe = subprocess.run(
        [str(installed_wheel / "python"), "-c",
         "import segstream.consumers.cli as c, segstream.models.features as f; "
         "print(c.__file__); print(f.__file__)"],
        cwd=tmp_path, capture_output=True, text=True, check=True,
    )  # fmt: skip
    venv = installed_wheel.parent.resolve()
    for line in probe.stdout.split():
        assert Path(line).resolve().is_relative_to(venv), line
        assert not Path(line).resolve().is_relative_to(REPO), line


def test_the_console_script_runs_outside_the_checkout(
    installed_wheel: Path, tmp_path: Path
) -> None:
    done = run(installed_wheel, tmp_path, "--help")
    assert done.returncode == 0, done.stderr
    for verb in ("worker", "api", "triggers", "replay", "export", "bench", "dev"):
        assert verb in done.stdout
    config = run(installed_wheel, tmp_path, "config", "--json")
    assert config.returncode == 0, config.stderr
    assert '"namespace"' in config.stdout


@pytest.mark.parametrize("args", [("bench", "--quick"), ("dev", "status")])
def test_checkout_commands_say_they_need_a_checkout(
    installed_wheel: Path, tmp_path: Path, args: tuple[str, ...]
) -> None:
    done = run(installed_wheel, tmp_path, *args)
    assert done.returncode == EXIT_FAILURE
    assert "Traceback" not in done.stderr
    (line,) = done.stderr.strip().splitlines()
    assert "needs a source checkout" in line and "Clone the repository" in line


def test_find_checkout_from_the_package_or_the_working_directory(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    assert checkout.find_checkout(tmp_path) == REPO  # editable: the package is in it
    monkeypatch.setattr(checkout, "PACKAGE_ROOT", tmp_path / "site-packages")
    assert checkout.find_checkout(REPO / "docs") == REPO  # a parent of the directory
    assert checkout.find_checkout(tmp_path) is None
    monkeypatch.chdir(tmp_path)
    with pytest.raises(NeedsCheckout, match="segstream bench"):
        checkout.checkout_path("bench", "bench", "throughput.py")
