"""streams/engine/restart: a stop signal that reaches the worker while it restarts
itself is not lost. Faust acts on a signal on its event loop, which a restart never
returns to; so ``restart`` exits instead of replacing the process when one was taken,
and holds any later one back across the exec (the new worker stops on it)."""

from __future__ import annotations

import os
import signal
from collections.abc import Iterator
from typing import Any

import pytest

from segstream.streams.engine import restart as restarting


class Exited(Exception):
    pass


class Replaced(Exception):
    pass


@pytest.fixture
def calls(monkeypatch: pytest.MonkeyPatch) -> Iterator[dict[str, Any]]:
    """``os._exit`` and ``os.execv`` recorded instead of done; handlers and the signal
    mask as they were afterwards."""
    seen: dict[str, Any] = {"handled": 0}
    handlers = {sig: signal.getsignal(sig) for sig in restarting.STOP_SIGNALS}
    mask = signal.pthread_sigmask(signal.SIG_BLOCK, [])

    def exit_(code: int) -> None:
        seen["exit"] = code
        raise Exited

    def execv(*_: Any) -> None:
        seen["blocked_at_exec"] = signal.pthread_sigmask(signal.SIG_BLOCK, [])
        raise Replaced

    def handled(*_: Any) -> None:  # stands in for Faust's handler
        seen["handled"] += 1

    monkeypatch.setattr(os, "_exit", exit_)
    monkeypatch.setattr(os, "execv", execv)
    monkeypatch.delenv(restarting.RESTARTS_ENV, raising=False)
    for sig in restarting.STOP_SIGNALS:
        signal.signal(sig, handled)
    restarting.STOP_ASKED.clear()
    try:
        yield seen
    finally:
        signal.pthread_sigmask(signal.SIG_SETMASK, mask)
        for sig, handler in handlers.items():
            signal.signal(sig, handler)
        restarting.STOP_ASKED.clear()


def test_a_stop_signal_taken_before_the_restart_makes_it_exit(calls: dict[str, Any]) -> None:
    restarting.watch_stop_signals()
    signal.raise_signal(signal.SIGTERM)  # between the decision to restart and the exec
    assert calls["handled"] == 1  # the worker's own handler still gets it
    left: list[str] = []
    with pytest.raises(Exited):
        restarting.restart("profiles", "holes", code=0, leave=lambda: left.append("x"))
    assert calls["exit"] == 0  # a graceful stop's code: the next start reads the records
    assert "blocked_at_exec" not in calls and not left


def test_without_a_stop_signal_the_restart_replaces_the_process_signals_held(
    calls: dict[str, Any],
) -> None:
    restarting.watch_stop_signals()
    left: list[str] = []
    with pytest.raises(Replaced):
        restarting.restart("profiles", "records never delivered", leave=lambda: left.append("x"))
    assert left == ["x"]
    # a signal arriving now stays pending across the exec, for the new worker's handlers
    assert calls["blocked_at_exec"] >= restarting.STOP_SIGNALS


def test_a_signal_during_the_leave_is_held_for_the_new_process(calls: dict[str, Any]) -> None:
    restarting.watch_stop_signals()

    def leave() -> None:  # the children stop and the group is left: seconds
        signal.raise_signal(signal.SIGTERM)

    with pytest.raises(Replaced):
        restarting.restart("profiles", "records never delivered", leave=leave)
    assert calls["handled"] == 0  # not taken here: pending, the mask survives the exec
    assert signal.SIGTERM in signal.sigpending()
    signal.signal(signal.SIGTERM, signal.SIG_IGN)  # discard it before the mask is restored
    signal.pthread_sigmask(signal.SIG_UNBLOCK, [signal.SIGTERM])


def test_a_signal_another_thread_took_during_the_leave_makes_it_exit(
    calls: dict[str, Any],
) -> None:
    """Threads started after the stop signals were accepted do not block them: one of
    them may take a signal while the restart's own thread holds it back."""
    restarting.watch_stop_signals()

    def leave() -> None:
        restarting.STOP_ASKED.set()  # what the handler does, whichever thread took it

    with pytest.raises(Exited):
        restarting.restart("profiles", "records never delivered", code=0, leave=leave)
    assert calls["exit"] == 0 and "blocked_at_exec" not in calls
