"""The worker's own processes (the edge, the trainer): each is started with the worker,
started again when it dies, stopped with it, and reports to it over a pipe; the worker
turns the reports into its metrics (one scrape per worker)."""

from __future__ import annotations

import logging
import multiprocessing
import os
import time
from abc import ABC, abstractmethod
from collections.abc import Callable
from threading import Event as Flag
from threading import Thread
from typing import Any

from segstream.schemas.settings import Settings

log = logging.getLogger("segstream.worker")
MAX_RESTARTS = 5  # within RESTART_WINDOW_S: then the worker gives up (an operator looks)
RESTART_WINDOW_S = 600.0
STOP_WAIT_S = 30.0
STOP_GRACE_S = 15.0  # a child told to stop, or whose worker is gone, is out by then


class GaveUp(RuntimeError):
    pass


class Child(ABC):
    """One process of the worker's: ``target(settings, conn, parent_pid, loglevel)`` runs
    in it and sends reports on ``conn``; ``on_report`` takes each in the worker."""

    name = "child"

    def __init__(self, settings: Settings, loglevel: str = "info") -> None:
        self.settings = settings
        self.loglevel = loglevel
        self.proc: Any = None
        self.stopping = False
        self.restarts: list[float] = []

    @abstractmethod
    def target(self) -> Callable[[Settings, Any, int, str], None]:
        """What runs in the process."""

    @abstractmethod
    def on_report(self, report: Any) -> None:
        """A report from the process, in the worker (a thread of its own)."""

    def on_exit(self) -> None:  # noqa: B027 - most children leave nothing stale
        """The process is gone (its reports stop): what it reported may be stale."""

    def start(self) -> None:
        ctx = multiprocessing.get_context("spawn")  # no fork of a process with threads
        receive, send = ctx.Pipe(duplex=False)
        self.proc = ctx.Process(
            target=self.target(),
            args=(self.settings, send, os.getpid(), self.loglevel),
            name=f"segstream-{self.name}",
            daemon=True,
        )
        self.proc.start()
        send.close()  # the child's end: EOF here once the child is gone
        Thread(target=self._read, args=(receive,), name=f"{self.name}-reports", daemon=True).start()
        log.info("%s started (pid %d)", self.name, self.proc.pid)

    def _read(self, conn: Any) -> None:
        while True:
            try:
                report = conn.recv()
            except (EOFError, OSError):
                return
            self.on_report(report)

    def check(self) -> None:
        """Start the process again if it died; raise ``GaveUp`` after too many deaths."""
        if self.stopping or self.proc is None or self.proc.is_alive():
            return
        code = self.proc.exitcode
        self.on_exit()
        now = time.monotonic()
        self.restarts = [t for t in self.restarts if now - t < RESTART_WINDOW_S] + [now]
        if len(self.restarts) > MAX_RESTARTS:
            raise GaveUp(
                f"the {self.name} process died {len(self.restarts)} times in "
                f"{RESTART_WINDOW_S:.0f} s (last exit code {code}); see the log above"
            )
        log.error("the %s process exited with code %s; starting it again", self.name, code)
        self.start()

    def stop(self) -> None:
        """SIGTERM: the process finishes what it is doing, commits and leaves its group."""
        self.stopping = True
        if self.proc is None:
            return
        if self.proc.is_alive():
            self.proc.terminate()
            self.proc.join(STOP_WAIT_S)
        if self.proc.is_alive():
            log.warning("the %s did not stop within %.0f s: killing it", self.name, STOP_WAIT_S)
            self.proc.kill()
            self.proc.join()
        self.on_exit()


def child_setup(
    name: str, conn: Any, loglevel: str, parent: int
) -> tuple[Flag, Callable[[Any], None]]:
    """In the child: its log lines name it; ``report`` sends on ``conn``; the returned
    stop flag is set by a report nobody reads or once the worker (``parent``) is gone,
    and the process ends ``STOP_GRACE_S`` after it is set, whatever it waits on
    (``watch_parent``)."""
    logging.basicConfig(
        level=loglevel.upper(),
        format=f"[%(asctime)s] [{name} %(process)d] %(levelname)s %(message)s",
    )
    stopping = Flag()

    def report(what: Any) -> None:
        try:
            conn.send(what)
        except OSError:  # broken pipe: no supervisor any more
            stopping.set()

    Thread(target=watch_parent, args=(parent, stopping), name="parent", daemon=True).start()
    return stopping, report


def watch_parent(parent: int, stopping: Flag, grace: float = STOP_GRACE_S) -> None:
    """A child's last resort: once it is told to stop or its worker is gone, it has
    ``grace`` seconds to stop on its own, then the process exits. A client's close can
    wait forever with the broker away: an orphaned trainer ran on for 50 minutes in
    a chaos run, its aiokafka consumer's stop never returning."""
    while not stopping.wait(0.5):
        if os.getppid() != parent:
            stopping.set()
    time.sleep(grace)  # the process is normally gone before this
    log.warning("still running %.0f s after it was to stop: exiting", grace)
    logging.shutdown()
    os._exit(0)
