"""streams/sender.py: the thread serving delivery reports outlives an error in ``poll``."""

from __future__ import annotations

import asyncio
import threading
import time

from segstream.schemas.settings import Settings
from segstream.streams import sender as sender_module
from segstream.streams.sender import Sender


class FlakyProducer:
    """Raises from its first ``poll`` (as confluent-kafka 2.16 once did), then serves."""

    def __init__(self) -> None:
        self.polls = 0
        self.served = threading.Event()

    def poll(self, timeout: float) -> int:
        self.polls += 1
        if self.polls == 1:
            raise SystemError("_PyErr_SetObject: exception <class 'str'> is not a BaseException")
        self.served.set()
        time.sleep(timeout)
        return 0

    def __len__(self) -> int:
        return 1  # records in flight: it stays served


def test_reports_are_served_on_after_poll_raises() -> None:
    sender = Sender(Settings(kafka_bootstrap="127.0.0.1:1", namespace="unit"))
    flaky = FlakyProducer()
    sender.polled.append(flaky)  # type: ignore[arg-type]  # as a replaced producer is
    assert flaky.served.wait(5), "the reporting thread stopped serving"
    assert sender.reporter.is_alive() and flaky.polls >= 2


class SilentProducer:
    """Takes records and never reports on them (a report lost inside the client)."""

    def __init__(self) -> None:
        self.taken: list[bytes | None] = []

    def produce(self, topic: str, value: bytes | None, key: bytes | None, *args, **kw) -> None:
        self.taken.append(value)

    def poll(self, timeout: float) -> int:
        time.sleep(timeout)
        return 0

    def __len__(self) -> int:
        return len(self.taken)


def test_a_batch_whose_reports_never_come_is_sent_again(monkeypatch) -> None:
    monkeypatch.setattr(sender_module, "WAIT_WARN_S", 0.05)
    monkeypatch.setattr(sender_module, "REPORTS_LOST_S", 0.2)
    sender = Sender(Settings(kafka_bootstrap="127.0.0.1:1", namespace="unit"))
    silent = SilentProducer()
    sender.producer = silent  # type: ignore[assignment]
    records = [("t", b"k1", b"v1", None), ("t", b"k2", b"v2", 3)]
    again = asyncio.run(asyncio.wait_for(sender._attempt(records), 5))  # else: waits forever
    assert again == records and silent.taken == [b"v1", b"v2"]
