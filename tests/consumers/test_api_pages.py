"""consumers/api without Redis: member page cursors, paging one SSCAN batch, and the
cursor's format in the OpenAPI document against what the server accepts."""

from __future__ import annotations

import base64
import re
from functools import cache
from typing import Any

import jsonschema_rs
import pytest
from hypothesis import example, given, settings
from hypothesis import strategies as st

from segstream.consumers.api import create_app
from segstream.consumers.api.pages import decode_cursor, encode_cursor, members_page
from segstream.consumers.api.schema import (
    CURSOR_PATTERN,
    MAX_AFTER_BYTES,
    MAX_CURSOR_CHARS,
    MAX_ID_CHARS,
    MAX_PAGE,
    MAX_SCAN,
    base64_pattern,
    decimal_pattern,
)
from segstream.schemas.settings import Settings

MEMBERS = "/v1/segments/{segment_id}/members"


def test_plain_cursor_is_the_sscan_cursor():
    assert encode_cursor(0) == "0"
    assert decode_cursor("0") == (0, None, None)
    assert decode_cursor("18446744073709551615") == (2**64 - 1, None, None)


@settings(database=None, max_examples=200, deadline=None)
@given(
    scan=st.integers(min_value=0, max_value=2**64 - 1),
    count=st.integers(min_value=1, max_value=1000),
    after=st.text(min_size=0, max_size=80),
)
def test_cursor_with_position_round_trips(scan, count, after):
    text = encode_cursor(scan, count, after)
    assert decode_cursor(text) == (scan, count, after.encode())


@pytest.mark.parametrize(
    "text",
    [
        "",
        "-1",
        "abc",
        "1.2",
        "1.0.YQ",
        "1.1001.YQ",
        "18446744073709551616",
        "1.5.%%",
        "1.5.Y",  # 4k + 1 base64 characters: no bytes
        "1.5.YQ==",  # padded
        "01",  # leading zeros
        "1.05.YQ",
        "0\n",  # Python's $ would match before the newline; the document's does not
        " 0",
        "1.5.YQ.",
        "1.5." + "A" * 5463,  # 4,097 bytes: more than a member of 1,024 characters
    ],
)
def test_foreign_cursors_are_refused(text):
    with pytest.raises(ValueError):
        decode_cursor(text)


def test_any_base64_of_a_right_length_is_a_position():
    # not UTF-8, or unused low bits set: still a place in the members' byte order
    assert decode_cursor("1.5.gA") == (1, 5, b"\x80")
    assert decode_cursor("1.5.YR") == (1, 5, b"a")
    assert decode_cursor("7.9.") == (7, 9, b"")


def test_the_longest_member_makes_the_longest_cursor():
    longest = "\U0001d11e" * MAX_ID_CHARS  # 1,024 characters of 4 bytes each
    text = encode_cursor(MAX_SCAN, MAX_PAGE, longest)
    assert len(text) == MAX_CURSOR_CHARS == 5488
    assert len(longest.encode()) == MAX_AFTER_BYTES
    assert decode_cursor(text) == (MAX_SCAN, MAX_PAGE, longest.encode())
    with pytest.raises(ValueError):
        decode_cursor(text + "A")


def test_a_batch_that_fits_is_one_page_and_continues_with_the_next_sscan_cursor():
    page, cursor = members_page(
        ["u:b", "u:a"], scan=0, count=10, after=None, next_scan=17, limit=10
    )
    assert page == ["u:a", "u:b"]
    assert cursor == "17"


def test_last_batch_ends_the_walk():
    page, cursor = members_page(["u:a"], scan=5, count=10, after=None, next_scan=0, limit=10)
    assert page == ["u:a"]
    assert cursor is None


def test_a_batch_larger_than_the_page_is_split_without_loss_or_repeat():
    batch = [f"u:{i:03d}" for i in range(25)]
    seen: list[str] = []
    after = None
    pages = 0
    while True:
        page, cursor = members_page(batch, scan=0, count=10, after=after, next_scan=0, limit=10)
        assert len(page) <= 10
        seen += page
        pages += 1
        if cursor is None:
            break
        scan, count, after = decode_cursor(cursor)
        assert (scan, count) == (0, 10)  # the same SSCAN call is repeated
    assert pages == 3
    assert seen == sorted(batch)


@settings(database=None, max_examples=100, deadline=None, derandomize=True)
@given(
    batch=st.lists(st.text(min_size=1, max_size=12), min_size=1, max_size=40),
    limit=st.integers(min_value=1, max_value=7),
)
def test_pages_of_any_members_follow_their_order_exactly_once(batch, limit):
    """``after`` is compared as UTF-8 bytes: the same order as the members' characters."""
    seen: list[str] = []
    after = None
    while True:
        page, cursor = members_page(batch, 3, 50, after, next_scan=0, limit=limit)
        seen += page
        if cursor is None:
            break
        _, _, after = decode_cursor(cursor)
    assert seen == sorted(set(batch))


# ---------------------------------------------- the document against the server
@cache
def cursor_schema() -> dict[str, Any]:
    """The schema the OpenAPI document gives for the members route's ``cursor``."""
    doc = create_app(Settings()).openapi()
    params = doc["paths"][MEMBERS]["get"]["parameters"]
    (param,) = [p for p in params if p["name"] == "cursor"]
    assert param["in"] == "query"
    return dict(param["schema"])


@cache
def documented() -> Any:
    """A JSON Schema validator of the document's ``cursor`` (ECMA-262 regexes)."""
    return jsonschema_rs.validator_for(cursor_schema())


def accepted(text: str) -> bool:
    try:
        decode_cursor(text)
    except ValueError:
        return False
    return True


def test_the_document_states_the_cursor_format_and_its_bounds():
    schema = cursor_schema()
    assert schema["type"] == "string"
    assert schema["pattern"] == CURSOR_PATTERN
    assert schema["maxLength"] == MAX_CURSOR_CHARS
    assert schema["default"] == "0"
    for words in ("SSCAN cursor", "base64url", f"{MAX_ID_CHARS} characters", "422"):
        assert words in schema["description"]


def test_the_documented_length_is_the_longest_cursor_the_pattern_allows():
    longest = encode_cursor(MAX_SCAN, MAX_PAGE, "\U0001d11e" * MAX_ID_CHARS)
    assert documented().is_valid(longest)
    assert len(longest) == cursor_schema()["maxLength"]
    # any longer text breaks the pattern too: the bound is the pattern's own
    assert not re.fullmatch(CURSOR_PATTERN, longest + "A")


members = st.text(max_size=MAX_ID_CHARS) | st.text(
    st.characters(min_codepoint=0x10000), min_size=MAX_ID_CHARS - 3, max_size=MAX_ID_CHARS
)


@settings(database=None, max_examples=300, deadline=None, derandomize=True)
@given(
    scan=st.integers(min_value=0, max_value=MAX_SCAN),
    count=st.integers(min_value=1, max_value=MAX_PAGE),
    member=st.none() | members,
)
@example(scan=MAX_SCAN, count=MAX_PAGE, member="\U0001d11e" * MAX_ID_CHARS)
@example(scan=0, count=1, member="")
def test_every_cursor_the_server_makes_is_one_the_document_allows(scan, count, member):
    text = encode_cursor(scan, count, member)
    assert documented().is_valid(text), text
    assert accepted(text)


def mutations(valid: str) -> st.SearchStrategy[str]:
    """Texts next to a cursor: a character inserted, dropped or replaced, or added around."""
    noise = st.sampled_from("0123456789.-_=+/AZaz \n%") | st.characters()
    at = st.integers(min_value=0, max_value=len(valid))
    return st.one_of(
        st.tuples(at, noise).map(lambda p: valid[: p[0]] + p[1] + valid[p[0] :]),
        at.map(lambda i: valid[:i] + valid[i + 1 :]),
        st.tuples(at, noise).map(lambda p: valid[: p[0]] + p[1] + valid[p[0] + 1 :]),
        noise.map(lambda c: valid + c),
        noise.map(lambda c: c + valid),
    )


near_cursors = st.builds(
    encode_cursor,
    st.sampled_from([0, 1, 9, 10, 2**64 - 1, 10**19, 18446744073709551609]),
    st.sampled_from([1, 9, 10, 99, 100, 999, 1000]),
    st.none() | st.text(max_size=8),
).flatmap(mutations)
any_text = st.text(st.sampled_from("0123456789.-_=AZaz\n"), max_size=30) | st.text(max_size=30)


@settings(database=None, max_examples=600, deadline=None, derandomize=True)
@given(text=near_cursors | any_text | st.from_regex(CURSOR_PATTERN, fullmatch=True))
@example(text="0\n")
@example(text="18446744073709551616")
@example(text="1.5." + "A" * 5462)
@example(text="1.5." + "A" * 5463)
@example(text="1" * 2048)  # what the document allowed before (maxLength 2048, no pattern)
def test_the_document_allows_exactly_the_cursors_the_server_accepts(text):
    assert documented().is_valid(text) == accepted(text), text


# -------------------------------------------------------------- the regex builders
@pytest.mark.parametrize("low", [0, 1])
def test_decimal_pattern_matches_exactly_low_to_high_without_leading_zeros(low):
    for high in [*range(1, 130), 999, 1000, 1001, 2**64 - 1, 10**19 - 1]:
        regex = re.compile(f"(?:{decimal_pattern(low, high)})")
        around = {*range(0, 130), high - 1, high, high + 1, high * 10, 10 ** len(str(high))}
        for n in around:
            assert bool(regex.fullmatch(str(n))) == (low <= n <= high), (n, regex.pattern)
        for text in ("", "00", "01", f"0{high}", "-1", "+1"):
            assert not regex.fullmatch(text), (text, regex.pattern)


def test_base64_pattern_matches_exactly_the_lengths_of_at_most_max_bytes():
    for max_bytes in range(3, 40):
        regex = re.compile(base64_pattern(max_bytes))
        for n_bytes in range(max_bytes + 3):
            text = base64.urlsafe_b64encode(bytes(range(n_bytes))).decode().rstrip("=")
            assert bool(regex.fullmatch(text)) == (n_bytes <= max_bytes), (max_bytes, text)
        for length in range(4 * max_bytes):
            ok = length % 4 != 1 and length * 3 // 4 <= max_bytes
            assert bool(regex.fullmatch("_" * length)) == ok, (max_bytes, length)
