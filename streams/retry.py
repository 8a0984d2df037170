"""Waiting out an unavailable dependency (the broker, Redis): the operation is tried
again, with a doubling pause, until it answers. The batch in hand waits meanwhile; its
offsets are not acknowledged, so nothing is lost and nothing crash-loops."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable
from typing import TypeVar

log = logging.getLogger("segstream.worker")
T = TypeVar("T")
FIRST_S = 0.1
LONGEST_S = 5.0


async def until_available(
    what: str,
    errors: tuple[type[BaseException], ...],
    op: Callable[[], Awaitable[T]],
    on_error: Callable[[], object] | None = None,
) -> T:
    """``op()`` until it raises none of ``errors`` (logged as ``what`` unavailable);
    ``on_error`` is called at each failure (a metric)."""
    delay = FIRST_S
    while True:
        try:
            return await op()
        except errors as exc:
            if on_error is not None:
                on_error()
            log.warning("%s unavailable (%s); retrying in %.1fs", what, exc, delay)
            await asyncio.sleep(delay)
            delay = min(delay * 2, LONGEST_S)
