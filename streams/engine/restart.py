"""Restarting the worker in place: when Faust skipped records (``continuity``) or left
partitions unread (``stalls``), a fresh process reads them again from the group's
committed offsets. It leaves the consumer group first, so the partitions move at once.
"""

from __future__ import annotations

import asyncio
import logging
import os
import signal
import sys
import threading
import time
from collections.abc import Callable
from typing import Any

from segstream.schemas.errors import EXIT_CRASHED

log = logging.getLogger("segstream.worker")

RESTARTS_ENV = "SEGSTREAM_WORKER_RESTARTS"
MAX_RESTARTS = 10  # each within RESTART_WINDOW_S of the last: then exit, for an operator
RESTART_WINDOW_S = 600.0

STOP_SIGNALS = {signal.SIGTERM, signal.SIGINT}
STOP_ASKED = threading.Event()  # a stop signal reached this process (``watch_stop_signals``)


def leave_group(consumer: Any, loop: asyncio.AbstractEventLoop, timeout_s: float = 5.0) -> None:
    """Send the group a LeaveGroup for ``consumer`` (an aiokafka consumer running on
    ``loop``, another thread's) and wait for it, at most ``timeout_s``; nothing is
    committed. Best effort: on failure the group falls back to the session timeout."""
    try:
        # aiokafka 0.14 (pinned): the coordinator's own leave, without closing anything
        done = asyncio.run_coroutine_threadsafe(consumer._coordinator._maybe_leave_group(), loop)
        done.result(timeout_s)
    except Exception as exc:  # a restart must go on whatever happened here
        log.warning("could not leave the consumer group before restarting: %r", exc)


def accept_stop_signals() -> None:
    """Once the worker handles SIGTERM and SIGINT itself: take the ones held back by
    ``restart``."""
    signal.pthread_sigmask(signal.SIG_UNBLOCK, STOP_SIGNALS)


def watch_stop_signals() -> None:
    """Note every stop signal this process takes, before its handler (Faust's) gets it.

    Faust acts on a stop signal on its event loop, later; ``restart`` runs on that loop
    without returning to it, so a signal taken while it runs would be acted on after the
    exec, that is never (a chaos run's worker ran on after its SIGTERM). ``restart``
    looks here instead. The handler stays Faust's (its loop is woken as before)."""
    for sig in STOP_SIGNALS:
        previous = signal.getsignal(sig)

        def noted(signum: int, frame: Any, previous: Any = previous) -> None:
            STOP_ASKED.set()
            if callable(previous):
                previous(signum, frame)

        signal.signal(sig, noted)


def restart(
    stage: str,
    why: str,
    stopping: bool = False,
    code: int = 0,
    leave: Callable[[], None] | None = None,
) -> None:
    """Replace this process by a fresh worker (same command line, same pid), which reads
    from the group's committed offsets again. Restarts less than ``RESTART_WINDOW_S``
    apart are counted; past ``MAX_RESTARTS`` of them the worker exits 70 instead. A
    worker asked to stop exits at once instead, with ``code`` (0, or 70 when it stops
    after a crash): the next start reads the records again.

    ``leave`` takes this member out of the consumer group first: without it the group
    waits for the old member's session to time out before it assigns the partitions
    to the new process (about 30 s, with nothing read meanwhile)."""
    # from here a stop signal stays pending, and survives the exec (the mask does) until
    # the new worker can stop gracefully: see ``accept_stop_signals``; one taken before
    # is in ``STOP_ASKED``
    signal.pthread_sigmask(signal.SIG_BLOCK, STOP_SIGNALS)
    if stopping or STOP_ASKED.is_set():
        log.warning("%s: %s while stopping: exiting now", stage, why)
        logging.shutdown()
        os._exit(code)
    count, last = (int(x) for x in os.environ.get(RESTARTS_ENV, "0:0").split(":"))
    now = int(time.time())
    count = count + 1 if now - last < RESTART_WINDOW_S else 1
    if count > MAX_RESTARTS:
        log.critical(
            "%s: %s, %d restarts in %.0f s: exiting", stage, why, count - 1, RESTART_WINDOW_S
        )
        logging.shutdown()
        os._exit(EXIT_CRASHED)
    log.critical("%s: %s; restart %d to read them again", stage, why, count)
    if leave is not None:
        leave()
    logging.shutdown()
    sys.stdout.flush()
    sys.stderr.flush()
    os.environ[RESTARTS_ENV] = f"{count}:{now}"
    if STOP_ASKED.is_set():  # taken meanwhile by another thread, which may not block it
        os._exit(code)
    os.execv(sys.executable, [sys.executable, *sys.orig_argv[1:]])  # noqa: S606 (our argv)
