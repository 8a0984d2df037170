"""Agents as the stages see them: a batch of plain records in, the whole batch handled
before the next is asked for.

Faust acknowledges a batch when the agent asks for the next one, and also when an
exception or a cancellation leaves ``take_events``, processed or not. So a batch's work
runs to its end (``guarded``); and a checked agent makes sure Faust handed it every
record (``Continuity``) and commits only what it finished (``CommitGuard``).
"""

from __future__ import annotations

import asyncio
import logging
import os
from collections.abc import Awaitable, Callable
from typing import Any

from segstream.schemas.errors import EXIT_CRASHED
from segstream.streams.engine.records import Record

log = logging.getLogger("segstream.worker")
Work = Callable[[list[Record]], Awaitable[None]]


def records_of(events: list[Any]) -> list[Record]:
    """Faust's events of a batch as plain records."""
    return [
        Record(m.topic, m.partition, m.offset, m.key, m.value) for m in (e.message for e in events)
    ]


async def guarded(stage: str, work: Awaitable[None]) -> None:
    """Run one batch to its end; a failure of the whole batch stops the process.

    Bad records never get here (each is dead-lettered on its own) and unavailable
    dependencies are retried, so what is left is a bug. Faust would ack the batch
    if the exception escaped, losing it; exiting instead leaves its offsets
    uncommitted, and the restarted worker replays it.

    A stop or a rebalance cancels the agent, and Faust acks the batch in hand as the
    cancellation leaves ``take_events``, processed or not. So a cancellation waits
    for the batch to finish and is raised after it, never in the middle.
    """
    task = asyncio.ensure_future(work)
    interrupted = False
    while not task.done():
        try:
            await asyncio.wait({task})  # the batch itself is never cancelled from here
        except asyncio.CancelledError:
            interrupted = True
    if not task.cancelled() and task.exception() is not None:
        log.critical(
            "%s: a whole batch failed; exiting so that it is replayed",
            stage,
            exc_info=task.exception(),
        )
        logging.shutdown()
        os._exit(EXIT_CRASHED)
    if interrupted or task.cancelled():
        raise asyncio.CancelledError
