"""Small, plain inline SVG charts for ``segstream report`` (no script, no external file).

Each function returns one ``<svg>`` element as text, scaled to its container by its
``viewBox``. Hover tooltips are SVG ``<title>`` elements, which browsers show without
any script. Classes name what was drawn (``series``, ``user``, ``centre``,
``drift-marker``), so tests and stylesheets can find it.

Colours: the Okabe-Ito palette (readable with the common colour-vision deficiencies)
without its yellow, which is too pale on white, then a few of Paul Tol's.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from html import escape

PALETTE = (
    "#0072B2",
    "#E69F00",
    "#009E73",
    "#CC79A7",
    "#56B4E9",
    "#D55E00",
    "#332288",
    "#999933",
    "#882255",
    "#44AA99",
    "#555555",
)
ABOVE, BELOW = "#1F4E79", "#B35806"  # z-score bars (PuOr ends): above / below average
THRESHOLD = "#B2182B"
GONE = "#B0B0B0"  # segments that no longer exist
FONT = 'font-family="system-ui, -apple-system, Segoe UI, Roboto, sans-serif"'


def esc(text: object) -> str:
    return escape(str(text), quote=True)


def colour(index: int) -> str:
    return PALETTE[index % len(PALETTE)]


def number(v: float) -> str:
    """Compact axis label: 1,200 → ``1.2k``; 0.25 → ``0.25``."""
    a = abs(v)
    if a >= 1e6:
        return f"{v / 1e6:.3g}M"
    if a >= 1e4:
        return f"{v / 1e3:.3g}k"
    if a >= 100 or v == int(v):
        return f"{v:,.0f}"
    return f"{v:.3g}"


def ticks(lo: float, hi: float, n: int = 5) -> list[float]:
    """Round-numbered ticks covering ``[lo, hi]`` (about ``n`` of them).

    >>> ticks(0, 1)
    [0.0, 0.2, 0.4, 0.6, 0.8, 1.0]
    >>> ticks(0, 940, 4)
    [0.0, 250.0, 500.0, 750.0, 1000.0]
    """
    if hi <= lo:
        hi = lo + 1
    raw = (hi - lo) / max(n, 1)
    mag = 10 ** math.floor(math.log10(raw))
    step = next(m * mag for m in (1, 2, 2.5, 5, 10) if m * mag >= raw)
    first = math.floor(lo / step) * step
    out, t = [], first
    while t < hi + step * 0.999:
        out.append(t)
        t = round(first + len(out) * step, 10)
    return out


TIME_STEPS_S = (1, 5, 10, 30, 60, 300, 600, 900, 1800, 3600, 7200, 10800, 21600, 43200, 86400)


def time_ticks(lo_ms: float, hi_ms: float, n: int = 6) -> list[tuple[float, str]]:
    """Ticks at round times (UTC) within ``[lo_ms, hi_ms]``, labelled for the span."""
    span_s = max((hi_ms - lo_ms) / 1000, 1)
    step = next((s for s in TIME_STEPS_S if span_s / s <= n), 86400 * math.ceil(span_s / n / 86400))
    fmt = "%H:%M:%S" if step < 60 else "%H:%M" if span_s < 86400 else "%b %d %H:%M"
    if step >= 86400:
        fmt = "%b %d"
    first = math.ceil(lo_ms / 1000 / step) * step
    out = []
    t = first
    while t * 1000 <= hi_ms:
        out.append((t * 1000.0, datetime.fromtimestamp(t, tz=UTC).strftime(fmt)))
        t += step
    return out


@dataclass
class Series:
    """One line: ``points`` are ``(x, y)``; a ``None`` y breaks the line (no value then).
    ``markers`` are ``(x, y, tooltip)`` points drawn as diamonds (confirmed drifts)."""

    name: str
    colour: str
    points: list[tuple[float, float | None]]
    markers: list[tuple[float, float, str]] = field(default_factory=list)


@dataclass(frozen=True)
class Frame:
    """A plot area inside an SVG of ``width`` × ``height`` with linear axes."""

    width: int
    height: int
    x0: float
    x1: float
    y0: float
    y1: float
    left: int = 58
    right: int = 16
    top: int = 14
    bottom: int = 40

    def x(self, v: float) -> float:
        span = (self.x1 - self.x0) or 1.0
        return self.left + (v - self.x0) / span * (self.width - self.left - self.right)

    def y(self, v: float) -> float:
        span = (self.y1 - self.y0) or 1.0
        return (
            self.height
            - self.bottom
            - (v - self.y0) / span * (self.height - self.top - self.bottom)
        )


def _open(kind: str, width: int, height: int, label: str) -> str:
    return (
        f'<svg class="chart {kind}" xmlns="http://www.w3.org/2000/svg" '
        f'viewBox="0 0 {width} {height}" role="img" aria-label="{esc(label)}" {FONT} '
        f'font-size="12"><title>{esc(label)}</title>'
    )


def _axes(
    f: Frame,
    xt: Sequence[tuple[float, str]],
    yt: Sequence[float],
    x_label: str,
    y_label: str,
    y_fmt: Callable[[float], str] = number,
) -> str:
    parts = []
    for v in yt:
        y = f.y(v)
        parts.append(
            f'<line x1="{f.left}" x2="{f.width - f.right}" y1="{y:.1f}" y2="{y:.1f}" '
            f'stroke="#e3e3e3"/><text x="{f.left - 6}" y="{y + 4:.1f}" text-anchor="end" '
            f'fill="#444">{esc(y_fmt(v))}</text>'
        )
    base = f.height - f.bottom
    for v, text in xt:
        x = f.x(v)
        parts.append(
            f'<line x1="{x:.1f}" x2="{x:.1f}" y1="{base}" y2="{base + 4}" stroke="#888"/>'
            f'<text x="{x:.1f}" y="{base + 17}" text-anchor="middle" fill="#444">'
            f"{esc(text)}</text>"
        )
    parts.append(
        f'<line x1="{f.left}" x2="{f.width - f.right}" y1="{base}" y2="{base}" stroke="#888"/>'
        f'<text x="{(f.left + f.width - f.right) / 2:.0f}" y="{f.height - 4}" '
        f'text-anchor="middle" fill="#222">{esc(x_label)}</text>'
        f'<text transform="translate(13 {(f.top + base) / 2:.0f}) rotate(-90)" '
        f'text-anchor="middle" fill="#222">{esc(y_label)}</text>'
    )
    return "".join(parts)


def _diamond(x: float, y: float, fill: str, tip: str) -> str:
    r = 6
    return (
        f'<path class="drift-marker" d="M{x:.1f} {y - r:.1f}L{x + r:.1f} {y:.1f}'
        f'L{x:.1f} {y + r:.1f}L{x - r:.1f} {y:.1f}Z" fill="{fill}" stroke="#000" '
        f'stroke-width="1.5"><title>{esc(tip)}</title></path>'
    )


def line_chart(
    series: Sequence[Series],
    *,
    label: str,
    y_label: str,
    x_label: str = "time (UTC)",
    threshold: tuple[float, str] | None = None,
    width: int = 900,
    height: int = 300,
    y_fmt: Callable[[float], str] = number,
) -> str:
    """Lines over time (x in epoch milliseconds), y from 0, an optional dashed threshold."""
    xs = [x for s in series for x, _ in s.points]
    ys = [y for s in series for _, y in s.points if y is not None]
    lo, hi = (min(xs), max(xs)) if xs else (0.0, 1.0)
    if hi - lo < 1000:  # one cycle: give it a minute of room
        lo, hi = lo - 30_000, hi + 30_000
    top = max([*ys, threshold[0] * 1.15 if threshold else 0.0, 1e-9])
    yt = ticks(0, top, 4)
    f = Frame(width, height, lo, hi, 0.0, yt[-1])
    parts = [
        _open("line", width, height, label),
        _axes(f, time_ticks(lo, hi, max(2, width // 150)), yt, x_label, y_label, y_fmt),
    ]
    if threshold:
        ty = f.y(threshold[0])
        parts.append(
            f'<line class="threshold" x1="{f.left}" x2="{width - f.right}" y1="{ty:.1f}" '
            f'y2="{ty:.1f}" stroke="{THRESHOLD}" stroke-dasharray="6 4" stroke-width="1.5">'
            f"<title>{esc(threshold[1])}</title></line>"
            f'<text x="{f.left + 4}" y="{ty - 5:.1f}" text-anchor="start" '
            f'fill="{THRESHOLD}">{esc(threshold[1])}</text>'
        )
    for s in series:
        d, pen = [], "M"
        for px, py in s.points:
            if py is None:
                pen = "M"
                continue
            d.append(f"{pen}{f.x(px):.1f} {f.y(py):.1f}")
            pen = "L"
        if not d:
            continue
        parts.append(
            f'<path class="series" data-series="{esc(s.name)}" d="{"".join(d)}" fill="none" '
            f'stroke="{s.colour}" stroke-width="2.2" stroke-linejoin="round">'
            f"<title>{esc(s.name)}</title></path>"
        )
        vals = [py for _, py in s.points]
        for n, (px, py) in enumerate(s.points):  # dots: all when few, else the isolated ones
            alone = all(m < 0 or m >= len(vals) or vals[m] is None for m in (n - 1, n + 1))
            if py is None or (len(vals) > 60 and not alone):
                continue
            tip = f"{s.name}: {y_fmt(py)} at {_when(px)}"
            parts.append(
                f'<circle class="dot" cx="{f.x(px):.1f}" cy="{f.y(py):.1f}" r="2.6" '
                f'fill="{s.colour}"><title>{esc(tip)}</title></circle>'
            )
        parts += [_diamond(f.x(mx), f.y(my), s.colour, mtip) for mx, my, mtip in s.markers]
    parts.append("</svg>")
    return "".join(parts)


def _when(ms: float) -> str:
    return datetime.fromtimestamp(ms / 1000, tz=UTC).strftime("%Y-%m-%d %H:%M:%S UTC")


def z_bars(
    rows: Sequence[tuple[str, float, str]], *, label: str, limit: float = 3.0, width: int = 440
) -> str:
    """Horizontal bars of z-scores ``(label, z, tooltip)`` around a zero line; bars longer
    than ``limit`` are cut there (the number says the true value)."""
    row_h, left, right, top = 20, 190, 44, 22
    height = top + row_h * len(rows) + 8
    mid = left + (width - left - right) / 2
    unit = (width - left - right) / 2 / limit
    parts = [_open("zbars", width, height, label)]
    for g in range(-int(limit), int(limit) + 1):
        x = mid + g * unit
        parts.append(
            f'<line x1="{x:.1f}" x2="{x:.1f}" y1="{top - 4}" y2="{height - 6}" '
            f'stroke="{"#888" if g == 0 else "#ececec"}"/>'
            f'<text x="{x:.1f}" y="{top - 8}" text-anchor="middle" fill="#666" '
            f'font-size="10">{g:+d}</text>'.replace(">+0<", ">0<")
        )
    for n, (name, z, tip) in enumerate(rows):
        y = top + n * row_h
        w = min(abs(z), limit) * unit
        x = mid if z >= 0 else mid - w
        fill = ABOVE if z >= 0 else BELOW
        tx = mid + w + 4 if z >= 0 else mid - w - 4
        parts.append(
            f'<text x="{left - 8}" y="{y + 14}" text-anchor="end" fill="#222">{esc(name)}</text>'
            f'<rect class="bar" x="{x:.1f}" y="{y + 4}" width="{max(w, 0.5):.1f}" height="12" '
            f'fill="{fill}"><title>{esc(tip)}</title></rect>'
            f'<text x="{tx:.1f}" y="{y + 14}" text-anchor="{"start" if z >= 0 else "end"}" '
            f'fill="#222" font-size="11">{z:+.1f}</text>'
        )
    parts.append("</svg>")
    return "".join(parts)


@dataclass(frozen=True)
class Point:
    x: float
    y: float
    colour: str
    tip: str


def scatter(
    points: Sequence[Point],
    centres: Sequence[tuple[Point, str]],
    *,
    label: str,
    x_label: str,
    y_label: str,
    width: int = 900,
    height: int = 560,
) -> str:
    """Users as small dots, segment centres as large outlined dots labelled by name."""
    xs = [p.x for p in points] + [c.x for c, _ in centres]
    ys = [p.y for p in points] + [c.y for c, _ in centres]
    xt, yt = ticks(min(xs), max(xs), 6), ticks(min(ys), max(ys), 5)
    f = Frame(width, height, xt[0], xt[-1], yt[0], yt[-1])
    parts = [
        _open("scatter", width, height, label),
        _axes(f, [(v, number(v)) for v in xt], yt, x_label, y_label),
    ]
    parts += [
        f'<circle class="user" cx="{f.x(p.x):.1f}" cy="{f.y(p.y):.1f}" r="2.8" '
        f'fill="{p.colour}" fill-opacity="0.6"><title>{esc(p.tip)}</title></circle>'
        for p in points
    ]
    for c, name in centres:
        cx, cy = f.x(c.x), f.y(c.y)
        right = cx < width * 0.6  # the name on the side with room
        parts.append(
            f'<circle class="centre" cx="{cx:.1f}" cy="{cy:.1f}" r="9" fill="{c.colour}" '
            f'stroke="#111" stroke-width="2.5"><title>{esc(c.tip)}</title></circle>'
            f'<text x="{cx + (13 if right else -13):.1f}" y="{cy + 4:.1f}" fill="#111" '
            f'text-anchor="{"start" if right else "end"}" font-weight="600" '
            f'stroke="#fff" stroke-width="3" paint-order="stroke">{esc(name)}</text>'
        )
    parts.append("</svg>")
    return "".join(parts)
