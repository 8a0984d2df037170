"""schemas/parse.py: raw record bytes → Event or Rejection."""

from __future__ import annotations

import hashlib
import hmac
from datetime import UTC, datetime, timedelta
from typing import Any

import orjson
import pytest

from segstream.schemas.events import Event
from segstream.schemas.parse import REASONS, EventParser, Rejection, event_digest

KEY = b"test-hash-key"
NOW = datetime(2026, 1, 1, tzinfo=UTC)
NOW_MS = 1_767_225_600_000  # 2026-01-01T00:00:00Z
# 2025-12-31T10:00:00+01:00 is 2025-12-31T09:00:00Z, 15 hours before NOW
TS_ISO = "2025-12-31T10:00:00+01:00"
TS_MS = NOW_MS - 15 * 3_600_000
RAW_EMAIL = "ann@example.com"


def parser(**kw: Any) -> EventParser:
    return EventParser(KEY, now=lambda: NOW, **kw)


def dumps(obj: Any) -> bytes:
    return orjson.dumps(obj)


def web(**kw: Any) -> dict[str, Any]:
    base: dict[str, Any] = {
        "event_id": "w-1",
        "source": "web",
        "type": "page_view",
        "ts": TS_ISO,
        "anonymous_id": "anon-1",
    }
    return {**base, **kw}


def crm(**kw: Any) -> dict[str, Any]:
    base: dict[str, Any] = {
        "event_id": "c-1",
        "source": "crm",
        "type": "purchase",
        "ts": TS_MS,
        "user_id": "cust-1",
    }
    return {**base, **kw}


def expect_event(result: Event | Rejection) -> Event:
    assert isinstance(result, Event), result
    return result


def expect_rejection(result: Event | Rejection, reason: str) -> Rejection:
    assert isinstance(result, Rejection), result
    assert result.reason == reason, result
    assert result.reason in REASONS
    return result


# ---------------------------------------------------------------- valid events


@pytest.mark.parametrize(
    "ts", [TS_ISO, "2025-12-31T09:00:00Z", TS_MS], ids=["iso+01", "isoZ", "ms"]
)
def test_web_event_is_flattened_and_normalised(ts):
    raw = dumps(
        web(
            ts=ts,
            type="Purchase",
            session_id="s-1",
            device_type="Mobile",
            utm_source="Newsletter",
            utm_campaign="spring",
            revenue=12.5,
            page="/p/1",
        )
    )
    ev = expect_event(parser().parse(raw, "web"))
    assert ev == Event(
        event_id="w-1",
        source="web",
        type="purchase",
        ts_ms=TS_MS,
        anonymous_id="anon-1",
        session_id="s-1",
        device_type="mobile",
        channel="newsletter",
        campaign_id="spring",
        amount=12.5,
    )


def test_web_channel_takes_precedence_over_utm_source():
    raw = dumps(web(channel="Email", utm_source="google"))
    assert expect_event(parser().parse(raw, "web")).channel == "email"


@pytest.mark.parametrize("ts", [TS_ISO, TS_MS], ids=["iso", "ms"])
def test_ad_event(ts):
    raw = dumps(
        {
            "event_id": "ad-1",
            "source": "ad",
            "type": "click",
            "ts": ts,
            "anonymous_id": "anon-1",
            "channel": "Google_Ads",
            "campaign_id": "cmp-1",
            "cost": 1.25,
            "revenue": 3.0,
        }
    )
    ev = expect_event(parser().parse(raw, "ad"))
    assert (ev.source, ev.type, ev.ts_ms) == ("ad", "click", TS_MS)
    assert (ev.channel, ev.campaign_id, ev.cost, ev.amount) == ("google_ads", "cmp-1", 1.25, 3.0)


def test_ad_event_requires_a_channel():
    raw = dumps(
        {"event_id": "ad-1", "source": "ad", "type": "click", "ts": TS_MS, "anonymous_id": "a"}
    )
    rej = expect_rejection(parser().parse(raw, "ad"), "invalid_field")
    assert "channel" in rej.detail


@pytest.mark.parametrize("ts", [TS_ISO, TS_MS], ids=["iso", "ms"])
def test_crm_event(ts):
    raw = dumps(crm(ts=ts, amount=-20.0, consent_marketing=False, attributes={"tier": "gold"}))
    ev = expect_event(parser().parse(raw, "crm"))
    assert ev == Event(
        event_id="c-1",
        source="crm",
        type="purchase",
        ts_ms=TS_MS,
        user_id="cust-1",
        amount=-20.0,
        consent_marketing=False,
    )


def test_iso_and_epoch_ms_give_the_same_event():
    p = parser()
    a = expect_event(p.parse(dumps(web(ts=TS_ISO)), "web"))
    b = expect_event(p.parse(dumps(web(ts=TS_MS)), "web"))
    c = expect_event(p.parse(dumps(web(ts="2025-12-31T09:00:00.000+00:00")), "web"))
    assert a == b == c


def test_millisecond_precision_is_kept():
    ev = expect_event(parser().parse(dumps(web(ts=TS_MS + 123)), "web"))
    assert ev.ts_ms == TS_MS + 123


@pytest.mark.parametrize("ts", [1_093_077_386_909, "2004-08-21T08:36:26.909Z"], ids=["ms", "iso"])
def test_millisecond_timestamps_survive_exactly(ts):
    ev = expect_event(parser().parse(dumps(web(ts=ts)), "web"))
    assert ev.ts_ms == 1_093_077_386_909


def test_missing_source_is_taken_from_the_topic():
    data = web()
    del data["source"]
    assert expect_event(parser().parse(dumps(data), "web")).source == "web"


def test_whitespace_around_strings_is_stripped():
    ev = expect_event(parser().parse(dumps(web(event_id="  w-9 ", anonymous_id=" a-9 ")), "web"))
    assert (ev.event_id, ev.anonymous_id) == ("w-9", "a-9")


def test_unknown_fields_are_ignored():
    ev = expect_event(parser().parse(dumps(web(gender="f", age=33, region="x")), "web"))
    assert "gender" not in ev.to_dict()


# ----------------------------------------------------------- schema versions


def test_version_1_and_2_give_equal_events():
    p = parser()
    v1 = {
        "event_id": "e1",
        "source": "web",
        "type": "page_view",
        "schema_version": 1,
        "timestamp": TS_MS,
        "anon_id": "anon-7",
        "session_id": "s",
    }
    v2 = {
        "event_id": "e1",
        "source": "web",
        "type": "page_view",
        "schema_version": 2,
        "ts": TS_MS,
        "anonymous_id": "anon-7",
        "session_id": "s",
    }
    implicit = {k: v for k, v in v2.items() if k != "schema_version"}
    e1 = expect_event(p.parse(dumps(v1), "web"))
    e2 = expect_event(p.parse(dumps(v2), "web"))
    e3 = expect_event(p.parse(dumps(implicit), "web"))
    assert e1 == e2 == e3
    assert e1.anonymous_id == "anon-7"
    assert e1.ts_ms == TS_MS


def test_version_1_names_are_not_understood_in_version_2():
    data = {
        "event_id": "e1",
        "source": "web",
        "type": "page_view",
        "schema_version": 2,
        "timestamp": TS_MS,
        "anon_id": "anon-7",
    }
    rej = expect_rejection(parser().parse(dumps(data), "web"), "invalid_field")
    assert "ts" in rej.detail


@pytest.mark.parametrize("version", [3, 0, "x", "2", True, None])
def test_unknown_schema_version(version):
    expect_rejection(
        parser().parse(dumps(web(schema_version=version)), "web"), "unknown_schema_version"
    )


def test_accepted_versions_are_configurable():
    p = parser(versions=(2,))
    v1 = {
        "event_id": "e1",
        "source": "web",
        "type": "t",
        "schema_version": 1,
        "timestamp": TS_MS,
        "anon_id": "a",
    }
    expect_rejection(p.parse(dumps(v1), "web"), "unknown_schema_version")


@pytest.mark.parametrize("version", [[2], {"v": 2}], ids=["list", "object"])
def test_unhashable_schema_version_is_a_rejection(version):
    raw = dumps(web(schema_version=version))
    expect_rejection(parser().parse(raw, "web"), "unknown_schema_version")


# ----------------------------------------------------------------- rejections


def test_empty():
    expect_rejection(parser().parse(b"", "web"), "empty")
    expect_rejection(parser().parse(None, "web"), "empty")


def test_oversized():
    p = parser(max_bytes=256)
    small = dumps(web(page="/p"))
    assert len(small) <= 256
    expect_event(p.parse(small, "web"))
    big = dumps(web(page="/" + "x" * 300))
    rej = expect_rejection(p.parse(big, "web"), "oversized")
    assert str(len(big)) in rej.detail


def test_oversized_is_checked_before_decoding():
    p = parser(max_bytes=256)
    expect_rejection(p.parse(b"\xff" * 300, "web"), "oversized")


def test_invalid_utf8():
    raw = b'{"event_id": "e\xff1", "source": "web"}'
    expect_rejection(parser().parse(raw, "web"), "invalid_utf8")


@pytest.mark.parametrize("raw", [b"{not json", b'{"event_id": "e1",}', b'{"a": 1} trailing'])
def test_malformed_json(raw):
    expect_rejection(parser().parse(raw, "web"), "malformed_json")


@pytest.mark.parametrize("raw", [b"[1, 2]", b'"page_view"', b"42", b"null", b"true"])
def test_not_an_object(raw):
    expect_rejection(parser().parse(raw, "web"), "not_an_object")


def test_source_mismatch():
    raw = dumps(web(source="ad"))
    rej = expect_rejection(parser().parse(raw, "web"), "source_mismatch")
    assert "web" in rej.detail


@pytest.mark.parametrize(
    "email",
    [
        "not-an-email",
        "ann@localhost",
        "@example.com",
        "ann smith@example.com",
        42,
        ["ann@example.com"],
    ],
)
def test_invalid_email(email):
    rej = expect_rejection(parser().parse(dumps(crm(email=email)), "crm"), "invalid_email")
    assert "example.com" not in rej.detail


def test_null_email_is_ignored():
    ev = expect_event(parser().parse(dumps(crm(email=None)), "crm"))
    assert ev.email_hash is None


@pytest.mark.parametrize(
    ("patch", "field"),
    [
        ({"revenue": "lots"}, "revenue"),
        ({"revenue": -1.0}, "revenue"),
        ({"session_id": ""}, "session_id"),
        ({"type": ""}, "type"),
        ({"event_id": 17}, "event_id"),
        ({"ts": True}, "ts"),
        ({"ts": "yesterday"}, "ts"),
        ({"email_hash": "ABC"}, "email_hash"),
    ],
)
def test_invalid_field(patch, field):
    rej = expect_rejection(parser().parse(dumps(web(**patch)), "web"), "invalid_field")
    assert rej.detail.startswith(field)


def test_missing_event_id_is_invalid_field():
    data = web()
    del data["event_id"]
    rej = expect_rejection(parser().parse(dumps(data), "web"), "invalid_field")
    assert "event_id" in rej.detail


def test_naive_iso_timestamp_is_rejected():
    rej = expect_rejection(
        parser().parse(dumps(web(ts="2025-12-31T10:00:00")), "web"), "invalid_field"
    )
    assert rej.detail.startswith("ts")


def test_non_finite_epoch_is_rejected():
    # JSON has no NaN, but parse_obj can be handed one directly
    rej = expect_rejection(parser().parse_obj(web(ts=float("nan")), "web"), "invalid_field")
    assert rej.detail.startswith("ts")


@pytest.mark.parametrize("ts_literal", [b"1e300", b"-1e300", b"1e20"])
def test_out_of_range_epoch_is_a_rejection(ts_literal):
    raw = (
        b'{"event_id": "e1", "source": "web", "type": "page_view", '
        b'"anonymous_id": "a1", "ts": ' + ts_literal + b"}"
    )
    assert isinstance(parser().parse(raw, "web"), Rejection)


def test_missing_identity():
    data = web()
    del data["anonymous_id"]
    expect_rejection(parser().parse(dumps(data), "web"), "missing_identity")
    expect_rejection(parser().parse(dumps(web(anonymous_id=None)), "web"), "missing_identity")


@pytest.mark.parametrize("field", ["user_id", "anonymous_id"])
def test_each_identifier_alone_is_enough(field):
    data = web()
    del data["anonymous_id"]
    data[field] = "x-1"
    assert getattr(expect_event(parser().parse(dumps(data), "web")), field) == "x-1"


def test_email_hash_alone_is_enough():
    data = web(email_hash="ab" * 32)
    del data["anonymous_id"]
    assert expect_event(parser().parse(dumps(data), "web")).email_hash == "ab" * 32


def test_ts_in_future_respects_the_skew():
    p = parser(max_future_skew=timedelta(days=1))
    edge = NOW_MS + 86_400_000
    assert expect_event(p.parse(dumps(web(ts=edge)), "web")).ts_ms == edge
    expect_rejection(p.parse(dumps(web(ts=edge + 1)), "web"), "ts_in_future")
    expect_rejection(p.parse(dumps(web(ts="2026-01-03T00:00:00Z")), "web"), "ts_in_future")


def test_now_is_called_per_record():
    clock = [NOW]
    p = EventParser(KEY, now=lambda: clock[0], max_future_skew=timedelta(0))
    raw = dumps(web(ts=NOW_MS + 1000))
    expect_rejection(p.parse(raw, "web"), "ts_in_future")
    clock[0] = NOW + timedelta(seconds=1)
    expect_event(p.parse(raw, "web"))


def test_ts_too_old():
    p = parser(min_year=2000)
    expect_event(p.parse(dumps(web(ts="2000-01-01T00:00:00Z")), "web"))
    expect_rejection(p.parse(dumps(web(ts="1999-12-31T23:59:59.999Z")), "web"), "ts_too_old")
    expect_rejection(p.parse(dumps(web(ts=0)), "web"), "ts_too_old")
    expect_rejection(p.parse(dumps(web(ts=-5)), "web"), "ts_too_old")


def test_every_reason_is_reachable():
    p = parser(max_bytes=512)
    no_identity = web()
    del no_identity["anonymous_id"]
    cases = {
        "oversized": dumps(web(page="/" + "x" * 600)),
        "empty": b"",
        "invalid_utf8": b'{"a": "\xc3\x28"}',
        "malformed_json": b'{"event_id": ',
        "not_an_object": b"[]",
        "unknown_schema_version": dumps(web(schema_version=3)),
        "source_mismatch": dumps(web(source="crm")),
        "invalid_email": dumps(web(email="nobody")),
        "invalid_field": dumps(web(revenue="free")),
        "missing_identity": dumps(no_identity),
        "ts_in_future": dumps(web(ts="2027-01-01T00:00:00Z")),
        "ts_too_old": dumps(web(ts="1990-01-01T00:00:00Z")),
    }
    produced = {reason: p.parse(raw, "web") for reason, raw in cases.items()}
    for reason, result in produced.items():
        expect_rejection(result, reason)
    assert set(produced) == set(REASONS)


# -------------------------------------------------------------------- privacy


def _hmac(email: str) -> str:
    return hmac.new(KEY, email.encode(), hashlib.sha256).hexdigest()


@pytest.mark.parametrize("email", ["  Ann@Example.com", "ann@example.com", "ANN@EXAMPLE.COM "])
def test_raw_email_is_hashed_and_dropped(email):
    ev = expect_event(parser().parse(dumps(crm(email=email)), "crm"))
    assert ev.email_hash == _hmac("ann@example.com")
    assert ev.email_sha256 == hashlib.sha256(b"ann@example.com").hexdigest()
    text = (repr(ev) + repr(ev.to_dict())).lower()
    assert "ann@example.com" not in text
    assert "@" not in text


def test_email_hashes_do_not_depend_on_case_or_spaces():
    p = parser()
    a = expect_event(p.parse(dumps(crm(email="  Ann@Example.com")), "crm"))
    b = expect_event(p.parse(dumps(crm(email="ann@example.com")), "crm"))
    assert a.email_hash and a.email_sha256
    assert (a.email_hash, a.email_sha256) == (b.email_hash, b.email_sha256)


def test_email_hash_depends_on_the_key():
    a = EventParser(b"k1", now=lambda: NOW).parse(dumps(crm(email=RAW_EMAIL)), "crm")
    b = EventParser(b"k2", now=lambda: NOW).parse(dumps(crm(email=RAW_EMAIL)), "crm")
    a, b = expect_event(a), expect_event(b)
    assert a.email_hash != b.email_hash
    assert a.email_sha256 == b.email_sha256  # plain SHA-256 is key-independent on purpose


def test_explicit_hashes_win_over_raw_email():
    given = "cd" * 32
    ev = expect_event(parser().parse(dumps(crm(email=RAW_EMAIL, email_hash=given)), "crm"))
    assert ev.email_hash == given
    assert ev.email_sha256 == hashlib.sha256(RAW_EMAIL.encode()).hexdigest()


def test_email_alone_is_an_identity():
    data = web(email=RAW_EMAIL)
    del data["anonymous_id"]
    assert expect_event(parser().parse(dumps(data), "web")).email_hash == _hmac(RAW_EMAIL)


@pytest.mark.parametrize(
    "patch",
    [
        {"amount": "ann@example.com"},
        {"consent_marketing": "ann@example.com"},
        {"ts": "ann@example.com"},
        {"email_hash": "ann@example.com"},
        {"amount": {"ann@example.com": 1}},
        {"type": "ann@example.com" + "x" * 64},
        {"attributes": {"tier": ["ann@example.com"]}},
        {"ts": 1_000},  # too old
        {"ts": "2031-01-01T00:00:00Z"},  # in the future
        {"schema_version": 2, "source": "crm", "event_id": ""},
    ],
)
def test_rejection_never_contains_the_raw_email(patch):
    # the email is valid and present in every record; something else is wrong
    data = crm(email="  Ann@Example.com", **patch)
    result = parser().parse(dumps(data), "crm")
    assert isinstance(result, Rejection)
    assert "ann@example.com" not in repr(result).lower()


@pytest.mark.parametrize(
    ("patch", "value"),
    [
        ({"revenue": "SECRET-VALUE-17"}, "SECRET-VALUE-17"),
        ({"session_id": "S" * 300}, "S" * 300),
        ({"device_type": "DEVICE-" * 10}, "DEVICE-" * 10),
        ({"ts": "NOT-A-TIME-4711"}, "NOT-A-TIME-4711"),
        ({"ts": "2025-12-31T10:00:00"}, "2025-12-31T10:00:00"),
        ({"email_hash": "deadbeef-not-a-hash"}, "deadbeef-not-a-hash"),
        ({"event_id": ["LIST-VALUE-99"]}, "LIST-VALUE-99"),
        ({"revenue": 4.2e12}, "4200000000000"),
    ],
)
def test_invalid_field_detail_does_not_echo_the_value(patch, value):
    rej = expect_rejection(parser().parse(dumps(web(**patch)), "web"), "invalid_field")
    assert value not in rej.detail
    assert value.lower() not in repr(rej).lower()


def test_invalid_field_detail_is_bounded():
    bad = web(
        revenue="x",
        session_id="",
        type="",
        event_id="",
        device_type="d" * 99,
        channel="c" * 99,
        utm_source="u" * 200,
    )
    rej = expect_rejection(parser().parse(dumps(bad), "web"), "invalid_field")
    assert rej.detail.count(";") == 4  # seven errors, five described


def test_attribute_keys_are_not_echoed():
    data = crm(attributes={"ann@example.com": ["not", "a", "scalar"]})
    rej = expect_rejection(parser().parse(dumps(data), "crm"), "invalid_field")
    assert "ann@example.com" not in rej.detail


@pytest.mark.parametrize("field", ["schema_version", "source"])
def test_envelope_rejections_do_not_echo_the_value(field):
    rej = parser().parse(dumps(web(**{field: RAW_EMAIL})), "web")
    assert isinstance(rej, Rejection)
    assert RAW_EMAIL not in rej.detail


# ----------------------------------------------------------------- misc


def test_parse_obj_accepts_a_dict():
    ev = expect_event(parser().parse_obj(web(ts=TS_MS), "web"))
    assert ev.ts_ms == TS_MS


def test_event_digest_is_stable_and_63_bit():
    a = event_digest("evt-000000001")
    assert a == event_digest("evt-000000001")
    assert a != event_digest("evt-000000002")
    assert 0 <= a < 2**63
    expected = int.from_bytes(hashlib.blake2b(b"evt-000000001", digest_size=8).digest(), "big") >> 1
    assert a == expected


# ------------------------------------------- rejections by a limit that a setting sets


def test_rejections_by_a_configured_limit_carry_what_it_refused_and_name_the_setting():
    p = parser(max_bytes=256, min_year=2000, max_future_skew=timedelta(hours=1), versions=(2,))
    big = dumps(web(page="/" + "x" * 300))
    cases = [
        (big, "oversized", len(big), "256 (SEGSTREAM_MAX_EVENT_BYTES)"),
        (
            dumps(web(ts="1987-03-02T00:00:00Z")),
            "ts_too_old",
            int(datetime(1987, 3, 2, tzinfo=UTC).timestamp() * 1000),
            "before 2000-01-01, the minimum (SEGSTREAM_MIN_EVENT_YEAR)",
        ),
        (
            dumps(web(ts=NOW_MS + 7_200_000)),
            "ts_in_future",
            NOW_MS + 7_200_000,
            "more than 3600 s ahead of the clock (SEGSTREAM_MAX_FUTURE_SKEW_S)",
        ),
        (
            dumps(web(schema_version=1)),
            "unknown_schema_version",
            1,
            "one of [2] (SEGSTREAM_SCHEMA_VERSIONS)",
        ),
    ]
    for raw, reason, value, detail in cases:
        rej = expect_rejection(p.parse(raw, "web"), reason)
        assert rej.value == value, reason
        assert detail in rej.detail, rej.detail


@pytest.mark.parametrize("version", ["2", True, None, 2.0])
def test_a_schema_version_that_is_not_an_integer_carries_no_value(version):
    raw = dumps(web(schema_version=version))
    assert expect_rejection(parser().parse(raw, "web"), "unknown_schema_version").value is None


def test_other_rejections_carry_no_value():
    assert expect_rejection(parser().parse(b"{", "web"), "malformed_json").value is None
    data = web()
    del data["anonymous_id"]
    assert expect_rejection(parser().parse(dumps(data), "web"), "missing_identity").value is None
