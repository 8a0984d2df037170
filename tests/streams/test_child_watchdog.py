"""streams/children.watch_parent: a child process whose worker is gone ends within its
grace period, whatever its main thread waits on (an orphaned trainer once ran on for
50 minutes, its consumer's stop never returning)."""

from __future__ import annotations

import subprocess
import sys
import time

CHILD = """
import os, time
from threading import Event
from threading import Thread
from segstream.streams.children import watch_parent
stopping = Event()
# a parent that is not ours: as if the worker were gone
Thread(target=watch_parent, args=(os.getppid() + 1_000_000, stopping, 0.5), daemon=True).start()
time.sleep(60)  # stuck, as a close with the broker away can be
"""


def test_a_child_whose_worker_is_gone_exits_after_its_grace() -> None:
    started = time.monotonic()
    proc = subprocess.run([sys.executable, "-c", CHILD], timeout=30, capture_output=True)
    took = time.monotonic() - started
    assert proc.returncode == 0, proc.stderr.decode()[-2000:]
    assert took < 15, f"took {took:.1f} s"  # not the 60 s its main thread would wait
    assert b"exiting" in proc.stderr


def test_a_child_with_its_worker_keeps_running() -> None:
    code = CHILD.replace("os.getppid() + 1_000_000", "os.getppid()").replace("60", "2")
    started = time.monotonic()
    proc = subprocess.run([sys.executable, "-c", code], timeout=30, capture_output=True)
    assert proc.returncode == 0, proc.stderr.decode()[-2000:]
    assert time.monotonic() - started >= 2.0  # ended by its own main thread, not the watch
    assert b"exiting" not in proc.stderr
