"""One worker's end-to-end throughput beside what Kafka and Faust allow, in one run.

It produces the synthetic stream to a fresh namespace, then reads the same source
topics three ways, one after another on the same machine:

1. ``raw_consume_eps``: a plain confluent-kafka consume-and-parse loop (the edge's own
   ``EventParser``) in this process: the practical ceiling for Python;
2. ``faust_consume_only_eps``: ``bench/faust_consume.py``, a Faust app with the
   worker's settings whose agents only take batches: the engine's own cost;
3. ``throughput_eps``: ``segstream worker``, from the source topics through identity,
   features, clustering, Redis and the output topics, until its group has committed
   every record of every input (sources, ``identity``, ``events``). It reads the same
   stream in a namespace of its own, as a backlog produced while it is frozen
   (``on_backlog``): its edge process would otherwise parse much of the stream while
   the Faust worker starts, before any clock runs.
   ``eps_per_worker_cpu`` divides the events by the CPU seconds of every process the
   worker runs, its edge process included (``/proc``), which stays comparable while the
   broker and Redis share the machine; ``share_of_raw_loop`` is that figure over the
   plain loop's events per CPU-second in the same run.

After the timed part, once the model has settled: ``ari_truth`` (the live segments
against the generator's planted personas) and ``redis_bytes_per_user`` (``MEMORY
USAGE`` of the lookup record, a sample of up to 1,000 users); then freshness at a
fixed load below saturation (``bench/freshness.py``); after the worker stopped,
``ari_batch`` and ``id_churn`` from its ``segments`` topic (``bench/quality.py``).

4. ``throughput_2workers_eps``: the same stream in a second namespace, read by two
   ``segstream worker`` processes in one group: both start on empty topics, and once
   the group is stable with the partitions split, both are frozen while the stream is
   produced (a backlog, as for the one worker); from when they go on until the group
   has committed everything. ``eps_per_worker_cpu_2workers`` divides
   by the CPU seconds of both;
5. ``lookup_p99_ms`` beside ``redis_get_p99_ms``: ``bench/api_latency.py --quick``
   (the lookup API and plain Redis GETs from the same load process, 2,000 requests/s).

``faust_records_per_event`` counts the records the worker's Faust agents consumed per
source event (``identity`` and ``events`` envelopes): the engine's cost per record times
this is the floor of the worker's cost per event. ``training_records_per_event``: the
samples the trainer reads with a plain consumer, outside Faust (one per profile changed
in a batch).

Each phase is timed from its process's start of work (the first record for 1 and 2;
for 3 and 4, the moment the frozen workers go on) to its end, so the figures include
no start-up.

    python bench/throughput.py [--quick] [--users N] [--json FILE]
    python bench/throughput.py --scale [--users N] [--events-per-user E] [--json FILE]

``--scale`` measures only 1 and 3, at a population's scale (100,000 users by default),
over each user's latest E events (5 by default), and the worker's peak memory.
"""

from __future__ import annotations

import argparse
import contextlib
import os
import platform
import signal
import subprocess
import sys
import tempfile
import time
import uuid
from collections.abc import Callable
from importlib import metadata
from pathlib import Path
from typing import Any

import orjson
import redis
from confluent_kafka import Consumer, ConsumerGroupState, TopicPartition
from confluent_kafka.admin import AdminClient

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

import freshness  # noqa: E402  (bench/, this script's directory)
from quality import ari_batch, id_churn, model_segments, segment_records  # noqa: E402
from workers import free_port, group_done, inputs_of, wait_ready  # noqa: E402

from segstream.consumers.queries import lookup_users  # noqa: E402
from segstream.consumers.redis_view import Keys  # noqa: E402
from segstream.consumers.sample import (  # noqa: E402
    produce_sample,
    start_worker,
    stop_worker,
    wait_for_segments,
)
from segstream.models.quality import adjusted_rand_index  # noqa: E402
from segstream.schemas.parse import EventParser, Rejection  # noqa: E402
from segstream.schemas.settings import SOURCES, Settings, kafka_client_config  # noqa: E402
from segstream.streams.lag import Offsets  # noqa: E402
from segstream.streams.topics import ensure_topics  # noqa: E402

TICK = os.sysconf("SC_CLK_TCK")
FRESHNESS_RATE_EPS = 5000.0  # the target's load, or half the measured throughput if lower
FRESHNESS_SECONDS = 20.0


def cpu_seconds(pid: int) -> float:
    """User plus system CPU so far of a process and every process it started: the
    worker's edge process counts as the worker's (live children are read from /proc,
    ended ones through their parent's reaped-children time)."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except FileNotFoundError:
        return 0.0
    own = sum(int(f) for f in fields[11:15]) / TICK  # utime, stime, cutime, cstime
    return own + sum(cpu_seconds(c) for c in children_of(pid))


def children_of(pid: int) -> list[int]:
    """The live processes ``pid`` started (``/proc``)."""
    children: list[int] = []
    for task in Path(f"/proc/{pid}/task").glob("*/children"):
        try:
            children += [int(c) for c in task.read_text().split()]
        except FileNotFoundError:
            continue
    return children


def raw_consume(settings: Settings, events: int) -> dict[str, float]:
    """Consume and parse every source record with confluent-kafka, in this process."""
    conf = {
        **kafka_client_config(settings),
        "group.id": f"{settings.consumer_group}-raw-{uuid.uuid4().hex[:6]}",
        "auto.offset.reset": "earliest",
        "enable.auto.commit": False,
    }
    consumer = Consumer(conf)
    topics = {settings.topic(s): s for s in SOURCES}
    consumer.subscribe(list(topics))
    parser = EventParser(settings.email_hash_key.get_secret_value().encode())
    n = rejected = 0
    first = cpu0 = 0.0
    deadline = time.monotonic() + 600
    try:
        while n < events and time.monotonic() < deadline:
            for msg in consumer.consume(num_messages=500, timeout=1.0):
                if msg.error():
                    continue
                if not n:
                    first, cpu0 = time.perf_counter(), time.process_time()
                n += 1
                if isinstance(parser.parse(msg.value() or b"", topics[msg.topic()]), Rejection):
                    rejected += 1
        seconds = time.perf_counter() - first
        cpu = time.process_time() - cpu0
    finally:
        consumer.close()
    assert n >= events, f"the plain loop read {n} of {events} events"
    return {"events": n, "seconds": seconds, "cpu_s": cpu, "rejected": rejected}


def faust_consume_only(settings: Settings, events: int, work: Path) -> dict[str, float]:
    out = work / "faust.json"
    log = work / "faust.log"
    with log.open("wb") as f:
        proc = subprocess.Popen(
            [
                sys.executable,
                str(REPO / "bench" / "faust_consume.py"),
                "--events",
                str(events),
                "--out",
                str(out),
            ],
            env={**os.environ, "SEGSTREAM_NAMESPACE": settings.namespace},
            stdout=f,
            stderr=subprocess.STDOUT,
            cwd=REPO,
        )
        code = proc.wait(900)
    assert code == 0 and out.exists(), log.read_text()[-3000:]
    r = orjson.loads(out.read_bytes())
    return {"events": r["events"], "seconds": r["last_s"] - r["first_s"], "cpu_s": r["cpu_s"]}


def quality(settings: Settings, truth: dict[str, str]) -> dict[str, float]:
    """ARI of the live segments against the planted personas, and the Redis memory of the
    lookup record (the user hash) per user, from a sample of up to 1,000 users."""
    lines, _ = lookup_users(settings, sorted(truth))
    got = {x["profile"]: x["segment"] for x in lines if "segment" in x}
    keys = sorted(got)
    ari = adjusted_rand_index([truth[k] for k in keys], [got[k] for k in keys])
    client = redis.Redis.from_url(settings.redis_url.get_secret_value())
    try:
        names = [Keys(settings).user(k) for k in keys[:1000]]
        sizes = [client.memory_usage(n, samples=0) or 0 for n in names]
    finally:
        client.close()
    return {"ari_truth": ari, "redis_bytes_per_user": sum(sizes) / max(len(sizes), 1)}


def clocked(
    settings: Settings,
    procs: list[subprocess.Popen[bytes]],
    logs: list[Path],
    begin: Callable[[], Any] = lambda: None,
) -> tuple[float, float]:
    """From now (``begin()`` included) until the group has committed every input record
    (twice in a row): wall seconds, and the CPU seconds of all the workers."""
    offsets = Offsets(settings)
    try:
        start, cpu0 = time.perf_counter(), [cpu_seconds(p.pid) for p in procs]
        begin()
        done_twice = 0
        while done_twice < 2:
            for p, log in zip(procs, logs, strict=True):
                assert p.poll() is None, log.read_text()[-3000:]
            assert time.perf_counter() - start < 1800, "the workers did not finish"
            done_twice = done_twice + 1 if group_done(offsets, inputs_of(settings)) else 0
            time.sleep(0.2)
        seconds = time.perf_counter() - start
        cpu = sum(cpu_seconds(p.pid) - c for p, c in zip(procs, cpu0, strict=True))
    finally:
        offsets.close()
    return seconds, cpu


def records_per_event(
    settings: Settings, events: int, topics: tuple[str, ...] = ("identity", "events")
) -> float:
    """Records of ``topics`` per source event (every record, which the run has read to
    the end). By default the Faust agents' inputs: the sources are read by the edge
    process and ``training`` by the trainer's plain consumer, both outside Faust."""
    names = [settings.topic(t) for t in topics]
    conf = {**kafka_client_config(settings), "group.id": "bench-count"}
    consumer = Consumer(conf)
    total = 0
    try:
        for name in names:
            parts = consumer.list_topics(name, timeout=10).topics[name].partitions
            for part in parts:
                lo, hi = consumer.get_watermark_offsets(TopicPartition(name, part), timeout=10)
                total += hi - lo
    finally:
        consumer.close()
    return total / events


def worker_e2e(
    settings: Settings, users: int, seed: int, work: Path, truth: dict[str, str], end_ms: int
) -> dict[str, Any]:
    ensure_topics(settings)
    log = work / "worker.log"
    port = free_port()
    env = {"SEGSTREAM_NAMESPACE": settings.namespace, "SEGSTREAM_METRICS_PORT": str(port)}
    proc = start_worker(settings, log, env=env)
    try:
        events, seconds, cpu = on_backlog(settings, [proc], [log], users, seed)
        per_event = records_per_event(settings, events)  # before any more events come
        training = records_per_event(settings, events, ("training",))
        # not timed: the model settles, then the live segments are judged
        # settled: no new version for 2.5 publish intervals (the model has stopped moving)
        wait_for_segments(settings, sorted(truth), timeout=600, settle=25, proc=proc)
        judged = quality(settings, truth)
        rate = min(FRESHNESS_RATE_EPS, round(events / seconds / 2, -2))
        offsets = Offsets(settings)
        try:
            fresh = freshness.measure(
                settings,
                port,
                sorted(truth),
                rate,
                FRESHNESS_SECONDS,
                end_ms,
                lambda: group_done(offsets, inputs_of(settings)),
            )
        finally:
            offsets.close()
        restarts = log.read_text().count("to read them again")
    finally:
        code = stop_worker(proc)
    assert code == 0, log.read_text()[-3000:]
    records = segment_records(settings)
    return {
        "events": events,
        "seconds": seconds,
        "cpu_s": cpu,
        "restarts": restarts,
        "records_per_event": per_event,
        "training_per_event": training,
        **judged,
        **fresh,
        **id_churn(records, model_segments(settings)),
        **ari_batch(settings, records),
    }


def group_stable(settings: Settings, procs: list[subprocess.Popen[bytes]]) -> None:
    """Until every process of every worker is up: the worker and edge groups stable
    with one member per worker, each owning partitions, and the trainer group with one
    member per worker, one of them holding the training lease. (A child process still
    starting would spend its imports on the clock.)"""
    admin = AdminClient(kafka_client_config(settings))
    deadline = time.monotonic() + 300
    groups: dict[str, Callable[[list[int]], bool]] = {
        settings.consumer_group: all,
        settings.edge_group: all,
        settings.trainer_group: lambda owned: sum(owned) == 1,
    }
    while True:
        assert all(p.poll() is None for p in procs) and time.monotonic() < deadline
        found = admin.describe_consumer_groups(list(groups))
        ready = 0
        for name, enough in groups.items():
            group = found[name].result()
            owned = [len(m.assignment.topic_partitions) for m in group.members]
            if group.state == ConsumerGroupState.STABLE and len(owned) == len(procs):
                ready += bool(enough(owned))
        if ready == len(groups):
            return
        time.sleep(0.5)


def on_backlog(
    settings: Settings,
    procs: list[subprocess.Popen[bytes]],
    logs: list[Path],
    users: int,
    seed: int,
    events_per_user: int | None = None,
) -> tuple[int, float, float]:
    """The workers, started on empty topics, work off the whole stream as a backlog:
    once they are ready and the group has split the partitions, they are frozen
    (SIGSTOP, edges included) while the stream is produced, so no worker takes it alone
    and none does work before the clock runs; the clock runs from the moment they go on
    (SIGCONT) until the group has committed it all. Producing takes seconds, well inside
    the group's session timeout. Returns the events, wall seconds and CPU seconds."""
    for proc, log in zip(procs, logs, strict=True):
        wait_ready(proc, log, time.monotonic() + 300)
    group_stable(settings, procs)
    signal_workers(procs, signal.SIGSTOP)
    try:
        n = produce_sample(settings, users=users, seed=seed, events_per_user=events_per_user)[0]
    except BaseException:
        signal_workers(procs, signal.SIGCONT)
        raise
    seconds, cpu = clocked(settings, procs, logs, lambda: signal_workers(procs, signal.SIGCONT))
    return n, seconds, cpu


def process_tree(pid: int) -> list[int]:
    """``pid`` and every live process it started (a worker and its edge process)."""
    return [pid, *(p for c in children_of(pid) for p in process_tree(c))]


def signal_workers(procs: list[subprocess.Popen[bytes]], sig: signal.Signals) -> None:
    for proc in procs:
        for pid in process_tree(proc.pid):
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, sig)


def two_workers(settings: Settings, users: int, seed: int, work: Path) -> dict[str, float]:
    """The same stream, read by two worker processes in one group (``on_backlog``)."""
    ensure_topics(settings)
    logs = [work / "worker-a.log", work / "worker-b.log"]
    procs = []
    for i, log in enumerate(logs):
        env = {
            "SEGSTREAM_NAMESPACE": settings.namespace,
            "SEGSTREAM_METRICS_PORT": "0",
            "SEGSTREAM_WORKER_ID": f"bench-{i}",
        }
        procs.append(start_worker(settings, log, env=env))
    try:
        n, seconds, cpu = on_backlog(settings, procs, logs, users, seed)
    finally:
        codes = [stop_worker(p) for p in procs]
    for code, log in zip(codes, logs, strict=True):
        assert code == 0, log.read_text()[-3000:]
    return {"events": n, "seconds": seconds, "cpu_s": cpu}


def api_latency(work: Path) -> dict[str, float]:
    """``bench/api_latency.py --quick`` for the lookup and plain GET phases."""
    out = work / "api.json"
    cmd = [sys.executable, str(REPO / "bench" / "api_latency.py"), "--quick"]
    cmd += ["--phases", "redis_get,lookup", "--json", str(out)]
    done = subprocess.run(cmd, cwd=REPO, capture_output=True, timeout=900)
    assert done.returncode == 0 and out.exists(), done.stderr.decode()[-3000:]
    r = orjson.loads(out.read_bytes())
    return {k: round(r[k], 3) for k in ("lookup_p99_ms", "redis_get_p99_ms")}


def machine() -> dict[str, Any]:
    info = Path("/proc/cpuinfo").read_text().splitlines()
    cpu = next((x.split(":", 1)[1].strip() for x in info if x.startswith("model name")), "")
    meminfo = Path("/proc/meminfo").read_text().splitlines()
    mem_kb = int(next(x for x in meminfo if x.startswith("MemTotal")).split()[1])
    versions = {
        name: metadata.version(name)
        for name in ("faust-streaming", "aiokafka", "confluent-kafka", "river", "redis")
    }
    return {
        "cpu": cpu,
        "cpus": os.cpu_count(),
        "mem_gib": round(mem_kb / 2**20, 1),
        "python": platform.python_version(),
        "versions": versions,
    }


def run(users: int, seed: int = 7) -> dict[str, Any]:
    s = Settings(namespace=f"bench{uuid.uuid4().hex[:6]}", metrics_port=0)
    n, g = produce_sample(s, users=users, seed=seed)
    s2 = Settings(namespace=f"{s.namespace}x2", metrics_port=0)
    with tempfile.TemporaryDirectory(prefix="segstream-bench-") as tmp:
        work = Path(tmp)
        raw = raw_consume(s, n)
        faust_only = faust_consume_only(s, n, work)
        s1 = Settings(namespace=f"{s.namespace}x1", metrics_port=0)
        e2e = worker_e2e(s1, users, seed, work, g.truth, g.end_ms)
        two = two_workers(s2, users, seed, work)
        api = api_latency(work)
    return {
        "events": n,
        "users": users,
        "throughput_eps": round(e2e["events"] / e2e["seconds"]),
        "eps_per_worker_cpu": round(e2e["events"] / e2e["cpu_s"]),
        "throughput_2workers_eps": round(two["events"] / two["seconds"]),
        "eps_per_worker_cpu_2workers": round(two["events"] / two["cpu_s"]),
        "faust_consume_only_eps": round(n / faust_only["seconds"]),
        "faust_consume_only_eps_per_cpu": round(n / faust_only["cpu_s"]),
        "raw_consume_eps": round(n / raw["seconds"]),
        "raw_consume_eps_per_cpu": round(n / raw["cpu_s"]),
        "share_of_raw_loop": round((n / e2e["cpu_s"]) / (n / raw["cpu_s"]), 3),
        "share_of_consume_only": round(
            e2e["seconds"] and faust_only["seconds"] / e2e["seconds"], 3
        ),
        "faust_records_per_event": round(e2e["records_per_event"], 3),
        "training_records_per_event": round(e2e["training_per_event"], 3),
        "worker_seconds": round(e2e["seconds"], 1),
        "worker_cpu_s": round(e2e["cpu_s"], 1),
        "worker_restarts": e2e["restarts"],
        "freshness_p50_ms": e2e["freshness_p50_ms"],
        "freshness_p99_ms": e2e["freshness_p99_ms"],
        "freshness_rate_eps": e2e["freshness_rate_eps"],
        **api,
        "ari_truth": round(e2e["ari_truth"], 4),
        "ari_batch": e2e["ari_batch"] if e2e["ari_batch"] is None else round(e2e["ari_batch"], 4),
        "id_churn": round(e2e["id_churn"], 4),
        "id_churn_checked": e2e["id_churn_checked"],
        "id_churn_all": round(e2e["id_churn_all"], 4),
        "id_churn_all_checked": e2e["id_churn_all_checked"],
        "redis_bytes_per_user": round(e2e["redis_bytes_per_user"]),
        "namespace": s.namespace,
        "machine": machine(),
    }


def run_scale(users: int, events_per_user: int, seed: int = 7) -> dict[str, Any]:
    """Throughput at a population's scale, alone: the plain loop (1) and one worker on a
    backlog (3) over each user's latest ``events_per_user`` events; no clustering
    quality, freshness or second worker."""
    s = Settings(namespace=f"scale{uuid.uuid4().hex[:6]}", metrics_port=0)
    n, _ = produce_sample(s, users=users, seed=seed, events_per_user=events_per_user)
    s1 = Settings(namespace=f"{s.namespace}x1", metrics_port=0)
    with tempfile.TemporaryDirectory(prefix="segstream-bench-") as tmp:
        raw = raw_consume(s, n)
        ensure_topics(s1)
        log = Path(tmp) / "worker.log"
        env = {"SEGSTREAM_NAMESPACE": s1.namespace, "SEGSTREAM_METRICS_PORT": "0"}
        proc = start_worker(s1, log, env=env)
        try:
            args = (users, seed, events_per_user)
            events, seconds, cpu = on_backlog(s1, [proc], [log], *args)
            per_event = records_per_event(s1, events)
            training = records_per_event(s1, events, ("training",))
            peak = peak_rss_mib(process_tree(proc.pid))
            faust_peak = peak_rss_mib([proc.pid])
        finally:
            code = stop_worker(proc)
        assert code == 0, log.read_text()[-3000:]
    return {
        "events": events,
        "users": users,
        "events_per_user": events_per_user,
        "throughput_eps": round(events / seconds),
        "eps_per_worker_cpu": round(events / cpu),
        "raw_consume_eps_per_cpu": round(n / raw["cpu_s"]),
        "share_of_raw_loop": round((events / cpu) / (n / raw["cpu_s"]), 3),
        "faust_records_per_event": round(per_event, 3),
        "training_records_per_event": round(training, 3),
        "worker_seconds": round(seconds, 1),
        "worker_cpu_s": round(cpu, 1),
        "worker_peak_rss_mib": peak,
        "faust_process_peak_rss_mib": faust_peak,
        "namespace": s.namespace,
        "machine": machine(),
    }


def peak_rss_mib(pids: list[int]) -> int:
    """The peak resident memory of ``pids`` together (``VmHWM``), in MiB."""
    total_kib = 0
    for pid in pids:
        with contextlib.suppress(OSError):
            for line in Path(f"/proc/{pid}/status").read_text().splitlines():
                if line.startswith("VmHWM:"):
                    total_kib += int(line.split()[1])
    return round(total_kib / 1024)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--quick", action="store_true", help="1,000 users (about 50,000 events)")
    ap.add_argument("--users", type=int, default=None, help="default 4,000 (1,000 with --quick)")
    ap.add_argument("--scale", action="store_true", help="throughput only (run_scale)")
    ap.add_argument("--events-per-user", type=int, default=5, help="with --scale")
    ap.add_argument("--json", type=Path, default=None, help="write the figures here too")
    args = ap.parse_args()
    if args.scale:
        result = run_scale(args.users or 100_000, args.events_per_user)
    else:
        result = run(args.users or (1000 if args.quick else 4000))
    text = orjson.dumps(result, option=orjson.OPT_INDENT_2).decode()
    print(text)
    if args.json:
        args.json.write_text(text + "\n")


if __name__ == "__main__":
    main()
