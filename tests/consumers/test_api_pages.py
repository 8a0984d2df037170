"""consumers/api.py without Redis: member page cursors and paging one SSCAN batch."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from segstream.consumers.api.pages import decode_cursor, encode_cursor, members_page


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
    assert decode_cursor(text) == (scan, count, after)


@pytest.mark.parametrize(
    "text",
    ["", "-1", "abc", "1.2", "1.0.YQ", "1.1001.YQ", "18446744073709551616", "1.5.%%", "1.5.gA"],
)
def test_foreign_cursors_are_refused(text):
    with pytest.raises(ValueError):
        decode_cursor(text)


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
