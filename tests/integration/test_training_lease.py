"""The training lease against the real broker: of the workers' trainer processes, one
holds partition 0 of ``training`` in the trainer group (so one trains), its position
is what the lag figures read, and when it leaves the lease moves to another at once."""

from __future__ import annotations

import threading
import time
import uuid
from threading import Event as Flag

import pytest
from confluent_kafka import Producer

from segstream.schemas.settings import Settings, kafka_client_config
from segstream.streams.lag import Offsets
from segstream.streams.topics import ensure_topics
from segstream.streams.trainer_process import Lease

pytestmark = pytest.mark.integration
WAIT_S = 30.0


def held(leases: list[Lease], timeout: float = WAIT_S) -> list[Lease]:
    """The leases held once one is held and the group has settled (2 s unchanged)."""
    deadline = time.monotonic() + timeout
    last, since = None, time.monotonic()
    while time.monotonic() < deadline:
        now = [lease for lease in leases if lease.held.is_set()]
        if now != last:
            last, since = now, time.monotonic()
        elif now and time.monotonic() - since >= 2.0:
            return now
        time.sleep(0.1)
    raise AssertionError(f"no settled lease in {timeout:.0f} s (held now: {last})")


def test_one_trainer_holds_the_lease_and_hands_it_over() -> None:
    settings = Settings(namespace="lease" + uuid.uuid4().hex[:8], kafka_session_timeout_s=10)
    ensure_topics(settings)
    leases = [Lease(settings), Lease(settings)]
    stops = [Flag(), Flag()]
    threads = [
        threading.Thread(target=lease.keep, args=(stop,), daemon=True)
        for lease, stop in zip(leases, stops, strict=True)
    ]
    for t in threads:
        t.start()
    offsets = Offsets(settings)
    training = (settings.topic("training"), 0)
    try:
        first = held(leases)
        assert len(first) == 1, "two trainers would both train"
        holder = first[0]
        other = leases[1 - leases.index(holder)]
        producer = Producer(kafka_client_config(settings))
        for n in range(3):
            producer.produce(settings.topic("training"), b"{}", f"u:{n}".encode())
        assert producer.flush(WAIT_S) == 0
        assert offsets.read([training])[training].lag == 3  # nothing read yet
        holder.mark(3)  # the trainer has read the three samples
        deadline = time.monotonic() + WAIT_S
        while offsets.read([training])[training].lag != 0:
            assert time.monotonic() < deadline, "the holder's position was not recorded"
            time.sleep(0.2)

        stops[leases.index(holder)].set()  # the holder stops: it leaves the group
        threads[leases.index(holder)].join(WAIT_S)
        assert not holder.held.is_set()
        started = time.monotonic()
        assert held([other]) == [other]
        # it left the group: no session timeout to wait out (10 s here)
        assert time.monotonic() - started < 2.0 + settings.kafka_session_timeout_s / 2
    finally:
        for stop in stops:
            stop.set()
        for t in threads:
            t.join(WAIT_S)
        offsets.close()
