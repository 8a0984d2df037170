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
import json
import math
import re
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any, cast

import annotated_types
import orjson
from rich.console import Console
from rich.progress import Progress

from segstream.schemas.errors import ReplayError
from segstream.schemas.events import CONTRACTS, EPOCH
from segstream.schemas.parse import Rejection, parser_for
from segstream.schemas.privacy import hash_email_field
from segstream.schemas.settings import Settings
from segstream.streams.produce import send_all
from segstream.streams.topics import ensure_topics

__all__ = ["ReplayError", "ReplayReport", "replay_file", "rows_to_events"]

NUMERIC_FIELDS = {"cost", "revenue", "amount"}
_INTEGER = re.compile(r"-?[0-9]{1,18}")  # ASCII digits only: str.isdigit() accepts "²"


# the rejections that a setting decides, and that setting: ``ReplayReport.summary`` says
# what each refused and which value would accept it
LIMITED_BY = {
    "ts_too_old": "SEGSTREAM_MIN_EVENT_YEAR",
    "ts_in_future": "SEGSTREAM_MAX_FUTURE_SKEW_S",
    "oversized": "SEGSTREAM_MAX_EVENT_BYTES",
    "unknown_schema_version": "SEGSTREAM_SCHEMA_VERSIONS",
}


@dataclass
class ReplayReport:
    """What a replay did: events sent, rows rejected by reason and, for rejections by a
    configured limit, the furthest value each limit refused (see :meth:`summary`)."""

    sent: int = 0
    rejected: int = 0
    reasons: Counter[str] = field(default_factory=Counter)
    oldest_ms: int | None = None  # ts_too_old: the earliest event time refused
    latest_ms: int | None = None  # ts_in_future: the latest event time refused
    largest_bytes: int | None = None  # oversized: the largest event refused
    versions: set[int] = field(default_factory=set)  # unknown_schema_version: those seen

    def reject(self, rejection: Rejection) -> None:
        """Count a rejected row."""
        self.rejected += 1
        self.reasons[rejection.reason] += 1
        value = rejection.value
        if value is None:
            return
        if rejection.reason == "ts_too_old":
            self.oldest_ms = value if self.oldest_ms is None else min(self.oldest_ms, value)
        elif rejection.reason == "ts_in_future":
            self.latest_ms = value if self.latest_ms is None else max(self.latest_ms, value)
        elif rejection.reason == "oversized":
            self.largest_bytes = max(self.largest_bytes or 0, value)
        elif rejection.reason == "unknown_schema_version":
            self.versions.add(value)

    def summary(self, settings: Settings, now: datetime | None = None) -> str:
        """What was sent and rejected, then one line per reason that a setting decides:
        the limit, its value, and the value of the setting that would accept those rows
        (the workers check again: they need it too). ``settings``: the replay's."""
        counts = ", ".join(f"{r}: {n:,}" for r, n in self.reasons.most_common())
        if self.sent:
            events = "1 event" if self.sent == 1 else f"{self.sent:,} events"
            lines = [f"sent {events}, rejected {self.rejected:,}"]
            lines[0] += f" ({counts})" if counts else ""
        elif self.rejected:
            lines = [f"every row was rejected ({counts}): nothing was sent"]
        else:
            lines = ["no rows in the file: nothing was sent"]
        now = now or datetime.now(tz=UTC)
        for reason, n in self.reasons.most_common():
            if reason == "ts_too_old":
                lines.append(self._too_old(n, settings, now))
            elif reason == "ts_in_future":
                lines.append(self._in_future(n, settings, now))
            elif reason == "oversized":
                lines.append(self._oversized(n, settings))
            elif reason == "unknown_schema_version":
                lines.append(self._versions(n, settings))
        return "\n".join(lines)

    def _too_old(self, n: int, s: Settings, now: datetime) -> str:
        name, year = LIMITED_BY["ts_too_old"], s.min_event_year
        text = f"  {_counted(n, 'is', 'are')} older than {year}-01-01 ({name}={year})"
        if self.oldest_ms is None:
            return f"{text}: set {name} to an earlier year {_HERE} to accept them"
        oldest = _time(self.oldest_ms)
        text += f", the oldest from {oldest:%Y-%m-%d}"
        if _ms(datetime(year, 1, 1, tzinfo=UTC)) <= self.oldest_ms * 1000 <= _ms(now):
            as_seconds = _time(self.oldest_ms * 1000)
            return (
                f"{text}: ts is read as epoch milliseconds, and these look like epoch seconds "
                f"(the oldest would be {as_seconds:%Y-%m-%d}): multiply them by 1000"
            )
        floor = _lowest(s, "min_event_year")
        if oldest.year >= floor:
            return f"{text}: set {name}={oldest.year} {_HERE} to accept them"
        return (
            f"{text}: set {name}={floor} {_HERE} to accept those from {floor} on "
            f"({floor} is the earliest year it takes)"
        )

    def _in_future(self, n: int, s: Settings, now: datetime) -> str:
        name, skew = LIMITED_BY["ts_in_future"], s.max_future_skew_s
        text = f"  {_counted(n, 'is', 'are')} dated more than {skew:,} s ahead of the clock "
        text += f"({name}={skew})"
        if self.latest_ms is None:
            return f"{text}: raise {name} {_HERE} to accept them"
        latest = _time(self.latest_ms)
        ahead = max(skew + 1, math.ceil((latest - now).total_seconds()))
        return (
            f"{text}, the latest {latest:%Y-%m-%d %H:%M} UTC: set {name}={ahead} {_HERE} to "
            "accept them (or check the export's clock)"
        )

    def _oversized(self, n: int, s: Settings) -> str:
        name, limit = LIMITED_BY["oversized"], s.max_event_bytes
        text = f"  {_counted(n, 'is', 'are')} larger than {limit:,} bytes as events "
        text += f"({name}={limit})"
        if self.largest_bytes is None:
            return f"{text}: raise {name} {_HERE} to accept them"
        return (
            f"{text}, the largest {self.largest_bytes:,}: set {name}={self.largest_bytes} "
            f"{_HERE} to accept them"
        )

    def _versions(self, n: int, s: Settings) -> str:
        name, allowed = LIMITED_BY["unknown_schema_version"], s.schema_versions
        text = f"  {_counted(n, 'has', 'have')} a schema_version outside {name}={_json(allowed)}"
        # the default accepts every version this release reads (schemas/versions.py)
        readable = cast(tuple[int, ...], Settings.model_fields["schema_versions"].default)
        known = sorted((self.versions & set(readable)) - set(allowed))
        if known:
            wider = sorted({*allowed, *known})
            listed = ", ".join(map(str, known))
            return f"{text}: set {name}='{_json(wider)}' {_HERE} to accept version {listed}"
        return (
            f"{text}: this release reads versions {', '.join(map(str, readable))}; convert "
            "the rows to one of them"
        )


_HERE = "for this command and the workers"  # both check: they need the same settings


def _counted(n: int, singular: str, plural: str) -> str:
    return f"1 row {singular}" if n == 1 else f"{n:,} rows {plural}"


def _time(ms: int) -> datetime:
    return EPOCH + timedelta(milliseconds=ms)


def _ms(t: datetime) -> int:
    return (t - EPOCH) // timedelta(milliseconds=1)


def _json(values: Any) -> str:
    return json.dumps(list(values), separators=(",", ":"))


def _lowest(settings: Settings, name: str) -> int:
    """The lowest value a setting takes (its ``ge`` bound), else its current one."""
    for bound in type(settings).model_fields[name].metadata:
        if isinstance(bound, annotated_types.Ge):
            return cast(int, bound.ge)
    return cast(int, getattr(settings, name))


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
    parser = parser_for(settings)  # the limits the workers check
    report = ReplayReport()
    events = rows_to_events(_rows(path, fmt), source, _pairs(maps, "--map"), _pairs(sets, "--set"))
    reject_file = rejects.open("wb") if rejects else None
    good: list[tuple[str, bytes | None, bytes]] = []
    try:
        for n, event in enumerate(events, 1):
            value = b""
            if "__error__" in event:
                verdict: Any = Rejection("malformed_json", event["__error__"])
            else:
                try:
                    event = hash_email_field(event, key)
                except ValueError:
                    verdict = Rejection("invalid_email", "email is not a valid address")
                else:
                    # the bytes the workers will read, checked as they check them (size too)
                    value = orjson.dumps(event)
                    verdict = parser.parse(value, source)
            if isinstance(verdict, Rejection):
                report.reject(verdict)
                if reject_file:
                    reject_file.write(
                        orjson.dumps({"row": n, "reason": verdict.reason, "detail": verdict.detail})
                        + b"\n"
                    )
                continue
            routing = event.get("user_id") or event.get("anonymous_id") or event.get("email_hash")
            good.append((source, str(routing).encode(), value))
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
