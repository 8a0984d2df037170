"""Open-loop load from one asyncio process: a schedule, two HTTP clients, CPU from /proc.

Open loop: request ``k`` of a phase at rate ``r`` is due at ``start + k / r`` and is sent
then, whatever earlier answers do; its latency counts from that due time, so a stall
shows in the figures instead of slowing the load down (no coordinated omission).

The event loop's timers tick in whole milliseconds, so a thread sleeps until each due
time (``time.sleep``, about 0.1 ms late) and hands the due requests to the loop; cyclic
garbage collection is off while a phase runs. ``lag`` is how late each request really
started: the generator's own share of a latency.
"""

from __future__ import annotations

import asyncio
import contextlib
import gc
import math
import os
import threading
import time
from collections.abc import Awaitable, Callable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Protocol, cast

import aiohttp
import httptools
from yarl import URL

# A request of a phase: sent with its index; answers None when fine, else an error label.
Send = Callable[[int], Awaitable[str | None]]
# An HTTP request before a client prepares it: method, path, body.
Request = tuple[str, str, bytes | None]


# ------------------------------------------------------------------ schedule
@dataclass
class Samples:
    """What one phase measured; times in seconds from ``time.perf_counter``."""

    latency: list[float] = field(default_factory=list)  # due time → answer
    service: list[float] = field(default_factory=list)  # real start → answer
    lag: list[float] = field(default_factory=list)  # due time → real start
    errors: dict[str, int] = field(default_factory=dict)
    start: float = 0.0  # due time of the first request
    end: float = 0.0  # last answer


def ticker(
    loop: asyncio.AbstractEventLoop,
    fire: Callable[[int, int], None],
    t0: float,
    rate: float,
    n: int,
) -> None:
    """Thread: sleep until request ``i`` is due, then hand every due request to the loop."""
    i = 0
    while i < n:
        now = time.perf_counter()
        due = t0 + i / rate
        if due > now:
            time.sleep(due - now)
            now = time.perf_counter()
        j = min(n, max(i + 1, math.floor((now - t0) * rate) + 1))
        loop.call_soon_threadsafe(fire, i, j)
        i = j


async def open_loop(
    send: Send, rate: float, duration: float, failures: tuple[type[BaseException], ...]
) -> Samples:
    """Send ``rate × duration`` requests at their due times; wait for every answer.

    An exception of a type in ``failures`` counts as an error, by type name.
    """
    loop = asyncio.get_running_loop()
    n = max(1, round(rate * duration))
    out = Samples()
    in_flight: set[asyncio.Task[None]] = set()
    all_sent = asyncio.Event()

    async def one(k: int) -> None:
        due = out.start + k / rate
        started = time.perf_counter()
        try:
            error = await send(k)
        except failures as exc:
            error = type(exc).__name__
        done = time.perf_counter()
        out.end = max(out.end, done)
        out.lag.append(started - due)
        if error is None:
            out.latency.append(done - due)
            out.service.append(done - started)
        else:
            out.errors[error] = out.errors.get(error, 0) + 1

    def fire(i: int, j: int) -> None:
        for k in range(i, j):
            task = loop.create_task(one(k))
            in_flight.add(task)
            task.add_done_callback(in_flight.discard)
        if j >= n:
            all_sent.set()

    with no_gc_pauses():  # first: its collection takes milliseconds
        out.start = time.perf_counter() + 0.01
        thread = threading.Thread(target=ticker, args=(loop, fire, out.start, rate, n), daemon=True)
        thread.start()
        await all_sent.wait()
        await asyncio.gather(*list(in_flight))
        thread.join()
    return out


@contextlib.contextmanager
def no_gc_pauses() -> Iterator[None]:
    """No cyclic garbage collection inside: a full collection over the workload's objects
    would stall the loop for milliseconds and show as latency. Collected on the way out."""
    gc.collect()
    gc.freeze()  # what exists now is not scanned while frozen
    gc.disable()
    try:
        yield
    finally:
        gc.unfreeze()
        gc.enable()
        gc.collect()


def percentile(ordered: Sequence[float], p: float) -> float:
    """Nearest-rank percentile of sorted values (NaN when there are none)."""
    if not ordered:
        return math.nan
    return ordered[min(len(ordered) - 1, max(0, math.ceil(p / 100 * len(ordered)) - 1))]


# ------------------------------------------------------------------ HTTP clients
class HttpClient(Protocol):
    def prepare(self, requests: list[Request]) -> list[object]: ...

    async def send(self, prepared: object) -> int: ...

    async def close(self) -> None: ...


class HttpConnection(asyncio.Protocol):
    """One keep-alive HTTP/1.1 connection, one request at a time; httptools parses answers."""

    def __init__(self) -> None:
        self.transport: asyncio.Transport | None = None
        self.parser = httptools.HttpResponseParser(self)
        self.answer: asyncio.Future[int] | None = None
        self.closed = False

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = cast(asyncio.Transport, transport)  # uvloop's is not a subclass

    def data_received(self, data: bytes) -> None:
        try:
            self.parser.feed_data(data)
        except httptools.HttpParserError as exc:
            self.fail(exc)
            self.close()

    def on_message_complete(self) -> None:  # httptools callback
        if self.answer is not None and not self.answer.done():
            self.answer.set_result(self.parser.get_status_code())
        if not self.parser.should_keep_alive():
            self.close()

    def connection_lost(self, exc: Exception | None) -> None:
        self.closed = True
        self.fail(exc or ConnectionResetError("the server closed the connection"))

    def fail(self, exc: BaseException) -> None:
        if self.answer is not None and not self.answer.done():
            self.answer.set_exception(exc)

    def close(self) -> None:
        self.closed = True
        if self.transport is not None:
            self.transport.close()

    async def request(self, raw: bytes) -> int:
        assert self.transport is not None
        self.answer = asyncio.get_running_loop().create_future()
        self.transport.write(raw)
        return await self.answer


class RawHttp:
    """A lean HTTP/1.1 client: requests encoded once, a pool of keep-alive connections."""

    def __init__(self, host: str, port: int, headers: dict[str, str], limit: int, timeout: float):
        self.host, self.port, self.timeout = host, port, timeout
        self.headers = {"Host": f"{host}:{port}", **headers}
        self.slots = asyncio.Semaphore(limit)
        self.idle: list[HttpConnection] = []

    def prepare(self, requests: list[Request]) -> list[object]:
        return [self.encode(method, path, body) for method, path, body in requests]

    def encode(self, method: str, path: str, body: bytes | None) -> bytes:
        headers = dict(self.headers)
        if body is not None:
            headers |= {"Content-Type": "application/json", "Content-Length": str(len(body))}
        head = "".join(f"{k}: {v}\r\n" for k, v in headers.items())
        return f"{method} {path} HTTP/1.1\r\n{head}\r\n".encode() + (body or b"")

    async def send(self, prepared: object) -> int:
        assert isinstance(prepared, bytes)
        async with self.slots:
            conn = self._idle() or await self._connect()
            try:
                async with asyncio.timeout(self.timeout):
                    status = await conn.request(prepared)
            except BaseException:
                conn.close()
                raise
            if not conn.closed:
                self.idle.append(conn)
            return status

    def _idle(self) -> HttpConnection | None:
        while self.idle:
            conn = self.idle.pop()
            if not conn.closed:
                return conn
        return None

    async def _connect(self) -> HttpConnection:
        loop = asyncio.get_running_loop()
        _, conn = await loop.create_connection(HttpConnection, self.host, self.port)
        return conn

    async def close(self) -> None:
        for conn in self.idle:
            conn.close()
        self.idle.clear()


class AiohttpHttp:
    """The same requests through aiohttp's client and its connection pool."""

    def __init__(self, host: str, port: int, headers: dict[str, str], limit: int, timeout: float):
        self.base = f"http://{host}:{port}"
        self.session = aiohttp.ClientSession(
            connector=aiohttp.TCPConnector(limit=limit),
            timeout=aiohttp.ClientTimeout(total=timeout),
            headers=headers,
        )

    def prepare(self, requests: list[Request]) -> list[object]:
        return [(m, URL(self.base + path, encoded=True), body) for m, path, body in requests]

    async def send(self, prepared: object) -> int:
        method, url, body = prepared  # type: ignore[misc]
        headers = {"Content-Type": "application/json"} if body is not None else None
        async with self.session.request(method, url, data=body, headers=headers) as resp:
            await resp.read()
            return resp.status

    async def close(self) -> None:
        await self.session.close()


CLIENTS: dict[str, type[RawHttp] | type[AiohttpHttp]] = {"raw": RawHttp, "aiohttp": AiohttpHttp}


def http_sender(client: HttpClient, requests: list[Request]) -> Send:
    prepared = client.prepare(requests)

    async def send(k: int) -> str | None:
        status = await client.send(prepared[k % len(prepared)])
        return None if status == 200 else f"http_{status}"

    return send


# ------------------------------------------------------------------ CPU from /proc
# Per-process times (``/proc/<pid>/stat``) are the scheduler's exact run times. The
# machine-wide ``/proc/stat`` is sampled at timer ticks and misses short bursts (seen
# here: a loop waking 2,000 times a second showed 12 % in its own times, 3 % there), so
# "everything else" is the sum over all processes, the reaped children of each included.
TICK = os.sysconf("SC_CLK_TCK")


@dataclass(frozen=True, slots=True)
class ProcTimes:
    ppid: int
    own: float  # user + system CPU seconds of the process (all its threads)
    reaped: float  # of its children that exited and were waited for


def processes() -> dict[int, ProcTimes]:
    """Every process now, by pid."""
    out: dict[int, ProcTimes] = {}
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            with contextlib.suppress(OSError, IndexError, ValueError):
                f = (entry / "stat").read_text().rsplit(")", 1)[1].split()
                own, reaped = (int(f[11]) + int(f[12])) / TICK, (int(f[13]) + int(f[14])) / TICK
                out[int(entry.name)] = ProcTimes(int(f[1]), own, reaped)
    return out


def descendants(procs: dict[int, ProcTimes], root: int) -> list[int]:
    """``root`` and its descendants (uvicorn ``--workers`` are children)."""
    tree, frontier = [root], {root}
    while frontier:
        frontier = {pid for pid, p in procs.items() if p.ppid in frontier}
        tree += frontier
    return tree


def cpu_waiting_s() -> float:
    """Seconds some runnable task waited for a CPU (pressure stall information), since boot."""
    try:
        some = Path("/proc/pressure/cpu").read_text().split("\n", 1)[0]
    except OSError:
        return math.nan
    return int(some.rsplit("total=", 1)[1]) / 1e6


def steal_s() -> float:
    """Seconds the hypervisor ran something else on this machine's CPUs, since boot."""
    return int(Path("/proc/stat").read_text().split("\n", 1)[0].split()[8]) / TICK


@dataclass
class CpuMeter:
    """CPU seconds of the server's process tree, redis-server, this process, all processes."""

    server_pid: int | None
    redis_pid: int | None

    def read(self) -> dict[str, float]:
        procs = processes()
        server = descendants(procs, self.server_pid) if self.server_pid else []
        zero = ProcTimes(0, 0.0, 0.0)
        return {
            "api": sum(procs.get(pid, zero).own for pid in server),
            "redis": procs.get(self.redis_pid or -1, zero).own,
            "load": procs.get(os.getpid(), zero).own,
            "machine": sum(p.own + p.reaped for p in procs.values()),
            "steal": steal_s(),
            "stall": cpu_waiting_s(),
            "wall": time.perf_counter(),
        }

    @staticmethod
    def percent(before: dict[str, float], after: dict[str, float]) -> dict[str, float]:
        """Percent of one core over the interval (``seconds`` long); ``others``: every process
        but the three measured; ``steal``: taken by the hypervisor; ``stall``: share of the
        time some task waited for a CPU."""
        wall = after["wall"] - before["wall"]
        out = {k: 100 * (after[k] - before[k]) / wall for k in before if k != "wall"}
        out["others"] = max(0.0, out["machine"] - out["api"] - out["redis"] - out["load"])
        return out | {"seconds": wall}

    async def wait_quiet(self, limit_pct: float, max_wait_s: float) -> float:
        """Until the other processes use under ``limit_pct`` of a core for a second (at most
        ``max_wait_s``); returns the seconds waited."""
        start = time.perf_counter()
        while max_wait_s > 0 and time.perf_counter() - start < max_wait_s:
            before = self.read()
            await asyncio.sleep(1.0)
            if self.percent(before, self.read())["others"] < limit_pct:
                break
        return time.perf_counter() - start
