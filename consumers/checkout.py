"""Where the source checkout is, for the commands that need more than the package.

``segstream dev`` runs ``deploy/local/*`` and ``segstream bench`` runs ``bench/``; neither
ships in the wheel. Installed editable (``pip install -e .``), the package's source
folders sit in the checkout; otherwise the current directory or one of its parents may
be one. Anything else raises ``NeedsCheckout``, which says what to do.
"""

from __future__ import annotations

from pathlib import Path

from segstream.schemas.errors import NeedsCheckout

PACKAGE_ROOT = Path(__file__).resolve().parent.parent  # the checkout, when editable


def find_checkout(start: Path | None = None) -> Path | None:
    """The segstream checkout that holds this package, or ``start`` (default: the current
    directory) or one of its parents; ``None`` when there is none."""
    here = (start or Path.cwd()).resolve()
    for candidate in (PACKAGE_ROOT, here, *here.parents):
        if is_checkout(candidate):
            return candidate
    return None


def is_checkout(path: Path) -> bool:
    pyproject = path / "pyproject.toml"
    return (
        (path / "deploy" / "local" / "up").is_file()
        and (path / "bench").is_dir()
        and pyproject.is_file()
        and 'name = "segstream"' in pyproject.read_text(errors="replace")
    )


def checkout_path(command: str, *parts: str) -> Path:
    """``parts`` inside the checkout (e.g. ``"bench", "throughput.py"``), or ``NeedsCheckout``
    for ``segstream <command>``."""
    root = find_checkout()
    if root is None or not (path := root.joinpath(*parts)).exists():
        raise NeedsCheckout(command, "/".join(parts))
    return path
