"""``segstream replay``: backfill history exported from elsewhere (CSV or JSON lines).

Each row becomes an event: ``--map FIELD=COLUMN`` reads an event field from a
column with another name, ``--set FIELD=VALUE`` gives every row a constant.
Rows are validated with the same parser the worker uses; rejected rows are
counted by reason (and written to ``--rejects``), the rest are produced with
their own event time. Raw emails are hashed before anything is sent.
"""

from __future__ import annotations

import csv
import hashlib
import re
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import orjson
from rich.console import Console
from rich.progress import Progress

from segstream.schemas.errors import ReplayError
from segstream.schemas.events import CONTRACTS
from segstream.schemas.parse import EventParser, Rejection
from segstream.schemas.privacy import hash_email_field
from segstream.schemas.settings import Settings
from segstream.streams.produce import send_all
from segstream.streams.topics import ensure_topics

__all__ = ["ReplayError", "ReplayReport", "replay_file", "rows_to_events"]

NUMERIC_FIELDS = {"cost", "revenue", "amount"}
_INTEGER = re.compile(r"-?[0-9]{1,18}")  # ASCII digits only: str.isdigit() accepts "²"


@dataclass
class ReplayReport:
    sent: int = 0
    rejected: int = 0
    reasons: Counter[str] = field(default_factory=Counter)


def _pairs(items: list[str], flag: str) -> dict[str, str]:
    out = {}
    for item in items:
        name, eq, value = item.partition("=")
        if not eq or not name:
            raise ReplayError(f"{flag} {item!r}: expected FIELD=VALUE")
        out[name.strip()] = value
    return out


def _rows(path: Path, fmt: str) -> Iterator[dict[str, Any]]:
    if fmt == "csv":
        with path.open(newline="", encoding="utf-8-sig") as f:
            yield from csv.DictReader(f)
    elif fmt == "jsonl":
        with path.open("rb") as f:
            for n, line in enumerate(f, 1):
                if line.strip():
                    try:
                        row = orjson.loads(line)
                    except orjson.JSONDecodeError as exc:
                        yield {"__error__": f"line {n}: {exc}"}
                        continue
                    if isinstance(row, dict):
                        yield row
                    else:
                        yield {"__error__": f"line {n}: not a JSON object"}
    else:
        raise ReplayError(f"unknown format {fmt!r}: use csv or jsonl")


def _coerce(name: str, value: Any) -> Any:
    """CSV gives strings: epoch-ms timestamps and money become numbers, blanks vanish."""
    if not isinstance(value, str):
        return value
    value = value.strip()
    if name in ("ts", "schema_version") and _INTEGER.fullmatch(value):
        return int(value)
    if name in NUMERIC_FIELDS and value:
        try:
            return float(value)
        except ValueError:
            return value  # the parser will say what is wrong
    return value


def rows_to_events(
    rows: Iterator[dict[str, Any]],
    source: str,
    maps: dict[str, str],
    sets: dict[str, str],
) -> Iterator[dict[str, Any]]:
    fields = set(CONTRACTS[source].model_fields) | {"email"}
    unknown = (set(maps) | set(sets)) - fields
    if unknown:
        raise ReplayError(
            f"unknown event fields {sorted(unknown)} for source {source!r}; known: {sorted(fields)}"
        )
    column_of = {f: maps.get(f, f) for f in fields}
    occurrences: Counter[bytes] = Counter()
    for row in rows:
        if "__error__" in row:
            yield row
            continue
        event: dict[str, Any] = {}
        for f, col in column_of.items():
            if f in sets:
                event[f] = _coerce(f, sets[f])
            elif col in row:
                value = _coerce(f, row[col])
                if value not in (None, ""):  # blank cells vanish
                    event[f] = value
        event["source"] = source
        if "event_id" not in event:
            # from the row's content and how often that content came before in the file:
            # replaying a file again, or a renamed copy, changes nothing; identical rows
            # (two page views on one day) stay two events; other exports never collide
            content = orjson.dumps(event, option=orjson.OPT_SORT_KEYS)
            occurrences[content] += 1
            digest = hashlib.blake2b(content + b"#%d" % occurrences[content], digest_size=12)
            event["event_id"] = "replay-" + digest.hexdigest()
        yield event


def replay_file(
    settings: Settings,
    path: Path,
    *,
    source: str,
    fmt: str,
    maps: list[str],
    sets: list[str],
    rejects: Path | None = None,
    console: Console | None = None,
) -> ReplayReport:
    if source not in CONTRACTS:
        raise ReplayError(f"unknown source {source!r}: use web, ad or crm")
    key = settings.email_hash_key.get_secret_value().encode()
    parser = EventParser(
        key,
        max_bytes=settings.max_event_bytes,
        versions=settings.schema_versions,
        min_year=settings.min_event_year,
    )
    report = ReplayReport()
    events = rows_to_events(_rows(path, fmt), source, _pairs(maps, "--map"), _pairs(sets, "--set"))
    reject_file = rejects.open("wb") if rejects else None
    good: list[tuple[str, bytes | None, bytes]] = []
    try:
        for n, event in enumerate(events, 1):
            if "__error__" in event:
                verdict: Any = Rejection("malformed_json", event["__error__"])
            else:
                event = hash_email_field(event, key)
                verdict = parser.parse_obj(dict(event), source)
            if isinstance(verdict, Rejection):
                report.rejected += 1
                report.reasons[verdict.reason] += 1
                if reject_file:
                    reject_file.write(
                        orjson.dumps({"row": n, "reason": verdict.reason, "detail": verdict.detail})
                        + b"\n"
                    )
                continue
            routing = event.get("user_id") or event.get("anonymous_id") or event.get("email_hash")
            good.append((source, str(routing).encode(), orjson.dumps(event)))
    finally:
        if reject_file:
            reject_file.close()
    if good:
        ensure_topics(settings)
        if console:
            with Progress(console=console, transient=True) as progress:
                task = progress.add_task("producing", total=len(good))
                report.sent = send_all(
                    settings, good, on_progress=lambda k: progress.update(task, completed=k)
                )
        else:
            report.sent = send_all(settings, good)
    return report
