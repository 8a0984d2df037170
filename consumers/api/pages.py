"""Cursors for member pages: SSCAN cursors, extended when one batch exceeds a page."""

from __future__ import annotations

import base64
import re

from segstream.consumers.api.schema import CURSOR_PATTERN, MAX_CURSOR_CHARS

# A page cursor is the SSCAN cursor, or, when one SSCAN batch was larger than the
# page, "<SSCAN cursor>.<COUNT>.<base64 of the last member returned>": the next page
# repeats that SSCAN (same cursor and COUNT, so the same batch of a set that did not
# change) and continues after that member, in sorted order. The grammar and its bounds:
# schema.CURSOR_PATTERN, which the OpenAPI document gives for ``cursor``.
# fullmatch: Python's ``$`` also matches before a trailing newline, JSON Schema's does not.
_CURSOR = re.compile(CURSOR_PATTERN)


def encode_cursor(scan: int, count: int | None = None, after: str | None = None) -> str:
    if after is None or count is None:
        return str(scan)
    return f"{scan}.{count}.{base64.urlsafe_b64encode(after.encode()).decode().rstrip('=')}"


def decode_cursor(text: str) -> tuple[int, int | None, bytes | None]:
    """``(SSCAN cursor, COUNT, after)``; ValueError when ``text`` is not a cursor.

    The cursors accepted are exactly the texts ``CURSOR_PATTERN`` matches: ``after``, the
    last member returned, comes back as its UTF-8 bytes, a position in the members' order
    (UTF-8 sorts as the characters do), so any base64url of a length the pattern allows is
    one; its unused low bits, if any, are ignored as by every base64 decoder.
    """
    if len(text) > MAX_CURSOR_CHARS or _CURSOR.fullmatch(text) is None:
        raise ValueError("not a cursor: pass next_cursor of the previous page as it came")
    scan, dot, rest = text.partition(".")
    if not dot:
        return int(scan), None, None
    count, _, after = rest.partition(".")
    return int(scan), int(count), base64.urlsafe_b64decode(after + "=" * (-len(after) % 4))


def members_page(
    batch: list[str], scan: int, count: int, after: bytes | None, next_scan: int, limit: int
) -> tuple[list[str], str | None]:
    """At most ``limit`` members of one SSCAN batch (from cursor ``scan``), and the next cursor."""
    ordered = sorted(set(batch))
    if after is not None:
        ordered = [m for m in ordered if m.encode() > after]
    if len(ordered) > limit:
        page = ordered[:limit]
        return page, encode_cursor(scan, count, page[-1])
    return ordered, None if next_scan == 0 else encode_cursor(next_scan)
