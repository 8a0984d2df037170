"""Schema versions: the current major and the one before it are accepted.

Version 1 named the event time ``timestamp`` (epoch milliseconds) and the
anonymous identifier ``anon_id``; version 2 calls them ``ts`` and
``anonymous_id``. An event without ``schema_version`` is taken as current.

>>> upgrade({"schema_version": 1, "timestamp": 5, "anon_id": "a"})
{'schema_version': 2, 'ts': 5, 'anonymous_id': 'a'}
"""

from __future__ import annotations

from typing import Any

from segstream.schemas.events import SCHEMA_VERSION

_RENAMES_V1 = {"timestamp": "ts", "anon_id": "anonymous_id"}


def upgrade(data: dict[str, Any]) -> dict[str, Any]:
    """Return ``data`` in the current schema version (a new dict when it changes)."""
    if data.get("schema_version") != 1:
        return data
    out = {_RENAMES_V1.get(k, k): v for k, v in data.items()}
    out["schema_version"] = SCHEMA_VERSION
    return out
