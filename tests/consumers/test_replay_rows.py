"""consumers/replay.py: turning exported rows into events, and what it says about the rows
it rejects (the parts that need no Kafka)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path

import orjson
import pytest
from typer.testing import CliRunner

from segstream.consumers import replay
from segstream.consumers.cli import app
from segstream.consumers.replay import (
    LIMITED_BY,
    ReplayError,
    ReplayReport,
    _pairs,
    _rows,
    replay_file,
    rows_to_events,
)
from segstream.schemas.events import Event
from segstream.schemas.parse import REASONS, EventParser, Rejection
from segstream.schemas.settings import Settings

TS = 1_767_225_600_000  # 2026-01-01T00:00:00Z
PARSER = EventParser(b"replay-test-key", now=lambda: datetime(2026, 6, 1, tzinfo=UTC))


def events(rows, source="crm", maps=None, sets=None, path=Path("export.csv")):
    return list(rows_to_events(iter(rows), source, maps or {}, sets or {}))


def write(path: Path, text: str, encoding: str = "utf-8") -> Path:
    path.write_text(text, encoding=encoding)
    return path


# -------------------------------------------------------------------- _pairs


def test_pairs_parses_field_value_items():
    assert _pairs(["user_id=Customer", " amount =Total"], "--map") == {
        "user_id": "Customer",
        "amount": "Total",
    }


def test_pairs_keeps_equals_signs_in_the_value():
    assert _pairs(["page=a=b"], "--set") == {"page": "a=b"}


def test_pairs_allows_an_empty_value():
    assert _pairs(["channel="], "--set") == {"channel": ""}


@pytest.mark.parametrize("item", ["noequals", "=Column", ""])
def test_pairs_rejects_items_without_a_field(item):
    with pytest.raises(ReplayError, match="--map"):
        _pairs([item], "--map")


# --------------------------------------------------------------- rows_to_events


def test_map_renames_columns_and_set_applies_constants():
    rows = [
        {"Id": "o-1", "When": str(TS), "Customer": "cust-1", "Total": "19.90", "Note": "x"},
        {"Id": "o-2", "When": str(TS + 1), "Customer": "cust-2", "Total": "5", "Note": "y"},
    ]
    out = events(
        rows,
        maps={"event_id": "Id", "ts": "When", "user_id": "Customer", "amount": "Total"},
        sets={"type": "purchase"},
    )
    assert out == [
        {
            "event_id": "o-1",
            "ts": TS,
            "user_id": "cust-1",
            "amount": 19.9,
            "type": "purchase",
            "source": "crm",
        },
        {
            "event_id": "o-2",
            "ts": TS + 1,
            "user_id": "cust-2",
            "amount": 5.0,
            "type": "purchase",
            "source": "crm",
        },
    ]
    assert type(out[0]["ts"]) is int
    assert type(out[1]["amount"]) is float


def test_unmapped_columns_named_like_fields_are_read_and_others_ignored():
    out = events(
        [{"event_id": "e1", "type": "page_view", "ts": str(TS), "anonymous_id": "a1", "X": "1"}],
        source="web",
    )
    assert out == [
        {"event_id": "e1", "type": "page_view", "ts": TS, "anonymous_id": "a1", "source": "web"}
    ]


def test_set_overrides_a_column_of_the_same_field():
    out = events([{"type": "lead", "event_id": "e"}], sets={"type": "deal_won"})
    assert out[0]["type"] == "deal_won"


def test_set_values_are_coerced_like_cells():
    out = events([{"event_id": "e"}], source="ad", sets={"cost": "0.25", "ts": str(TS)})
    assert out[0]["cost"] == 0.25
    assert out[0]["ts"] == TS


def test_blank_and_missing_cells_are_dropped():
    out = events(
        [{"event_id": "e1", "user_id": "", "anonymous_id": None, "amount": "", "type": "churn"}]
    )
    assert out == [{"event_id": "e1", "type": "churn", "source": "crm"}]


def test_money_and_timestamps_are_coerced_from_csv_strings():
    out = events(
        [
            {
                "event_id": "e1",
                "ts": f" {TS} ",
                "cost": "1.5",
                "revenue": " 12 ",
                "schema_version": "2",
            }
        ],
        source="ad",
    )
    assert out[0]["ts"] == TS
    assert out[0]["cost"] == 1.5
    assert out[0]["revenue"] == 12.0
    assert out[0]["schema_version"] == 2


def test_negative_epoch_ms_is_an_int():
    assert events([{"event_id": "e", "ts": "-1000"}])[0]["ts"] == -1000


def test_iso_timestamps_and_unparseable_money_are_left_for_the_parser():
    out = events([{"event_id": "e", "ts": "2026-01-01T00:00:00Z", "amount": "12,50 EUR"}])
    assert out[0]["ts"] == "2026-01-01T00:00:00Z"
    assert out[0]["amount"] == "12,50 EUR"
    assert PARSER.parse_obj(dict(out[0], type="purchase", user_id="u"), "crm").reason == (
        "invalid_field"
    )


def test_json_values_are_kept_as_they_are():
    out = events([{"event_id": "e", "ts": TS, "amount": 3, "consent_marketing": False}])
    assert out[0]["ts"] == TS
    assert out[0]["amount"] == 3
    assert out[0]["consent_marketing"] is False


def test_mapped_rows_become_valid_events():
    rows = [{"Order": "o-9", "When": str(TS), "Who": "cust-9", "Total": "42.00"}]
    (ev,) = events(
        rows,
        maps={"event_id": "Order", "ts": "When", "user_id": "Who", "amount": "Total"},
        sets={"type": "purchase"},
    )
    parsed = PARSER.parse_obj(dict(ev), "crm")
    assert isinstance(parsed, Event)
    assert (parsed.event_id, parsed.user_id, parsed.ts_ms, parsed.amount) == (
        "o-9",
        "cust-9",
        TS,
        42.0,
    )


def test_generated_event_id_is_stable_for_the_same_content():
    rows = [{"user_id": "u1", "ts": str(TS)}, {"user_id": "u1", "ts": str(TS)}]
    first = events(rows, path=Path("orders.csv"))
    second = events(rows, path=Path("orders.csv"))
    ids = [e["event_id"] for e in first]
    assert ids == [e["event_id"] for e in second]  # replaying twice changes nothing
    assert ids[0] != ids[1]  # identical rows are still different events
    copy = [e["event_id"] for e in events(rows, path=Path("orders (copy).csv"))]
    assert copy == ids  # a renamed copy of the same export is the same events
    other_rows = [{"user_id": "u2", "ts": str(TS)}, {"user_id": "u1", "ts": str(TS + 1)}]
    other = [e["event_id"] for e in events(other_rows, path=Path("orders.csv"))]
    assert set(other).isdisjoint(ids)  # different content never collides
    assert all(isinstance(i, str) and i for i in ids)


def test_generated_event_id_passes_validation():
    (ev,) = events([{"user_id": "u1", "ts": str(TS), "type": "deal_lost"}])
    assert isinstance(PARSER.parse_obj(dict(ev), "crm"), Event)


def test_mapped_event_id_is_not_replaced():
    out = events([{"Ref": "r-1"}, {"Ref": ""}], maps={"event_id": "Ref"})
    assert out[0]["event_id"] == "r-1"
    assert out[1]["event_id"] not in ("", "r-1")  # blank cell: an id is generated


@pytest.mark.parametrize("flag", ["maps", "sets"])
def test_unknown_field_raises_replay_error_naming_it(flag):
    with pytest.raises(ReplayError, match="colour"):
        events([{"a": "1"}], **{flag: {"colour": "Colour"}})


def test_field_of_another_source_is_unknown():
    # cost belongs to ad events, not web events
    with pytest.raises(ReplayError, match="cost"):
        events([], source="web", maps={"cost": "Spend"})


def test_email_may_be_mapped():
    out = events([{"Mail": "Someone@Example.com", "event_id": "e"}], maps={"email": "Mail"})
    assert out[0]["email"] == "Someone@Example.com"


def test_error_rows_pass_through_unchanged():
    bad = {"__error__": "line 2: unexpected character"}
    out = events([{"event_id": "e1"}, bad, {"event_id": "e3"}])
    assert out[1] == bad
    assert [o.get("event_id") for o in (out[0], out[2])] == ["e1", "e3"]


@pytest.mark.parametrize("ts", ["--1767225600000", "1²"])
def test_garbage_timestamp_is_left_for_the_parser(ts):
    (ev,) = events([{"event_id": "e", "ts": ts, "user_id": "u", "type": "churn"}])
    assert PARSER.parse_obj(dict(ev), "crm").reason == "invalid_field"


def test_whitespace_only_cells_are_dropped_like_blank_ones():
    (ev,) = events(
        [{"event_id": "e", "ts": str(TS), "anonymous_id": "a1", "user_id": "  ", "revenue": " "}],
        source="web",
        sets={"type": "page_view"},
    )
    assert "user_id" not in ev
    assert "revenue" not in ev


# ----------------------------------------------------------------------- _rows


def test_csv_rows(tmp_path):
    path = write(tmp_path / "e.csv", 'event_id,ts,note\ne1,1,"a, b"\ne2,2,\n')
    assert list(_rows(path, "csv")) == [
        {"event_id": "e1", "ts": "1", "note": "a, b"},
        {"event_id": "e2", "ts": "2", "note": ""},
    ]


def test_csv_with_byte_order_mark_keeps_the_first_column_name(tmp_path):
    path = write(tmp_path / "excel.csv", "event_id,ts\ne1,5\n", encoding="utf-8-sig")
    assert path.read_bytes().startswith(b"\xef\xbb\xbf")
    assert list(_rows(path, "csv")) == [{"event_id": "e1", "ts": "5"}]


def test_jsonl_rows_skip_blank_lines(tmp_path):
    path = write(tmp_path / "e.jsonl", '{"event_id": "e1", "ts": 1}\n\n  \n{"event_id": "e2"}\n')
    assert list(_rows(path, "jsonl")) == [{"event_id": "e1", "ts": 1}, {"event_id": "e2"}]


def test_malformed_json_line_yields_an_error_row_not_an_exception(tmp_path):
    path = write(tmp_path / "e.jsonl", '{"event_id": "e1"}\n{"event_id": \n{"event_id": "e3"}\n')
    rows = list(_rows(path, "jsonl"))
    assert len(rows) == 3
    assert rows[0] == {"event_id": "e1"}
    assert set(rows[1]) == {"__error__"}
    assert "line 2" in rows[1]["__error__"]
    assert rows[2] == {"event_id": "e3"}


def test_jsonl_rows_through_rows_to_events(tmp_path):
    path = write(
        tmp_path / "crm.jsonl",
        f'{{"Ref": "r1", "ts": {TS}, "user_id": "u1"}}\nnot json\n{{"user_id": "u3"}}\n',
    )
    out = list(rows_to_events(_rows(path, "jsonl"), "crm", {"event_id": "Ref"}, {}))
    assert out[0] == {"event_id": "r1", "ts": TS, "user_id": "u1", "source": "crm"}
    assert "__error__" in out[1]
    assert out[2]["user_id"] == "u3" and out[2]["event_id"]


@pytest.mark.parametrize("line", ["42", "null", '"ts"'])
def test_jsonl_line_that_is_not_an_object_does_not_stop_the_replay(tmp_path, line):
    path = write(tmp_path / "e.jsonl", f'{{"event_id": "e1"}}\n{line}\n{{"event_id": "e3"}}\n')
    out = list(rows_to_events(_rows(path, "jsonl"), "crm", {}, {}))
    assert len(out) == 3
    assert out[0]["event_id"] == "e1" and out[2]["event_id"] == "e3"


def test_unknown_format_raises_replay_error(tmp_path):
    path = write(tmp_path / "e.xml", "<e/>")
    with pytest.raises(ReplayError, match="xml"):
        list(_rows(path, "xml"))


# ---------------------------------------------------- rejections and the summary
# replay_file reaches Kafka (ensure_topics, send_all) only with rows to send: these files
# are rejected whole, or the two are replaced by `sent`.


@pytest.fixture
def env(clean_env: None) -> None:
    """Settings from the code's defaults alone, whatever the developer's shell holds."""


@pytest.fixture
def no_kafka(monkeypatch):
    def fail(*args, **kwargs):
        raise AssertionError("Kafka was used")

    monkeypatch.setattr(replay, "ensure_topics", fail)
    monkeypatch.setattr(replay, "send_all", fail)


@pytest.fixture
def sent(monkeypatch) -> list[dict]:
    """The events replay_file would produce, without Kafka."""
    out: list[dict] = []

    def send_all(settings, records, on_progress=None):
        out.extend(orjson.loads(value) for _, _, value in records)
        return len(out)

    monkeypatch.setattr(replay, "ensure_topics", lambda settings: None)
    monkeypatch.setattr(replay, "send_all", send_all)
    return out


def ms(iso: str) -> int:
    return int(datetime.fromisoformat(iso).timestamp() * 1000)


def crm_csv(path: Path, *stamps: str | int) -> Path:
    lines = ["user_id,ts,type"] + [
        f"u{n},{ts if isinstance(ts, int) else ms(ts)},purchase" for n, ts in enumerate(stamps)
    ]
    return write(path, "\n".join(lines) + "\n")


def run(path: Path, source="crm", **settings) -> ReplayReport:
    return replay_file(Settings(**settings), path, source=source, fmt="csv", maps=[], sets=[])


def test_history_before_the_minimum_year_names_the_setting_and_the_year(env, no_kafka, tmp_path):
    path = crm_csv(tmp_path / "old.csv", "1995-06-01T00:00:00+00:00", "1987-03-02T12:00:00+00:00")
    report = run(path)
    assert (report.sent, report.rejected, dict(report.reasons)) == (0, 2, {"ts_too_old": 2})
    assert report.oldest_ms == ms("1987-03-02T12:00:00+00:00")
    assert report.summary(Settings()).splitlines() == [
        "every row was rejected (ts_too_old: 2): nothing was sent",
        "  2 rows are older than 2000-01-01 (SEGSTREAM_MIN_EVENT_YEAR=2000), the oldest from "
        "1987-03-02: set SEGSTREAM_MIN_EVENT_YEAR=1987 for this command and the workers to "
        "accept them",
    ]


def test_the_year_the_summary_names_accepts_the_rows(env, sent, tmp_path):
    path = crm_csv(tmp_path / "old.csv", "1995-06-01T00:00:00+00:00", "1987-03-02T12:00:00+00:00")
    report = run(path, min_event_year=1987)
    assert (report.sent, report.rejected) == (2, 0)
    assert report.summary(Settings(min_event_year=1987)) == "sent 2 events, rejected 0"


def test_history_before_1970_gets_the_earliest_year_the_setting_takes(env, no_kafka, tmp_path):
    report = run(crm_csv(tmp_path / "old.csv", "1965-01-01T00:00:00+00:00"))
    line = report.summary(Settings()).splitlines()[1]
    assert line.startswith("  1 row is older than 2000-01-01 (SEGSTREAM_MIN_EVENT_YEAR=2000)")
    assert "set SEGSTREAM_MIN_EVENT_YEAR=1970 for this command and the workers" in line
    assert "those from 1970 on (1970 is the earliest year it takes)" in line
    Settings(min_event_year=1970)  # the value it names is one the setting takes


def test_epoch_seconds_are_named_as_such_not_a_reason_to_lower_the_year(env, no_kafka, tmp_path):
    report = run(crm_csv(tmp_path / "seconds.csv", TS // 1000, TS // 1000 + 60))
    assert dict(report.reasons) == {"ts_too_old": 2}
    line = report.summary(Settings(), now=datetime(2026, 6, 1, tzinfo=UTC)).splitlines()[1]
    assert "the oldest from 1970-01-21" in line
    assert "look like epoch seconds (the oldest would be 2026-01-01): multiply them by 1000" in line
    assert "set SEGSTREAM_MIN_EVENT_YEAR" not in line


def test_replay_checks_the_future_skew_setting(env, no_kafka, tmp_path):
    soon = datetime.now(tz=UTC) + timedelta(hours=3)
    path = crm_csv(tmp_path / "soon.csv", soon.isoformat())
    report = run(path, max_future_skew_s=3600)
    assert dict(report.reasons) == {"ts_in_future": 1}
    line = report.summary(Settings(max_future_skew_s=3600), now=soon - timedelta(hours=3))
    assert line.splitlines()[1] == (
        "  1 row is dated more than 3,600 s ahead of the clock "
        f"(SEGSTREAM_MAX_FUTURE_SKEW_S=3600), the latest {soon:%Y-%m-%d %H:%M} UTC: set "
        "SEGSTREAM_MAX_FUTURE_SKEW_S=10800 for this command and the workers to accept them "
        "(or check the export's clock)"
    )


def test_replay_checks_the_size_the_workers_check(env, no_kafka, sent, tmp_path):
    path = write(tmp_path / "big.csv", f"user_id,ts,type,page\nu1,{TS},page_view,/{'x' * 400}\n")
    report = run(path, source="web", max_event_bytes=256)
    assert dict(report.reasons) == {"oversized": 1}
    assert report.largest_bytes is not None and report.largest_bytes > 400
    (line,) = report.summary(Settings(max_event_bytes=256)).splitlines()[1:]
    assert line == (
        "  1 row is larger than 256 bytes as events (SEGSTREAM_MAX_EVENT_BYTES=256), the "
        f"largest {report.largest_bytes:,}: set SEGSTREAM_MAX_EVENT_BYTES="
        f"{report.largest_bytes} for this command and the workers to accept them"
    )
    again = run(path, source="web", max_event_bytes=report.largest_bytes)
    assert (again.sent, again.rejected) == (1, 0)
    assert sent[0]["page"] == "/" + "x" * 400


def test_a_schema_version_the_setting_leaves_out_names_the_value_that_takes_it(
    env, no_kafka, tmp_path
):
    path = write(tmp_path / "v1.csv", f"user_id,timestamp,type,schema_version\nu1,{TS},churn,1\n")
    report = run(path, schema_versions=(2,))
    assert dict(report.reasons) == {"unknown_schema_version": 1}
    assert report.summary(Settings(schema_versions=(2,))).splitlines()[1] == (
        "  1 row has a schema_version outside SEGSTREAM_SCHEMA_VERSIONS=[2]: set "
        "SEGSTREAM_SCHEMA_VERSIONS='[1,2]' for this command and the workers to accept version 1"
    )


def test_a_schema_version_this_release_does_not_read_is_not_a_setting(env, no_kafka, tmp_path):
    path = write(tmp_path / "v3.csv", f"user_id,ts,type,schema_version\nu1,{TS},churn,3\n")
    report = run(path)
    assert report.summary(Settings()).splitlines()[1] == (
        "  1 row has a schema_version outside SEGSTREAM_SCHEMA_VERSIONS=[1,2]: this release "
        "reads versions 1, 2; convert the rows to one of them"
    )


def test_rejections_no_setting_decides_get_no_line(env, sent, tmp_path):
    path = write(tmp_path / "mixed.csv", f"user_id,ts,type\nu1,{TS},churn\n,{TS},churn\n")
    report = run(path)
    assert report.summary(Settings()) == "sent 1 event, rejected 1 (missing_identity: 1)"


def test_an_invalid_raw_email_is_a_rejected_row_not_a_crash(env, no_kafka, tmp_path):
    path = write(tmp_path / "e.csv", f"email,ts,type\nnot an address,{TS},churn\n")
    assert dict(run(path).reasons) == {"invalid_email": 1}


def test_an_empty_file_says_so(env, no_kafka, tmp_path):
    report = run(write(tmp_path / "empty.csv", "user_id,ts,type\n"))
    assert report.summary(Settings()) == "no rows in the file: nothing was sent"


def test_each_limited_reason_is_a_parser_reason_and_its_setting_a_field():
    assert set(LIMITED_BY) <= set(REASONS)
    for reason, name in LIMITED_BY.items():
        assert name.removeprefix("SEGSTREAM_").lower() in Settings.model_fields, reason
        report = ReplayReport()
        report.reject(Rejection(reason, "", None))  # even without the value refused
        line = report.summary(Settings()).splitlines()[1]
        assert f"{name}=" in line, line  # its current value


def test_the_command_prints_the_summary_and_exits_1_when_every_row_is_rejected(
    env, no_kafka, tmp_path
):
    path = crm_csv(tmp_path / "old.csv", *["1990-01-01T00:00:00+00:00"] * 3214)
    result = CliRunner().invoke(app, ["replay", str(path), "--source", "crm"])
    assert result.exit_code == 1
    assert "every row was rejected (ts_too_old: 3,214): nothing was sent" in result.output
    assert (
        "3,214 rows are older than 2000-01-01 (SEGSTREAM_MIN_EVENT_YEAR=2000), the oldest "
        "from 1990-01-01: set SEGSTREAM_MIN_EVENT_YEAR=1990 for this command and the workers "
        "to accept them"
    ) in result.output


def test_the_command_reads_the_setting_it_names(env, sent, tmp_path, monkeypatch):
    monkeypatch.setenv("SEGSTREAM_MIN_EVENT_YEAR", "1990")
    path = crm_csv(tmp_path / "old.csv", "1990-01-01T00:00:00+00:00", "1985-01-01T00:00:00+00:00")
    result = CliRunner().invoke(app, ["replay", str(path), "--source", "crm"])
    assert result.exit_code == 0, result.output
    assert "sent 1 event, rejected 1 (ts_too_old: 1)" in result.output
    assert "(SEGSTREAM_MIN_EVENT_YEAR=1990), the oldest from 1985-01-01" in result.output
