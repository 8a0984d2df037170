"""The README and the reference pages: the README stays a ten-minute read, every relative
link resolves (file and heading), and the settings page matches ``Settings``: every
setting with its variable and default, and no variable that does not exist."""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

import pytest

from segstream.schemas.settings import (
    CluStreamConfig,
    DBStreamConfig,
    KMeansConfig,
    Settings,
    StreamKMeansConfig,
)

REPO = Path(__file__).resolve().parents[2]
README = REPO / "README.md"
REFERENCE = REPO / "docs" / "reference"
SETTINGS_PAGE = REFERENCE / "settings.md"
LOCAL_README = REPO / "deploy" / "local" / "README.md"
README_MAX_LINES = 150

PAGES = [README, *sorted(REFERENCE.glob("*.md"))]
FENCE = re.compile(r"^```.*?^```", re.M | re.S)
CODE = re.compile(r"`[^`\n]*`")
LINK = re.compile(r"!?\[[^\]\n]*\]\(([^)\s]+)\)")
HEADING = re.compile(r"^#{1,6}\s+(.+?)\s*#*\s*$", re.M)
VARIABLE = re.compile(r"\bSEGSTREAM_[A-Z0-9_]+")
ROW = re.compile(r"^\|(?P<names>[^|]*)\|(?P<default>[^|]*)\|", re.M)


def prose(text: str) -> str:
    """The text without code blocks and code spans (a link inside them is no link)."""
    return CODE.sub("", FENCE.sub("", text))


def links(page: Path) -> list[str]:
    return LINK.findall(prose(page.read_text()))


def anchor(heading: str) -> str:
    """GitHub's anchor for a heading: lower case, punctuation dropped, spaces to hyphens."""
    text = re.sub(r"\[([^\]]*)\]\([^)]*\)", r"\1", heading).replace("`", "").lower()
    return re.sub(r"[^\w\- ]", "", text).replace(" ", "-")


def anchors(page: Path) -> set[str]:
    return {anchor(h) for h in HEADING.findall(FENCE.sub("", page.read_text()))}


def test_the_readme_is_a_ten_minute_read() -> None:
    lines = README.read_text().splitlines()
    assert len(lines) <= README_MAX_LINES, (
        f"README.md has {len(lines)} lines (at most {README_MAX_LINES}): move reference "
        "material to a page under docs/reference/ and link it"
    )


def test_the_readme_links_the_reference_index() -> None:
    assert "docs/reference/README.md" in links(README)


def test_every_reference_page_is_in_the_index() -> None:
    listed = {Path(target.split("#")[0]).name for target in links(REFERENCE / "README.md")}
    pages = {p.name for p in REFERENCE.glob("*.md")} - {"README.md"}
    assert pages <= listed, f"not in docs/reference/README.md: {sorted(pages - listed)}"


@pytest.mark.parametrize("page", PAGES, ids=lambda p: str(p.relative_to(REPO)))
def test_relative_links_point_at_files_and_headings_that_exist(page: Path) -> None:
    broken = []
    for target in links(page):
        if re.match(r"^[a-z][a-z0-9+.\-]*:", target):  # https:, mailto:
            continue
        path, _, fragment = target.partition("#")
        file = (page.parent / path).resolve() if path else page
        if not file.exists():
            broken.append(f"{target}: no file {file}")
        elif fragment and file.suffix == ".md" and fragment not in anchors(file):
            broken.append(f"{target}: no heading #{fragment} in {file.relative_to(REPO)}")
        elif not file.is_relative_to(REPO):
            broken.append(f"{target}: outside the repository")
    assert not broken, "\n".join(broken)


# ------------------------------------------------------------------ settings
def variable(field: str) -> str:
    return "SEGSTREAM_" + field.upper()


def settings_rows() -> list[tuple[list[str], str]]:
    """``(variables, default cell)`` of every table row that names a setting."""
    rows = []
    for m in ROW.finditer(SETTINGS_PAGE.read_text()):
        names = VARIABLE.findall(m["names"])
        if names:
            rows.append((names, m["default"].strip()))
    return rows


def test_the_settings_page_lists_every_setting() -> None:
    documented = {name for names, _ in settings_rows() for name in names}
    fields = {variable(f) for f in Settings.model_fields}
    assert fields - documented == set(), "settings missing from docs/reference/settings.md"
    assert documented - fields == set(), "docs/reference/settings.md lists unknown settings"


def test_the_settings_page_shows_the_defaults() -> None:
    """A default written as one code span is the code's default, as `segstream config
    --json` prints it (JSON where it parses, else the plain string)."""
    defaults: dict[str, Any] = Settings().masked()
    checked, wrong = 0, []
    for names, cell in settings_rows():
        literal = re.fullmatch(r"`([^`]*)`", cell)
        if len(names) != 1 or literal is None:
            continue
        field = names[0].removeprefix("SEGSTREAM_").lower()
        try:
            shown = json.loads(literal[1])
        except ValueError:
            shown = literal[1]
        checked += 1
        if shown != defaults[field]:
            wrong.append(f"{names[0]}: page says {shown!r}, the code {defaults[field]!r}")
    assert not wrong, "\n".join(wrong)
    assert checked >= 40, f"only {checked} defaults checked: has the table format changed?"


def local_knobs() -> set[str]:
    """The variables of deploy/local's scripts (its README's table), not settings."""
    return set(VARIABLE.findall(LOCAL_README.read_text()))


CLUSTERER_FIELDS = {
    name
    for config in (KMeansConfig, StreamKMeansConfig, DBStreamConfig, CluStreamConfig)
    for name in config.model_fields
}


@pytest.mark.parametrize("page", PAGES, ids=lambda p: str(p.relative_to(REPO)))
def test_every_variable_named_exists(page: Path) -> None:
    """No page names a setting the code does not read (`SEGSTREAM_DRIFT_*` stands for the
    settings it prefixes; `SEGSTREAM_CLUSTERER__N_CLUSTERS` for a clusterer field)."""
    fields = set(Settings.model_fields)
    knobs = local_knobs()
    unknown = set()
    for name in set(VARIABLE.findall(page.read_text())) - knobs:
        field = name.removeprefix("SEGSTREAM_").lower()
        if field.endswith("_"):  # a prefix, as in SEGSTREAM_DRIFT_* or SEGSTREAM_LOCAL_*
            ok = any(f.startswith(field) for f in fields) or any(k.startswith(name) for k in knobs)
        elif "__" in field:
            outer, _, inner = field.partition("__")
            ok = outer == "clusterer" and inner in CLUSTERER_FIELDS
        else:
            ok = field in fields
        if not ok:
            unknown.add(name)
    assert not unknown, f"{page.relative_to(REPO)} names unknown settings: {sorted(unknown)}"
