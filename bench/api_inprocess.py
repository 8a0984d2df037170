"""CPU per request of the lookup API without sockets: its ASGI app called in this process.

    python bench/api_inprocess.py [--users N] [--requests N] [--json FILE]

Requests are made one at a time, so each figure is the CPU one request costs this process,
split where the layers meet:

* ``redis_*``: the Redis reads alone, the pipelines ``api_latency.py`` also times;
* ``healthz``: FastAPI, its middleware and ours, with no Redis and no key;
* ``unauthorized``: the same plus routing a lookup and refusing it (no Redis);
* ``lookup`` and ``batch100``: the whole answer, Redis included.

``api_latency.py`` reports the API process's CPU per request over real HTTP ("API CPU
µs/req"); the difference from ``lookup`` here is uvicorn, HTTP parsing and the sockets.
The app comes from ``consumers.api.create_app``, on real Redis, in the bench namespace.
"""

from __future__ import annotations

import argparse
import random
import time
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

import api_latency as bench
import orjson
import redis.asyncio as aioredis

from segstream.consumers.api import create_app
from segstream.consumers.api.reader import AsyncSegmentReader
from segstream.schemas.settings import Settings

Call = Callable[[int], Awaitable[None]]


async def asgi(
    app: Any, method: str, path: str, headers: list[tuple[bytes, bytes]], body: bytes
) -> int:
    """One request through the ASGI app; returns the status."""
    sent: list[dict[str, Any]] = []

    async def receive() -> dict[str, Any]:
        return {"type": "http.request", "body": body, "more_body": False}

    async def send(message: dict[str, Any]) -> None:
        sent.append(message)

    scope = {
        "type": "http",
        "asgi": {"version": "3.0"},
        "http_version": "1.1",
        "method": method,
        "scheme": "http",
        "path": path,
        "raw_path": path.encode(),
        "query_string": b"",
        "root_path": "",
        "headers": headers,
        "client": ("127.0.0.1", 50000),
        "server": ("127.0.0.1", 8080),
    }
    await app(scope, receive, send)
    return int(sent[0]["status"])


def expect(status: int, want: int, what: str) -> None:
    if status != want:
        raise RuntimeError(f"{what}: status {status}, expected {want}")


def calls(
    app: Any, key: str, work: bench.Workload, client: aioredis.Redis, settings: Settings
) -> dict[str, Call]:
    auth = [(b"authorization", f"Bearer {key}".encode()), (b"host", b"bench")]
    json_headers = [*auth, (b"content-type", b"application/json")]
    reader = AsyncSegmentReader(client, settings)
    single = bench.redis_lookup_sender(reader, [[u] for u in work.ids])
    batch = bench.redis_lookup_sender(reader, work.batches)

    async def redis_lookup(k: int) -> None:
        expect(200 if await single(k) is None else 0, 200, "redis lookup")

    async def redis_batch(k: int) -> None:
        expect(200 if await batch(k) is None else 0, 200, "redis batch")

    async def healthz(_: int) -> None:
        expect(await asgi(app, "GET", "/healthz", auth, b""), 200, "healthz")

    async def unauthorized(k: int) -> None:
        path = f"/v1/users/{work.ids[k % len(work.ids)]}/segment"
        expect(await asgi(app, "GET", path, [], b""), 401, "lookup without a key")

    async def lookup(k: int) -> None:
        path = f"/v1/users/{work.ids[k % len(work.ids)]}/segment"
        expect(await asgi(app, "GET", path, auth, b""), 200, "lookup")

    async def batch100(k: int) -> None:
        body = work.body(k % len(work.batches))
        headers = [*json_headers, (b"content-length", str(len(body)).encode())]
        expect(await asgi(app, "POST", "/v1/segments/lookup", headers, body), 200, "batch")

    return {
        "redis_lookup": redis_lookup,
        f"redis_batch{len(work.batches[0])}": redis_batch,
        "healthz": healthz,
        "unauthorized": unauthorized,
        "lookup": lookup,
        f"batch{len(work.batches[0])}": batch100,
    }


async def cost(call: Call, n: int) -> dict[str, float]:
    """CPU and wall time per call, in µs, after a warm-up of n/10 calls."""
    for k in range(max(1, n // 10)):
        await call(k)
    cpu, wall = time.process_time(), time.perf_counter()
    for k in range(n):
        await call(k)
    return {
        "cpu_us": (time.process_time() - cpu) / n * 1e6,
        "wall_us": (time.perf_counter() - wall) / n * 1e6,
    }


async def measure(args: argparse.Namespace, settings: Settings, key: str) -> dict[str, Any]:
    work = bench.Workload.draw(args, random.Random(args.seed + 1))
    app = create_app(settings)
    client = aioredis.Redis.from_url(settings.redis_url.get_secret_value())
    figures: dict[str, Any] = {}
    try:
        async with app.router.lifespan_context(app):
            for name, call in calls(app, key, work, client, settings).items():
                n = args.requests if "batch" not in name else max(10, args.requests // 20)
                figures |= {f"{name}_{k}": v for k, v in (await cost(call, n)).items()}
                bench.log(f"{name}: {figures[f'{name}_cpu_us']:,.0f} µs CPU per request")
    finally:
        await client.aclose()
    return figures


def parse_args() -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--users", type=int, default=10_000, help="users to seed [10,000]")
    p.add_argument("--requests", type=int, default=4000, help="single requests per case [4000]")
    p.add_argument("--json", type=Path, help="also write the figures to this file")
    p.add_argument("--redis-url", default="redis://127.0.0.1:6379/0")
    p.add_argument("--seed", type=int, default=7)
    args = p.parse_args()
    # the workload drawn as api_latency.py draws it: one id per request, batches of 100
    args.rate, args.batch_rate, args.batch_size = args.requests, args.requests / 20, 100
    args.duration, args.warmup = 1.1, 0.0
    return args


def main() -> int:
    args = parse_args()
    settings = Settings(namespace=bench.NAMESPACE, redis_url=args.redis_url)
    try:
        bench.run_async(bench.seed(settings, args.users, random.Random(args.seed)))
        figures = bench.run_async(measure(args, settings, bench.new_api_key(settings)))
    finally:
        bench.run_async(bench.cleanup(settings))
    print("| request | CPU µs | wall µs |\n|---|---|---|")
    for name in dict.fromkeys(k.rsplit("_", 2)[0] for k in figures):
        print(f"| {name} | {figures[f'{name}_cpu_us']:,.0f} | {figures[f'{name}_wall_us']:,.0f} |")
    if args.json:
        args.json.write_text(orjson.dumps(figures, option=orjson.OPT_INDENT_2).decode() + "\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
