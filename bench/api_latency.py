"""Latency of the lookup API (issue #3), against a real ``segstream api`` and real Redis.

    python bench/api_latency.py [--quick] [--json FILE]

The bench seeds users into a Redis namespace of its own (``seg:bench-api:*``) with
the worker's own writer (``SegmentWriter``, ``publish_model``), creates an API key
with the project's key code, and starts the API as a subprocess on a free loopback
port, as ``segstream api`` runs it (or under plain uvicorn with options:
``--server uvicorn --uvicorn-args="--workers 2"``). This process is the load
generator, open-loop (see ``loadgen.py``). Phases, each after an uncounted warm-up:

==================  ==================================================================
``noop``            the generator alone, no I/O: its own scheduling lag and CPU
``redis_get``       GET of a user's features string (redis.asyncio + hiredis, as the API)
``redis_hgetall``   HGETALL of a user hash
``redis_lookup``    the API's Redis read for one lookup (its reader: one EVALSHA_RO call)
``healthz``         ``GET /healthz``: HTTP, uvicorn and FastAPI without Redis or a key
``lookup``          ``GET /v1/users/{id}/segment``, random existing users
``batch100``        ``POST /v1/segments/lookup`` with 100 random existing users
==================  ==================================================================

CPU is read from ``/proc`` for the API's process tree, redis-server, this process and
the rest of the machine, in percent of one core. On a shared machine the bench waits
before each phase until the other processes are quiet (``--quiet-below``).
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import http.client
import importlib.metadata
import json
import math
import os
import platform
import random
import shlex
import shutil
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Awaitable, Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import aiohttp
import httptools
import orjson
import redis.asyncio as aioredis
from loadgen import (
    CLIENTS,
    CpuMeter,
    HttpClient,
    Request,
    Samples,
    Send,
    http_sender,
    open_loop,
    percentile,
)
from redis.exceptions import ResponseError

# Import the packages of the checkout this file is in (and start the API on them), whatever
# the installed copy of segstream points at.
ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from segstream.consumers.api.reader import AsyncSegmentReader  # noqa: E402
from segstream.consumers.api_keys import admin_client, create_key  # noqa: E402 (after the path)
from segstream.consumers.redis_view import Keys, SegmentWriter  # noqa: E402
from segstream.schemas.records import SegmentRecord  # noqa: E402
from segstream.schemas.settings import DEFAULT_FEATURES, Settings  # noqa: E402

NAMESPACE = "bench-api"
N_SEGMENTS = 5
MODEL_VERSION = 1
BASE_MS = 1_795_305_600_000  # 2026-11-22T00:00Z: the seeded users' event times end here
SEED_BATCH = 1000
KEY_RATE = 1e6  # requests/s: the bench must never be throttled
REQUEST_TIMEOUT_S = 10.0
MAX_CONNECTIONS = 256  # HTTP and Redis, load side
TARGETS_MS = {"lookup_p99_ms": 2.0, "batch100_p99_ms": 5.0}
PERCENTILES = (("p50", 50.0), ("p90", 90.0), ("p99", 99.0), ("p999", 99.9))
PACKAGES = ("fastapi", "starlette", "uvicorn", "uvloop", "httptools", "pydantic", "redis")
PACKAGES += ("hiredis", "aiohttp", "orjson")
FAILURES = (aiohttp.ClientError, aioredis.RedisError, httptools.HttpParserError, OSError)
FAILURES += (TimeoutError,)


# ------------------------------------------------------------------ the plan
@dataclass(frozen=True)
class Phase:
    name: str
    rate: float  # requests/s
    kind: str  # noop, redis_get, redis_hgetall, redis_lookup, healthz, lookup, batch


def phases(args: argparse.Namespace) -> list[Phase]:
    every = [
        Phase(kind, args.rate, kind)
        for kind in ("noop", "redis_get", "redis_hgetall", "redis_lookup", "healthz", "lookup")
    ]
    every.append(Phase(f"batch{args.batch_size}", args.batch_rate, "batch"))
    wanted = set(args.phases.split(",")) if args.phases else None
    return [p for p in every if wanted is None or p.kind in wanted or p.name in wanted]


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    add = p.add_argument
    add("--quick", action="store_true", help="10,000 users, 10 s phases, 2 s warm-ups")
    add("--json", type=Path, help="also write the figures to this file")
    add("--users", type=int, help="users to seed [100,000; --quick 10,000]")
    add("--duration", type=float, help="counted seconds per phase [30; --quick 10]")
    add("--warmup", type=float, help="uncounted seconds before each phase [5; --quick 2]")
    add("--rate", type=float, default=2000.0, help="single requests/s [2000]")
    add("--batch-rate", type=float, default=200.0, help="batch requests/s [200]")
    add("--batch-size", type=int, default=100, help="ids per batch [100]")
    add("--phases", help="a comma-separated subset, e.g. noop,lookup,batch")
    add("--client", choices=sorted(CLIENTS), default="raw", help="HTTP client [raw]")
    add("--server", choices=("cli", "uvicorn"), default="cli", help="cli: `segstream api` [cli]")
    add("--api-args", default="", help='extra `segstream api` options: --api-args="--workers 2"')
    add("--uvicorn-args", default="", help='extra uvicorn options: --uvicorn-args="--workers 2"')
    add("--redis-url", default=os.environ.get("SEGSTREAM_REDIS_URL", "redis://127.0.0.1:6379/0"))
    add("--quiet-below", type=float, default=30.0, help="wait until others use < this %% of a core")
    add("--quiet-wait", type=float, default=60.0, help="... at most this long per phase [60 s]")
    add("--attempts", type=int, default=3, help="measure a phase again while others were busy [3]")
    add("--profile", type=Path, help="py-spy the API in HTTP phases, into this directory")
    add("--api-log", type=Path, help="keep the API's output in this file")
    add("--keep", action="store_true", help="leave the seeded keys in Redis")
    add("--seed", type=int, default=7, help="random seed [7]")
    args = p.parse_args(argv)
    args.users = args.users or (10_000 if args.quick else 100_000)
    args.duration = args.duration or (10.0 if args.quick else 30.0)
    args.warmup = args.warmup if args.warmup is not None else (2.0 if args.quick else 5.0)
    return args


# ------------------------------------------------------------------ data
def user_id(i: int) -> str:
    return f"bench{i:07d}"


def make_record(i: int, rng: random.Random) -> SegmentRecord:
    """A user as the worker stores one: a segment, its scores and plain-unit features."""
    weights = [rng.random() ** 3 for _ in range(N_SEGMENTS)]
    total = sum(weights)
    scores = {sid: round(w / total, 3) for sid, w in enumerate(weights)}
    return SegmentRecord(
        profile=f"u:{user_id(i)}",
        segment=max(scores, key=lambda sid: scores[sid]),
        version=MODEL_VERSION,
        seq=1 + rng.randrange(500),
        updated_ms=BASE_MS - rng.randrange(180 * 86_400_000),
        scores=scores,
        features={f: round(rng.lognormvariate(0.0, 1.0), 3) for f in DEFAULT_FEATURES},
    )


def catalog() -> dict[int, dict[str, Any]]:
    """A segment catalog shaped like the trainer's (``models.naming.profiles``)."""
    return {
        sid: {
            "id": sid,
            "name": f"Bench segment {sid}",
            "description": "Synthetic segment seeded by bench/api_latency.py.",
            "share": round(1 / N_SEGMENTS, 3),
            "version": MODEL_VERSION,
            "centroid": {f: float(sid) for f in DEFAULT_FEATURES},
            "z": {f: round(sid - N_SEGMENTS / 2, 2) for f in DEFAULT_FEATURES},
        }
        for sid in range(N_SEGMENTS)
    }


async def clear_namespace(client: aioredis.Redis, settings: Settings) -> int:
    """Delete every key of the bench namespace (and nothing else); returns how many."""
    deleted = 0
    batch: list[bytes] = []
    async for key in client.scan_iter(match=settings.redis_key("*"), count=1000):
        batch.append(key)
        if len(batch) >= SEED_BATCH:
            deleted += await client.unlink(*batch)
            batch.clear()
    if batch:
        deleted += await client.unlink(*batch)
    return deleted


async def seed(settings: Settings, users: int, rng: random.Random) -> dict[str, int]:
    """Empty the namespace, publish a catalog, write ``users``; returns some users' segments."""
    client = aioredis.Redis.from_url(settings.redis_url.get_secret_value())
    expected: dict[str, int] = {}
    try:
        await clear_namespace(client, settings)
        writer = SegmentWriter(client, settings)
        await writer.publish_model(MODEL_VERSION, BASE_MS, list(DEFAULT_FEATURES), catalog())
        for start in range(0, users, SEED_BATCH):
            records = [make_record(i, rng) for i in range(start, min(users, start + SEED_BATCH))]
            written = await writer.write(records)
            if written != len(records):
                raise RuntimeError(f"seeding wrote {written} of {len(records)} records")
            expected = expected or {r.profile[2:]: r.segment for r in records[:20]}
    finally:
        await client.aclose()
    return expected


async def cleanup(settings: Settings) -> None:
    client = aioredis.Redis.from_url(settings.redis_url.get_secret_value())
    try:
        await clear_namespace(client, settings)
    finally:
        await client.aclose()


async def settle_redis(settings: Settings, since: float, max_wait_s: float = 120.0) -> float:
    """Until Redis has snapshotted the seeding under its own ``save`` rules and no snapshot
    or AOF rewrite runs, so that none forks during a phase (a fork stalls Redis for
    milliseconds); returns the seconds waited."""
    client = aioredis.Redis.from_url(settings.redis_url.get_secret_value())
    start = time.monotonic()
    try:
        try:
            rules = (await client.config_get("save")).get("save", "")
        except ResponseError:  # CONFIG is not allowed for this user: do not wait for a save
            rules = ""
        while time.monotonic() - start < max_wait_s:
            info = await client.info("persistence")
            saved = not rules or info["rdb_last_save_time"] >= since
            forks = ("rdb_bgsave_in_progress", "aof_rewrite_in_progress", "aof_rewrite_scheduled")
            if saved and not any(info.get(k) for k in forks):
                break
            await asyncio.sleep(1.0)
    finally:
        await client.aclose()
    return time.monotonic() - start


def new_api_key(settings: Settings) -> str:
    """A ``segments:read`` key, made as ``segstream keys create`` makes one."""
    client = admin_client(settings)
    try:
        key, _ = create_key(client, settings, ["segments:read"], KEY_RATE, name="bench")
    finally:
        client.close()
    return key


@dataclass(frozen=True)
class Workload:
    """What the phases send: random existing users, drawn before any phase starts."""

    ids: list[str]  # one per single request
    batches: list[list[str]]  # one per batch request

    @classmethod
    def draw(cls, args: argparse.Namespace, rng: random.Random) -> Workload:
        def users(n: int) -> list[str]:
            return [user_id(rng.randrange(args.users)) for _ in range(n)]

        seconds = args.duration + args.warmup
        batches = [users(args.batch_size) for _ in range(round(args.batch_rate * seconds) + 1)]
        return cls(users(round(args.rate * seconds) + 1), batches)

    def body(self, k: int) -> bytes:
        return orjson.dumps({"user_ids": self.batches[k]})

    def requests(self, kind: str) -> list[Request]:
        if kind == "healthz":
            return [("GET", "/healthz", None)]
        if kind == "lookup":
            return [("GET", f"/v1/users/{u}/segment", None) for u in self.ids]
        return [("POST", "/v1/segments/lookup", self.body(k)) for k in range(len(self.batches))]


# ------------------------------------------------------------------ Redis senders
async def noop(_: int) -> str | None:
    return None


def redis_get_sender(client: aioredis.Redis, keys: list[str]) -> Send:
    async def send(k: int) -> str | None:
        return None if await client.get(keys[k % len(keys)]) is not None else "missing"

    return send


def redis_hgetall_sender(client: aioredis.Redis, keys: list[str]) -> Send:
    async def send(k: int) -> str | None:
        return None if await client.hgetall(keys[k % len(keys)]) else "missing"

    return send


def redis_lookup_sender(reader: AsyncSegmentReader, groups: list[list[str]]) -> Send:
    """The API's own Redis read for a group of users (one for a single lookup): its
    reader's lookup, one read-only script call resolving ``u:<id>`` then ``a:<id>``."""

    async def send(k: int) -> str | None:
        found = await reader.lookup(groups[k % len(groups)])
        return None if all(hit is not None for hit in found.values()) else "missing"

    return send


@dataclass
class Rig:
    """The load side's clients and workload, made once per run."""

    http: HttpClient
    redis: aioredis.Redis
    keys: Keys
    reader: AsyncSegmentReader
    work: Workload

    def sender(self, kind: str) -> Send:
        ids, keys = self.work.ids, self.keys
        senders: dict[str, Callable[[], Send]] = {
            "noop": lambda: noop,
            "redis_get": lambda: redis_get_sender(
                self.redis, [keys.features(f"u:{u}") for u in ids]
            ),
            "redis_hgetall": lambda: redis_hgetall_sender(
                self.redis, [keys.user(f"u:{u}") for u in ids]
            ),
            "redis_lookup": lambda: redis_lookup_sender(self.reader, [[u] for u in ids]),
        }
        make = senders.get(kind)
        return make() if make else http_sender(self.http, self.work.requests(kind))


# ------------------------------------------------------------------ the API server
def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def server_command(args: argparse.Namespace, port: int) -> list[str]:
    if args.server == "cli":
        exe = shutil.which("segstream") or "segstream"
        cli = [exe, "api", "--host", "127.0.0.1", "--port", str(port)]
        return [*cli, *shlex.split(args.api_args)]
    uvicorn = [sys.executable, "-m", "uvicorn", "--factory", "segstream.consumers.api:create_app"]
    return [*uvicorn, "--host", "127.0.0.1", "--port", str(port), *shlex.split(args.uvicorn_args)]


def server_env(settings: Settings) -> dict[str, str]:
    url = settings.redis_url.get_secret_value()
    path = os.pathsep.join(filter(None, (str(ROOT), os.environ.get("PYTHONPATH"))))
    env = {**os.environ, "PYTHONPATH": path, "SEGSTREAM_NAMESPACE": settings.namespace}
    return {**env, "SEGSTREAM_REDIS_URL": url, "SEGSTREAM_API_REDIS_URL": url}


def http_call(
    port: int, method: str, path: str, headers: dict[str, str], body: bytes | None = None
) -> tuple[int, Any]:
    """One request with the standard library (set-up checks, not load)."""
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=5)
    try:
        conn.request(method, path, body=body, headers=headers)
        resp = conn.getresponse()
        return resp.status, json.loads(resp.read() or b"null")
    finally:
        conn.close()


def wait_ready(proc: subprocess.Popen[bytes], port: int, log: Path, timeout: float = 60) -> None:
    """Until ``/readyz`` answers 200 (Redis reachable); fails with the server's log."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"the API exited ({proc.returncode}):\n{log.read_text()[-3000:]}")
        with contextlib.suppress(OSError):
            if http_call(port, "GET", "/readyz", {})[0] == 200:
                return
        time.sleep(0.2)
    raise RuntimeError(f"the API was not ready in {timeout:g}s:\n{log.read_text()[-3000:]}")


@contextlib.contextmanager
def api_server(cmd: list[str], env: dict[str, str], port: int, log: Path | None) -> Iterator[int]:
    """Run the API, its output in ``log`` (else a temporary file); yields its pid and stops
    it (SIGTERM, then SIGKILL) on the way out."""
    with tempfile.TemporaryDirectory(prefix="bench-api-") as tmp:
        log = log or Path(tmp) / "api.log"
        with log.open("wb") as out:
            proc = subprocess.Popen(cmd, env=env, stdout=out, stderr=subprocess.STDOUT)
        try:
            wait_ready(proc, port, log)
            yield proc.pid
        finally:
            proc.terminate()
            try:
                proc.wait(15)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()


def check_answers(port: int, key: str, expected: dict[str, int], batch: bytes) -> None:
    """The API reads the seeded layout: sampled users in their seeded segments, no unknowns."""
    auth = {"Authorization": f"Bearer {key}"}
    for user, segment in expected.items():
        status, body = http_call(port, "GET", f"/v1/users/{user}/segment", auth)
        if status != 200 or body.get("segment") != segment:
            raise RuntimeError(f"lookup of {user}: {status} {body}; seeded segment {segment}")
    headers = {**auth, "Content-Type": "application/json"}
    status, body = http_call(port, "POST", "/v1/segments/lookup", headers, batch)
    if status != 200 or body.get("unknown"):
        raise RuntimeError(f"batch lookup: {status} {str(body)[:300]}")


# ------------------------------------------------------------------ phases
@contextlib.contextmanager
def profiled(pid: int | None, phase: Phase, args: argparse.Namespace) -> Iterator[None]:
    """With ``--profile DIR``: py-spy samples the API during an HTTP phase (collapsed stacks)."""
    if not (args.profile and pid and phase.kind in ("healthz", "lookup", "batch")):
        yield
        return
    args.profile.mkdir(parents=True, exist_ok=True)
    cmd = ["py-spy", "record", "--pid", str(pid), "--rate", "200", "--format", "raw"]
    cmd += ["--nonblocking", "--subprocesses", "--duration", str(math.ceil(args.duration))]
    cmd += ["--output", str(args.profile / f"{phase.name}.txt")]
    spy = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        yield
    finally:
        try:
            spy.wait(30)
        except subprocess.TimeoutExpired:
            spy.kill()
            spy.wait()


def summarize(phase: Phase, s: Samples, cpu: dict[str, float]) -> dict[str, Any]:
    """Flat figures of one phase, keys ``<phase>_<figure>``, times in ms."""
    lat, svc, lag = sorted(s.latency), sorted(s.service), sorted(s.lag)
    fig: dict[str, Any] = {
        "target_rps": phase.rate,
        "achieved_rps": len(lat) / (s.end - s.start) if s.end > s.start else 0.0,
        "requests": len(lag),
        "errors": sum(s.errors.values()),
        "error_kinds": dict(s.errors),
    }
    for label, p in PERCENTILES:
        fig[f"{label}_ms"] = percentile(lat, p) * 1e3
    fig["max_ms"] = (lat[-1] if lat else math.nan) * 1e3
    for label, values in (("service", svc), ("lag", lag)):
        fig[f"{label}_p50_ms"] = percentile(values, 50) * 1e3
        fig[f"{label}_p99_ms"] = percentile(values, 99) * 1e3
        fig[f"{label}_max_ms"] = (values[-1] if values else math.nan) * 1e3
    fig |= {f"cpu_{who}_pct": pct for who, pct in cpu.items() if who != "seconds"}
    for who in ("api", "load"):  # per request sent, failed ones too: they cost CPU as well
        seconds = cpu[who] / 100 * cpu["seconds"]
        fig[f"cpu_{who}_us_per_request"] = seconds / len(lag) * 1e6 if lag else math.nan
    return {f"{phase.name}_{k}": v for k, v in fig.items()}


async def redis_forks(client: aioredis.Redis) -> int:
    """How many times Redis has forked (RDB snapshot, AOF rewrite) since it started."""
    return int((await client.info("stats"))["total_forks"])


async def run_phase(
    rig: Rig, phase: Phase, meter: CpuMeter, args: argparse.Namespace
) -> dict[str, Any]:
    """Wait for a quiet machine, warm up, measure; again while other processes took over
    ``--quiet-below`` of a core during the measurement, at most ``--attempts`` times."""
    send = rig.sender(phase.kind)
    for attempt in range(1, max(1, args.attempts) + 1):
        waited = await meter.wait_quiet(args.quiet_below, args.quiet_wait)
        again = f" (attempt {attempt})" if attempt > 1 else ""
        log(f"{phase.name}: {phase.rate:g}/s, {args.warmup:g}+{args.duration:g} s{again}")
        if args.warmup > 0:
            await open_loop(send, phase.rate, args.warmup, FAILURES)
        forks = -await redis_forks(rig.redis)
        with profiled(meter.server_pid, phase, args):
            before = meter.read()
            samples = await open_loop(send, phase.rate, args.duration, FAILURES)
            cpu = CpuMeter.percent(before, meter.read())
        forks += await redis_forks(rig.redis)
        contended = cpu["others"] > args.quiet_below
        if not contended:
            break
        log(f"{phase.name}: other processes used {cpu['others']:.0f}% of a core meanwhile")
    extra = {"quiet_wait_s": round(waited, 1), "attempts": attempt, "contended": contended}
    extra["redis_forks"] = forks  # snapshots or AOF rewrites started meanwhile (others' writes)
    return summarize(phase, samples, cpu) | {f"{phase.name}_{k}": v for k, v in extra.items()}


async def measure(
    args: argparse.Namespace,
    settings: Settings,
    work: Workload,
    port: int,
    key: str,
    meter: CpuMeter,
) -> dict[str, Any]:
    """Every phase, from this process; returns the flat figures."""
    url = settings.redis_url.get_secret_value()
    pool = aioredis.BlockingConnectionPool.from_url(
        url, max_connections=MAX_CONNECTIONS, timeout=REQUEST_TIMEOUT_S
    )  # past the limit a request waits for a connection, as the HTTP clients do
    client = aioredis.Redis(connection_pool=pool)
    auth = {"Authorization": f"Bearer {key}"}
    http = CLIENTS[args.client]("127.0.0.1", port, auth, MAX_CONNECTIONS, REQUEST_TIMEOUT_S)
    rig = Rig(http, client, Keys(settings), AsyncSegmentReader(client, settings), work)
    figures: dict[str, Any] = {}
    try:
        for phase in phases(args):
            figures |= await run_phase(rig, phase, meter, args)
    finally:
        await http.close()
        await client.aclose()
        await pool.disconnect()
    return figures


# ------------------------------------------------------------------ facts and report
def version(package: str) -> str:
    try:
        return importlib.metadata.version(package)
    except importlib.metadata.PackageNotFoundError:
        return "not installed"


def machine_facts(redis_version: str) -> dict[str, Any]:
    cpuinfo = Path("/proc/cpuinfo").read_text().splitlines()
    models = [ln.split(":", 1)[1].strip() for ln in cpuinfo if ln.startswith("model name")]
    mem_kb = int(Path("/proc/meminfo").read_text().split()[1])
    return {
        "cpu_model": models[0] if models else platform.processor(),
        "cores": os.cpu_count(),
        "ram_gib": round(mem_kb / 2**20, 1),
        "kernel": platform.release(),
        "python": platform.python_version(),
        "redis_server": redis_version,
        **{pkg: version(pkg) for pkg in PACKAGES},
    }


COLUMNS = (
    ("phase", ""),
    ("target/s", "target_rps"),
    ("achieved/s", "achieved_rps"),
    ("errors", "errors"),
    ("p50 ms", "p50_ms"),
    ("p90 ms", "p90_ms"),
    ("p99 ms", "p99_ms"),
    ("p99.9 ms", "p999_ms"),
    ("max ms", "max_ms"),
    ("lag p99 ms", "lag_p99_ms"),
    ("API CPU %", "cpu_api_pct"),
    ("API CPU µs/req", "cpu_api_us_per_request"),
    ("Redis CPU %", "cpu_redis_pct"),
    ("load CPU %", "cpu_load_pct"),
    ("others CPU %", "cpu_others_pct"),
)


def cell(value: Any) -> str:
    if isinstance(value, float):
        return f"{value:,.0f}" if abs(value) >= 100 else f"{value:.2f}"
    return str(value)


def table(figures: dict[str, Any], names: list[str]) -> str:
    """The figures as a Markdown table, one row per phase."""
    rows = [[name, *(cell(figures[f"{name}_{key}"]) for _, key in COLUMNS[1:])] for name in names]
    head = [title for title, _ in COLUMNS]
    lines = ["| " + " | ".join(head) + " |", "|" + "|".join("---" for _ in head) + "|"]
    return "\n".join([*lines, *("| " + " | ".join(r) + " |" for r in rows)])


def verdict(figures: dict[str, Any]) -> dict[str, bool]:
    """Each target met: its p99 within bounds and no errors in its phase."""
    out = {}
    for name, limit in TARGETS_MS.items():
        if name in figures:
            phase = name.removesuffix("_p99_ms")
            out[name] = figures[name] <= limit and figures[f"{phase}_errors"] == 0
    return out


# ------------------------------------------------------------------ main
def log(text: str) -> None:
    print(f"[bench] {text}", file=sys.stderr, flush=True)


def run_async(coro: Awaitable[Any]) -> Any:
    """Run with uvloop when it is installed (as uvicorn does), else asyncio."""
    try:
        import uvloop
    except ImportError:
        return asyncio.run(coro)  # type: ignore[arg-type]
    return uvloop.run(coro)  # type: ignore[arg-type]


async def redis_server_info(settings: Settings) -> dict[str, Any]:
    client = aioredis.Redis.from_url(settings.redis_url.get_secret_value())
    try:
        return dict(await client.info("server"))
    finally:
        await client.aclose()


def run_bench(args: argparse.Namespace, settings: Settings, redis_pid: int) -> dict[str, Any]:
    """Seed, start the API, check it, measure; the bench namespace is emptied afterwards."""
    log(f"seeding {args.users:,} users under {settings.redis_key('*')}")
    port = free_port()
    cmd = server_command(args, port)
    try:
        expected = run_async(seed(settings, args.users, random.Random(args.seed)))
        waited = run_async(settle_redis(settings, since=time.time()))
        log(f"Redis has saved the seeding and is not forking: waited {waited:.0f} s")
        key = new_api_key(settings)
        work = Workload.draw(args, random.Random(args.seed + 1))
        log(f"starting the API: {shlex.join(cmd)}")
        with api_server(cmd, server_env(settings), port, args.api_log) as pid:
            check_answers(port, key, expected, work.body(0))
            meter = CpuMeter(pid, redis_pid)
            figures = run_async(measure(args, settings, work, port, key, meter))
    finally:
        if not args.keep:
            run_async(cleanup(settings))
    return {"server_command": shlex.join(cmd), **figures}


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    settings = Settings(namespace=NAMESPACE, redis_url=args.redis_url)
    info = run_async(redis_server_info(settings))
    figures = run_bench(args, settings, int(info["process_id"]))
    report = {
        "date": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
        "command": shlex.join(["python", "bench/api_latency.py", *sys.argv[1:]]),
        "config": {k: str(v) if isinstance(v, Path) else v for k, v in vars(args).items()},
        "machine": machine_facts(str(info["redis_version"])),
        "targets_ms": TARGETS_MS,
        "targets_met": verdict(figures),
        **figures,
    }
    print(table(figures, [p.name for p in phases(args)]))
    print("targets met:", report["targets_met"] or "(their phases did not run)")
    for flag, what in (
        ("contended", f"other processes used over {args.quiet_below:g}% of a core in"),
        ("redis_forks", "Redis forked (snapshot or AOF rewrite) during"),
    ):
        if names := [p.name for p in phases(args) if figures[f"{p.name}_{flag}"]]:
            print(f"{what}: {', '.join(names)}")
    if args.json:
        args.json.write_text(orjson.dumps(report, option=orjson.OPT_INDENT_2).decode() + "\n")
        log(f"wrote {args.json}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
