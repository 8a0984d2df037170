"""consumers/replay.py: turning exported rows into events (the parts that need no Kafka)."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path

import pytest

from segstream.consumers.replay import ReplayError, _pairs, _rows, rows_to_events
from segstream.schemas.events import Event
from segstream.schemas.parse import EventParser

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
