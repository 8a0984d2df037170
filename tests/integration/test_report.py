"""``segstream report`` against the real Redis, drawn by a real browser.

A namespace is seeded the way the worker fills it: member records with features through
its ``SegmentWriter``, a model and catalog through ``publish_model``, and model cycles
built by the trainer's own ``history_entry`` through ``append_history``. The report runs
as a CLI process; headless Chromium then parses the page (its DOM must hold one element
per datum) and screenshots it (the pixels must show the map's dots and the drift
thresholds, so the SVG really drew, with no script and nothing fetched).
"""

from __future__ import annotations

import asyncio
import os
import random
import shutil
import struct
import subprocess
import sys
import zlib
from collections.abc import Callable
from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest
import redis.asyncio as aioredis

from segstream.consumers import charts
from segstream.consumers.redis_view import SegmentWriter
from segstream.models.drift import Drifts
from segstream.models.features import feature_space, lifetime_free
from segstream.models.health import Health
from segstream.models.naming import profiles
from segstream.models.segments import Segment, Snapshot
from segstream.models.trainer import Report
from segstream.schemas.records import SegmentRecord
from segstream.schemas.settings import Settings
from segstream.streams.training import history_entry

pytestmark = pytest.mark.integration
REPO = Path(__file__).resolve().parents[2]
PER_SEGMENT = 50
SAMPLE = 90  # 30 drawn from each of the three segments
T0 = 1_763_800_000_000
MIN = 60_000


def _snapshot(features: tuple[str, ...]) -> Snapshot:
    rng = random.Random(3)
    mean = tuple(0.3 if f.startswith("share_") else 2.0 for f in features)
    std = tuple(0.1 if f.startswith("share_") else 0.6 for f in features)
    segs = tuple(
        Segment(sid, tuple(rng.uniform(-1.8, 1.8) for _ in features), 1 / 3) for sid in (0, 1, 2)
    )
    return Snapshot(5, features, mean, std, segs, 10, T0, 10_000)


def _records(snap: Snapshot, settings: Settings) -> list[SegmentRecord]:
    space = feature_space(snap.features)
    rng = random.Random(4)
    out = []
    for seg in snap.segments:
        for i in range(PER_SEGMENT):
            z = [c + rng.gauss(0, 0.25) for c in seg.centroid]
            raw = space.readable(snap.unscale(z))
            out.append(
                SegmentRecord(
                    profile=f"u:{seg.id}-{i}",
                    segment=seg.id,
                    version=snap.version,
                    seq=1,
                    updated_ms=T0,
                    scores={seg.id: 1.0},
                    features={k: round(v, 4) for k, v in raw.items()},
                    revenue=round(rng.uniform(0, 300), 2),
                    converted=rng.random() < 0.4,
                    ad_cost=round(rng.uniform(0, 20), 2),
                )
            )
    return out


def _history(snap: Snapshot, watched: tuple[str, ...]) -> list[dict[str, object]]:
    """Five cycles; segment 9 vanishes after the first; drifts confirmed in the last two."""
    entries = []
    for n in range(5):
        sizes = {0: 40 + n, 1: 50, 2: 60 - n} | ({9: 12} if n == 0 else {})
        drifts = Drifts(
            feature_psi={f: 0.06 * n for f in watched},
            segment_psi=0.03 * n,
            centroid_shift={sid: 0.3 * n for sid in sizes},
            features=["share_paid"] if n == 3 else [],
            segments=n == 4,
            centroids=[2] if n == 4 else [],
        )
        report = Report(drifts=drifts, checked=n > 0, silhouette=0.5, vanished=[9] if n else [])
        health = {sid: Health(u, 10.0 * u, u // 3, 2.0 * u) for sid, u in sizes.items()}
        entry = history_entry(replace(snap, version=n + 1), report, health, Settings())
        entry["wall_ms"] = T0 + n * MIN  # cycles a minute apart, not all this millisecond
        entries.append(entry)
    return entries


async def _seed(settings: Settings, history: bool) -> None:
    snap = _snapshot(settings.features)
    client = aioredis.Redis.from_url(settings.redis_url.get_secret_value())
    writer = SegmentWriter(client, settings)
    try:
        assert await writer.write(_records(snap, settings)) == 3 * PER_SEGMENT
        catalog = profiles(snap, feature_space(snap.features))
        await writer.publish_model(snap.version, T0, list(snap.features), catalog)
        for entry in _history(snap, lifetime_free(snap.features)) if history else []:
            await writer.append_history(entry)
    finally:
        await client.aclose()


def _report(settings: Settings, out: Path, *args: str) -> subprocess.CompletedProcess[str]:
    env = {
        **os.environ,
        "SEGSTREAM_NAMESPACE": settings.namespace,
        "SEGSTREAM_REDIS_URL": settings.redis_url.get_secret_value(),
    }
    return subprocess.run(
        [sys.executable, "-m", "segstream.consumers.cli", "report", "--out", str(out), *args],
        env=env,
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=120,
    )


def _chromium() -> str:
    for name in ("chromium", "chromium-browser", "google-chrome"):
        if path := shutil.which(name):
            return path
    pytest.fail(
        "chromium not found: this test draws the report in a real browser. Install it "
        "(`deploy/local/system-deps chromium`, or `apt-get install -y chromium`; deploy/test "
        "does this itself) and run again."
    )


def _browser(tmp: Path, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [
            _chromium(),
            "--headless",
            "--no-sandbox",
            "--disable-gpu",
            "--hide-scrollbars",
            "--no-first-run",
            f"--user-data-dir={tmp / 'chromium-profile'}",
            *args,
        ],
        capture_output=True,
        text=True,
        timeout=120,
    )


def decode_png(data: bytes) -> np.ndarray:
    """RGB(A) pixels of an 8-bit, non-interlaced PNG (what Chromium writes): height ×
    width × channels. Small on purpose: Pillow is not a dependency."""
    assert data[:8] == b"\x89PNG\r\n\x1a\n", "not a PNG"
    pos, idat, header = 8, [], None
    while pos < len(data):
        (n,) = struct.unpack(">I", data[pos : pos + 4])
        kind, body = data[pos + 4 : pos + 8], data[pos + 8 : pos + 8 + n]
        if kind == b"IHDR":
            header = struct.unpack(">IIBBBBB", body)
        elif kind == b"IDAT":
            idat.append(body)
        pos += 12 + n
    assert header is not None
    w, h, depth, ctype, _, _, interlace = header
    assert depth == 8 and ctype in (2, 6) and interlace == 0, header
    bpp = 3 if ctype == 2 else 4
    raw, stride = zlib.decompress(b"".join(idat)), w * bpp
    out = np.zeros((h, stride), dtype=np.uint8)
    prev = bytearray(stride)
    for y in range(h):
        start = y * (stride + 1)
        f, line = raw[start], bytearray(raw[start + 1 : start + 1 + stride])
        if f == 1:  # Sub
            for i in range(bpp, stride):
                line[i] = (line[i] + line[i - bpp]) & 255
        elif f == 2:  # Up
            line = bytearray(np.frombuffer(line, np.uint8) + np.frombuffer(prev, np.uint8))
        elif f == 3:  # Average
            for i in range(stride):
                left = line[i - bpp] if i >= bpp else 0
                line[i] = (line[i] + ((left + prev[i]) >> 1)) & 255
        elif f == 4:  # Paeth
            for i in range(stride):
                a = line[i - bpp] if i >= bpp else 0
                b, c = prev[i], (prev[i - bpp] if i >= bpp else 0)
                p = a + b - c
                pa, pb, pc = abs(p - a), abs(p - b), abs(p - c)
                pred = a if pa <= pb and pa <= pc else b if pb <= pc else c
                line[i] = (line[i] + pred) & 255
        out[y] = np.frombuffer(line, np.uint8)
        prev = line
    return out.reshape(h, w, bpp)[:, :, :3]


def _near(img: np.ndarray, rgb: tuple[int, int, int], tol: int) -> int:
    return int((np.abs(img.astype(int) - rgb).max(axis=2) <= tol).sum())


def _rgb(hex_colour: str, alpha: float = 1.0) -> tuple[int, int, int]:
    c = [int(hex_colour[i : i + 2], 16) for i in (1, 3, 5)]
    return (
        round(c[0] * alpha + 255 * (1 - alpha)),
        round(c[1] * alpha + 255 * (1 - alpha)),
        round(c[2] * alpha + 255 * (1 - alpha)),
    )


def test_report_draws_every_chart_in_a_real_browser(
    make_settings: Callable[..., Settings], tmp_path: Path
) -> None:
    s = make_settings()
    asyncio.run(_seed(s, history=True))
    out = tmp_path / "report.html"
    done = _report(s, out, "--sample", str(SAMPLE))
    assert done.returncode == 0, done.stderr
    assert "3 segments, 5 model cycles, 90 users on the map" in done.stderr
    html = out.read_text()
    assert "scaled as the model scales them" in html  # the catalog gave back the scaler

    dom = _browser(tmp_path, "--dump-dom", out.as_uri())
    assert dom.returncode == 0, dom.stderr[-2000:]
    page = dom.stdout
    counts = {
        cls: page.count(f'class="{cls}"')
        for cls in ("series", "user", "centre", "drift-marker", "threshold", "bar")
    }
    watched = len(lifetime_free(s.features))
    assert counts == {
        "series": 4 + 1 + 3 + watched,  # sizes (3 live, 1 gone), segment PSI, shifts, features
        "user": SAMPLE,
        "centre": 3,
        "drift-marker": 3,  # share_paid, the segment shares, segment 2's centre
        "threshold": 2 + watched,
        "bar": 3 * len(s.features),
    }
    assert "<script" not in page

    img = _screenshot(tmp_path, out)
    assert len(np.unique(img.reshape(-1, 3), axis=0)) > 200  # far from one colour
    assert (img.min(axis=2) < 200).mean() > 0.02  # ink on a good part of the page
    assert _near(img, _rgb(charts.THRESHOLD), 2) >= 200  # the drift charts' threshold lines
    # The map's dots, against the same page without a map: their tint (fill-opacity 0.6
    # on white) fills their area; elsewhere it is only the anti-aliased edge of a line.
    no_map = tmp_path / "no-map.html"
    assert _report(s, no_map, "--sample", "0").returncode == 0
    base = _screenshot(tmp_path, no_map)
    for n in range(3):
        tint = _rgb(charts.colour(n), 0.6)
        assert _near(img, tint, 3) - _near(base, tint, 3) >= 150, charts.colour(n)


def _screenshot(tmp_path: Path, page: Path) -> np.ndarray:
    png = tmp_path / f"{page.stem}.png"
    shot = _browser(tmp_path, f"--screenshot={png}", "--window-size=1200,6000", page.as_uri())
    assert shot.returncode == 0 and png.exists(), shot.stderr[-2000:]
    assert png.stat().st_size > 50_000
    img = decode_png(png.read_bytes())
    assert img.shape == (6000, 1200, 3)
    assert (img[-300:] == 255).all(), "the page is longer than the screenshot"
    return img


def test_without_history_the_report_says_so(
    make_settings: Callable[..., Settings], tmp_path: Path
) -> None:
    s = make_settings()
    asyncio.run(_seed(s, history=False))
    out = tmp_path / "report.html"
    done = _report(s, out)
    assert done.returncode == 0, done.stderr
    html = out.read_text()
    assert html.count("No history yet") == 2
    assert html.count('class="user"') == 3 * PER_SEGMENT  # fewer members than asked: all


def test_an_empty_namespace_is_a_clear_error(
    make_settings: Callable[..., Settings], tmp_path: Path
) -> None:
    s = make_settings()
    out = tmp_path / "report.html"
    done = _report(s, out)
    assert done.returncode == 1
    assert "no segments in namespace" in done.stderr and s.namespace in done.stderr
    assert not out.exists()
