"""The worker's side of the edge: starts the edge process, restarts it when it dies,
stops it with the worker, and turns its reports into the worker's metrics."""

from __future__ import annotations

import logging
import multiprocessing
import os
import time
from threading import Thread
from typing import Any

from segstream.schemas.settings import Settings
from segstream.streams import metrics
from segstream.streams.edge import Stats, main

log = logging.getLogger("segstream.worker")
MAX_RESTARTS = 5  # within RESTART_WINDOW_S: then the worker gives up (an operator looks)
RESTART_WINDOW_S = 600.0
STOP_WAIT_S = 30.0


class EdgeGaveUp(RuntimeError):
    pass


class EdgeProcess:
    def __init__(self, settings: Settings, loglevel: str = "info") -> None:
        self.settings = settings
        self.loglevel = loglevel
        self.proc: Any = None
        self.stopping = False
        self.restarts: list[float] = []
        self.assigned: list[tuple[str, int]] = []  # source partitions the edge reads now

    def start(self) -> None:
        ctx = multiprocessing.get_context("spawn")  # no fork of a process with threads
        receive, send = ctx.Pipe(duplex=False)
        self.proc = ctx.Process(
            target=main,
            args=(self.settings, send, os.getpid(), self.loglevel),
            name="segstream-edge",
            daemon=True,
        )
        self.proc.start()
        send.close()  # the child's end: EOF here once the child is gone
        Thread(target=self._read, args=(receive,), name="edge-reports", daemon=True).start()
        log.info("edge started (pid %d)", self.proc.pid)

    def _read(self, conn: Any) -> None:
        while True:
            try:
                stats = conn.recv()
            except (EOFError, OSError):
                return
            apply_stats(stats)
            self.assigned = stats.assigned

    def check(self) -> None:
        """Start the edge again if it died; raise ``EdgeGaveUp`` after too many deaths."""
        if self.stopping or self.proc is None or self.proc.is_alive():
            return
        code = self.proc.exitcode
        now = time.monotonic()
        self.restarts = [t for t in self.restarts if now - t < RESTART_WINDOW_S] + [now]
        if len(self.restarts) > MAX_RESTARTS:
            raise EdgeGaveUp(
                f"the edge process died {len(self.restarts)} times in {RESTART_WINDOW_S:.0f} s "
                f"(last exit code {code}); see the log above"
            )
        log.error("the edge process exited with code %s; starting it again", code)
        self.start()

    def stop(self) -> None:
        """SIGTERM: the edge finishes its batch, commits and leaves its group."""
        self.stopping = True
        if self.proc is None:
            return
        if self.proc.is_alive():
            self.proc.terminate()
            self.proc.join(STOP_WAIT_S)
        if self.proc.is_alive():
            log.warning("the edge did not stop within %.0f s: killing it", STOP_WAIT_S)
            self.proc.kill()
            self.proc.join()


def apply_stats(stats: Stats) -> None:
    """The edge's report, added to this process's metrics."""
    for (source, event_type), n in stats.events.items():
        metrics.EVENTS.labels(source, metrics.event_type_label(event_type)).inc(n)
    for reason, n in stats.dead.items():
        metrics.DLQ.labels(reason, "edge").inc(n)
    if stats.suppressed:
        metrics.SUPPRESSED.labels("edge").inc(stats.suppressed)
    histogram = metrics.BATCH_SECONDS.labels("edge")
    for seconds in stats.batch_seconds:
        histogram.observe(seconds)
    if stats.batch_seconds:
        metrics.LAST_BATCH.set_to_current_time()
