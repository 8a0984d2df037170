"""The built-in sample data and the demo that runs the whole pipeline on it."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import orjson
from rich.console import Console

from segstream.consumers.checkout import find_checkout
from segstream.consumers.queries import lookup_users, reader, segment_table
from segstream.consumers.redis_view import UserSegment
from segstream.models.quality import adjusted_rand_index
from segstream.models.synthetic import Generator
from segstream.schemas.privacy import hash_email_field
from segstream.schemas.settings import Settings
from segstream.streams.produce import send_all
from segstream.streams.topics import ensure_topics


def demo_root() -> Path:
    """The checkout (its ``.local/`` holds the local servers' data), else the current
    directory: the demo's worker runs there and logs to ``.local/demo-worker.log``."""
    return find_checkout() or Path.cwd()


def produce_sample(
    settings: Settings, users: int, seed: int, events_per_user: int | None = None
) -> tuple[int, Generator]:
    """Produce the synthetic stream (each user's latest ``events_per_user`` events only,
    if given); emails are hashed here, before they reach a topic."""
    ensure_topics(settings)
    g = Generator(users=users, seed=seed, events_per_user=events_per_user)
    key = settings.email_hash_key.get_secret_value().encode()
    records = (
        (e.source, e.key.encode(), orjson.dumps(hash_email_field(e.value, key))) for e in g.events()
    )
    return send_all(settings, records), g


def start_worker(
    settings: Settings, log_path: Path, env: dict[str, str] | None = None
) -> subprocess.Popen[bytes]:
    """``segstream worker`` as a child process with the same settings (plus ``env``)."""
    child_env = {**os.environ, **(env or {})}
    log_path.parent.mkdir(parents=True, exist_ok=True)
    with log_path.open("ab") as log:
        return subprocess.Popen(
            [sys.executable, "-m", "segstream.consumers.cli", "worker"],
            env=child_env,
            stdout=log,
            stderr=subprocess.STDOUT,
            cwd=demo_root(),
        )


def last_error(log_path: Path, since: int = 0, tail_bytes: int = 65536) -> str | None:
    """The last ``error: ...`` line the CLI wrote to ``log_path`` after byte ``since`` (its
    one-line reason for exiting), or ``None``."""
    try:
        with log_path.open("rb") as f:
            f.seek(max(since, f.seek(0, os.SEEK_END) - tail_bytes))
            lines = f.read().decode(errors="replace").splitlines()
    except OSError:
        return None
    found = [line.strip() for line in lines if line.startswith("error: ")]
    return found[-1].removeprefix("error: ") if found else None


def stop_worker(proc: subprocess.Popen[bytes], timeout: float = 60) -> int:
    if proc.poll() is None:
        proc.send_signal(signal.SIGTERM)
        try:
            return proc.wait(timeout)
        except subprocess.TimeoutExpired:
            proc.kill()
    return proc.wait()


def wait_for_segments(
    settings: Settings,
    profiles: list[str],
    timeout: float,
    settle: float,
    proc: subprocess.Popen[bytes] | None = None,
    console: Console | None = None,
    ready: Callable[[dict[str, UserSegment | None]], bool] | None = None,
) -> dict[str, Any]:
    """Wait until every profile has a segment from the latest model and the model is stable
    (and ``ready`` holds for what Redis has for the profiles, when given).

    Returns ``{"assigned": n, "version": v, "seconds": t}``; raises TimeoutError.
    """
    r = reader(settings)
    started = time.monotonic()
    stable_since, last_version = started, -1
    while True:
        if proc is not None and proc.poll() is not None:
            raise RuntimeError(f"the worker exited with code {proc.returncode}")
        model = r.model() or {}
        version = int(model.get("version", 0))
        if version != last_version:
            stable_since, last_version = time.monotonic(), version
        found = r.lookup(profiles) if version else {}
        current = sum(1 for v in found.values() if v is not None and v.version == version)
        elapsed = time.monotonic() - started
        if console:
            console.print(
                f"  {elapsed:5.0f}s  model v{version}: {current}/{len(profiles)} "
                "users on the latest model",
                highlight=False,
            )
        settled = time.monotonic() - stable_since >= settle
        if version and current == len(profiles) and settled and (ready is None or ready(found)):
            return {"assigned": current, "version": version, "seconds": elapsed}
        if elapsed > timeout:
            raise TimeoutError(
                f"after {timeout:.0f}s only {current}/{len(profiles)} users "
                f"have a segment from model v{version}"
            )
        time.sleep(2)


def run_demo(settings: Settings, users: int, seed: int, timeout: float, console: Console) -> int:
    from segstream.consumers.cli import render_segments

    console.rule("segstream demo")
    console.print(f"namespace {settings.namespace!r}, Kafka {settings.kafka_bootstrap}")
    started = time.monotonic()
    n, g = produce_sample(settings, users=users, seed=seed)
    console.print(
        f"produced {n} web/ad/CRM events for {users} users "
        f"({len(set(g.truth.values()))} planted personas)"
    )
    log_path = demo_root() / ".local" / "demo-worker.log"
    since = log_path.stat().st_size if log_path.exists() else 0  # the log is appended to
    proc = start_worker(settings, log_path, env={"SEGSTREAM_PUBLISH_EVERY_S": "3"})
    console.print(f"worker started (pid {proc.pid}, log {log_path})")
    try:
        done = wait_for_segments(
            settings, sorted(g.truth), timeout=timeout, settle=8, proc=proc, console=console
        )
    except (TimeoutError, RuntimeError) as exc:
        # a worker that exited said why in one line (e.g. its metrics port is taken)
        said = last_error(log_path, since) if proc.poll() is not None else None
        reason = f"the worker exited: {said}" if said else str(exc)
        console.print(f"[red]demo failed:[/red] {reason}; see {log_path}")
        stop_worker(proc)
        return 1
    stop_worker(proc)
    rows = segment_table(settings)
    console.rule("segments")
    console.print(render_segments(rows))
    lines, _ = lookup_users(settings, sorted(g.truth))
    by_profile = {line["profile"]: line["segment"] for line in lines if "segment" in line}
    keys = sorted(by_profile)
    ari = adjusted_rand_index([g.truth[k] for k in keys], [by_profile[k] for k in keys])
    console.rule("lookup")
    examples: dict[str, str] = {}
    for profile, persona in sorted(g.truth.items()):
        examples.setdefault(persona, profile)
    sample_lines, _ = lookup_users(settings, [p.split(":", 1)[1] for p in examples.values()])
    for line in sample_lines:  # one JSON object per user and line, as `segstream lookup`
        print(orjson.dumps(line, option=orjson.OPT_NON_STR_KEYS).decode())
    console.rule("result")
    console.print(
        f"{done['assigned']} users segmented with model v{done['version']} in "
        f"{time.monotonic() - started:.0f}s; adjusted Rand index against the "
        f"planted personas: {ari:.3f}"
    )
    return 0
