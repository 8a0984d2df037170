"""Cursors for member pages: SSCAN cursors, extended when one batch exceeds a page."""

from __future__ import annotations

import base64
import binascii
import re

from segstream.consumers.api.schema import MAX_PAGE

# A page cursor is the SSCAN cursor, or, when one SSCAN batch was larger than the
# page, "<SSCAN cursor>.<COUNT>.<base64 of the last member returned>": the next page
# repeats that SSCAN (same cursor and COUNT, so the same batch of a set that did not
# change) and continues after that member, in sorted order.
_CURSOR = re.compile(r"^([0-9]{1,20})(?:\.([0-9]{1,4})\.([A-Za-z0-9_\-]*))?$")


def encode_cursor(scan: int, count: int | None = None, after: str | None = None) -> str:
    if after is None or count is None:
        return str(scan)
    return f"{scan}.{count}.{base64.urlsafe_b64encode(after.encode()).decode().rstrip('=')}"


def decode_cursor(text: str) -> tuple[int, int | None, str | None]:
    """``(SSCAN cursor, COUNT, after)``; ValueError when ``text`` is not one of ours."""
    m = _CURSOR.match(text)
    if m is None or int(m[1]) >= 2**64:
        raise ValueError(f"invalid cursor {text!r}")
    if m[2] is None:
        return int(m[1]), None, None
    count = int(m[2])
    if not 1 <= count <= MAX_PAGE:
        raise ValueError(f"invalid cursor {text!r}")
    b64 = m[3] + "=" * (-len(m[3]) % 4)
    try:
        after = base64.urlsafe_b64decode(b64).decode()
    except (binascii.Error, UnicodeDecodeError) as exc:
        raise ValueError(f"invalid cursor {text!r}") from exc
    return int(m[1]), count, after


def members_page(
    batch: list[str], scan: int, count: int, after: str | None, next_scan: int, limit: int
) -> tuple[list[str], str | None]:
    """At most ``limit`` members of one SSCAN batch (from cursor ``scan``), and the next cursor."""
    ordered = sorted(set(batch))
    if after is not None:
        ordered = [m for m in ordered if m > after]
    if len(ordered) > limit:
        page = ordered[:limit]
        return page, encode_cursor(scan, count, page[-1])
    return ordered, None if next_scan == 0 else encode_cursor(next_scan)
