"""Freshness: an event produced → its user's segment written to Redis, at a fixed load.

A worker that has caught up gets page views of users it already knows, produced open
loop at a fixed rate (a tick every 10 ms). The figure is the worker's own histogram
``segstream_write_latency_seconds{clock="ingest"}``: for every event, from its Kafka
timestamp (set by the producing client when it hands the record over) to the moment
the batch's Redis writes returned. The p50 and p99 are interpolated inside the
histogram's buckets (5–25 ms wide below 100 ms), as Prometheus's
``histogram_quantile`` does, from the counts added during the load.
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import threading
import time
import urllib.request
import uuid
from pathlib import Path
from typing import Any

import orjson
from confluent_kafka import Producer
from prometheus_client.parser import text_string_to_metric_families

from segstream.schemas.settings import Settings, kafka_client_config

TICK_S = 0.01
METRIC = "segstream_write_latency_seconds"


def buckets(metrics_port: int) -> dict[float, float]:
    """Cumulative counts of the ingest-clock histogram, by upper bound."""
    with urllib.request.urlopen(f"http://127.0.0.1:{metrics_port}/metrics", timeout=5) as r:
        text = r.read().decode()
    out: dict[float, float] = {}
    for family in text_string_to_metric_families(text):
        if family.name != METRIC:
            continue
        for s in family.samples:
            if s.name == METRIC + "_bucket" and s.labels.get("clock") == "ingest":
                out[float(s.labels["le"])] = s.value
    return out


def quantile(q: float, before: dict[float, float], after: dict[float, float]) -> float:
    """The q-quantile (seconds) of what was observed between two scrapes."""
    bounds = sorted(after)
    counts = [after[b] - before.get(b, 0.0) for b in bounds]
    total = counts[-1]
    if total <= 0:
        raise ValueError("no events were observed during the load")
    rank = q * total
    lower, below = 0.0, 0.0
    for bound, cum in zip(bounds, counts, strict=True):
        if cum >= rank:
            if bound == float("inf"):
                return lower
            return lower + (bound - lower) * (rank - below) / max(cum - below, 1e-12)
        lower, below = bound, cum
    return lower


def page_view(profile: str, n: int, ts_ms: int, run: str = "") -> tuple[bytes, bytes]:
    """A page view of a known profile (``u:<user id>`` or ``a:<anonymous id>``)."""
    kind, ident = profile.split(":", 1)
    who = {"user_id": ident} if kind == "u" else {"anonymous_id": ident}
    value = {
        "event_id": f"fresh-{run}{n}",  # new in every load: copies would be skipped
        "source": "web",
        "type": "page_view",
        "ts": ts_ms,
        "schema_version": 2,
        "session_id": f"fresh-{ident}",
        "page": "/p/1",
        "device_type": "desktop",
        "channel": "direct",
        **who,
    }
    return ident.encode(), orjson.dumps(value)


def fixed_load(
    settings: Settings, profiles: list[str], rate: float, seconds: float, ts_ms: int
) -> int:
    """Produce ``rate`` page views a second for ``seconds``; returns how many."""
    conf = {**kafka_client_config(settings), "linger.ms": 1, "acks": "all"}
    producer = Producer(conf)
    topic = settings.topic("web")
    run = uuid.uuid4().hex[:8] + "-"
    start = time.perf_counter()
    n = 0
    while (elapsed := time.perf_counter() - start) < seconds:
        due = int(elapsed * rate)
        while n < due:  # open loop: catch up on ticks missed, never slow down
            key, value = page_view(profiles[n % len(profiles)], n, ts_ms + n, run)
            producer.produce(topic, value, key)
            n += 1
        producer.poll(0)
        time.sleep(max(0.0, TICK_S - (time.perf_counter() - start - elapsed)))
    left = producer.flush(30)
    assert left == 0, f"{left} load events were not delivered"
    return n


def measure(
    settings: Settings,
    metrics_port: int,
    profiles: list[str],
    rate: float,
    seconds: float,
    ts_ms: int,
    drained: Any,
) -> dict[str, float]:
    """Run the load against a caught-up worker; ``drained()`` says when it is done."""
    before = buckets(metrics_port)
    sent = fixed_load(settings, profiles, rate, seconds, ts_ms)
    deadline = time.monotonic() + 120
    while not drained() and time.monotonic() < deadline:
        time.sleep(0.2)
    after = buckets(metrics_port)
    return {
        "freshness_rate_eps": rate,
        "freshness_events": sent,
        "freshness_p50_ms": round(quantile(0.5, before, after) * 1000, 1),
        "freshness_p99_ms": round(quantile(0.99, before, after) * 1000, 1),
    }


def per_second(metrics_port: int, stop: threading.Event) -> None:
    """Print the p50/p99 of what each second of the load added, until ``stop``."""
    before = buckets(metrics_port)
    while not stop.wait(1.0):
        after = buckets(metrics_port)
        try:
            p50, p99 = quantile(0.5, before, after), quantile(0.99, before, after)
            n = after[float("inf")] - before.get(float("inf"), 0.0)
            print(f"  {time.strftime('%H:%M:%S')} {n:6.0f} events  p50 {p50 * 1000:5.0f} ms"
                  f"  p99 {p99 * 1000:5.0f} ms", flush=True)  # fmt: skip
        except ValueError:
            print(f"  {time.strftime('%H:%M:%S')} nothing written", flush=True)
        before = after


def main() -> None:
    sys.path.insert(0, str(Path(__file__).resolve().parent))
    from workers import free_port, group_done, inputs_of, wait_ready

    from segstream.consumers.sample import (
        produce_sample,
        start_worker,
        stop_worker,
        wait_for_segments,
    )
    from segstream.streams.lag import Offsets

    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--rate", type=float, action="append", required=True, help="events/s")
    ap.add_argument("--users", type=int, default=1000)
    ap.add_argument("--seconds", type=float, default=15.0, help="of load per rate")
    ap.add_argument("--json", type=Path, default=None)
    args = ap.parse_args()
    settings = Settings(namespace="fresh" + uuid.uuid4().hex[:6])
    events, g = produce_sample(settings, users=args.users, seed=7)
    port = free_port()
    log = Path(tempfile.mkdtemp(prefix="freshness-")) / "worker.log"
    env = {"SEGSTREAM_NAMESPACE": settings.namespace, "SEGSTREAM_METRICS_PORT": str(port)}
    proc = start_worker(settings, log, env=env)
    offsets = Offsets(settings)
    results = []
    try:
        wait_ready(proc, log, time.monotonic() + 600)
        while not group_done(offsets, inputs_of(settings)):
            time.sleep(0.5)
        wait_for_segments(settings, sorted(g.truth), timeout=600, settle=10, proc=proc)
        print(f"{events} events of {args.users} users worked off; worker log {log}")
        for rate in args.rate:
            print(f"{rate:.0f} events/s for {args.seconds:.0f} s:")
            stop = threading.Event()
            watch = threading.Thread(target=per_second, args=(port, stop), daemon=True)
            watch.start()
            result = measure(
                settings,
                port,
                sorted(g.truth),
                rate,
                args.seconds,
                g.end_ms,
                lambda: group_done(offsets, inputs_of(settings)),
            )
            stop.set()
            watch.join()
            print(f"  p50 {result['freshness_p50_ms']} ms, p99 {result['freshness_p99_ms']} ms")
            results.append(result)
    finally:
        offsets.close()
        stop_worker(proc)
    if args.json:
        args.json.write_bytes(orjson.dumps({"users": args.users, "runs": results}))


if __name__ == "__main__":
    main()
