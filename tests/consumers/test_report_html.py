"""consumers/report.py and consumers/charts.py: the page rendered from fixture data alone
(no Redis): self-contained, well-formed SVG, one drawn element per datum."""

from __future__ import annotations

import random
import re
import xml.etree.ElementTree as ET
from dataclasses import replace
from html.parser import HTMLParser
from typing import Any

import pytest

from segstream.consumers import charts
from segstream.consumers.report import ReportData, Thresholds, UserMap, render, user_map
from segstream.models.features import feature_space
from segstream.models.health import Health
from segstream.models.naming import profiles
from segstream.models.segments import Segment, Snapshot

FEATURES = ("monetary_180d", "recency_days", "share_paid", "frequency_30d")
SPACE = feature_space(FEATURES)
SNAP = Snapshot(
    4,
    FEATURES,
    (3.0, 2.0, 0.3, 1.5),
    (1.5, 0.9, 0.2, 0.7),
    (
        Segment(0, (1.8, -1.0, 0.2, 1.2), 0.4),
        Segment(2, (-0.9, 1.4, -0.6, -1.1), 0.35),
        Segment(5, (-0.2, -0.3, 2.2, 0.1), 0.25),
    ),
    6,
    1_763_800_000_000,
    5000,
)
T0 = 1_763_800_000_000
MIN = 60_000


def _catalog() -> dict[int, dict[str, Any]]:
    cat = profiles(SNAP, SPACE)
    cat[5]["name"] = "Paid <social> & co"  # must come out escaped
    return cat


def _members(n: int = 60, seed: int = 1) -> dict[str, tuple[int, dict[str, float]]]:
    """Users scattered around each segment's centre, as the worker stores them."""
    rng = random.Random(seed)
    out = {}
    for seg in SNAP.segments:
        for i in range(n):
            z = [c + rng.gauss(0, 0.3) for c in seg.centroid]
            out[f"u:{seg.id}-{i}"] = (seg.id, SPACE.readable(SNAP.unscale(z)))
    return out


def _entry(n: int, **over: Any) -> dict[str, Any]:
    """A history entry as ``streams.training.history_entry`` writes it (JSON keys)."""
    segs = {"0": 100 + n, "2": 80 - n, "5": 40}
    if n < 2:
        segs["1"] = 20  # a segment that vanished
    entry = {
        "version": n + 1,
        "created_ms": T0 + n * MIN,
        "wall_ms": T0 + n * MIN + 500,
        "segments": {k: Health(u, 10.0 * u, u // 2, 2.0 * u).as_dict() for k, u in segs.items()},
        "checked": n > 0,
        "feature_psi": {f: 0.05 * n for f in FEATURES[:3]},
        "segment_psi": 0.03 * n,
        "centroid_shift": {k: 0.2 * n for k in segs},
        "confirmed": {"features": [], "segments": False, "centroids": []},
        "silhouette": 0.4,
        "appeared": [],
        "vanished": [1] if n == 2 else [],
    }
    entry.update(over)
    return entry


def _history() -> list[dict[str, Any]]:
    h = [_entry(n) for n in range(6)]
    h[4]["confirmed"] = {"features": ["monetary_180d"], "segments": True, "centroids": [0, 2]}
    h[5]["confirmed"] = {"features": ["share_paid"], "segments": False, "centroids": []}
    return h


def _data(**over: Any) -> ReportData:
    cat = _catalog()
    data = ReportData(
        namespace="shop-eu",
        generated_ms=T0 + 10 * MIN,
        catalog=cat,
        health={
            0: Health(105, 5000.0, 60, 300.0),
            2: Health(75, 1200.5, 10, 0.0),
            5: Health(40, 0.0, 0, 0.0),
        },
        features=list(FEATURES),
        thresholds=Thresholds(0.25, 0.1, 1.0),
        model={"version": 4, "created_ms": T0, "features": list(FEATURES)},
        history=_history(),
        users=user_map(list(FEATURES), SPACE, _members(), cat),
        sample_asked=2000,
    )
    return replace(data, **over)


class Tags(HTMLParser):
    """Every start tag with its attributes; fails on an unbalanced document."""

    VOID = frozenset({"meta", "br", "img", "link", "input", "hr"})
    SVG_VOID = frozenset({"path", "circle", "line", "rect"})

    def __init__(self) -> None:
        super().__init__()
        self.tags: list[tuple[str, dict[str, str | None]]] = []
        self.open: list[str] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        self.tags.append((tag, dict(attrs)))
        if tag not in self.VOID:
            self.open.append(tag)

    def handle_startendtag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        self.tags.append((tag, dict(attrs)))

    def handle_endtag(self, tag: str) -> None:
        assert self.open and self.open[-1] == tag, (tag, self.open[-5:])
        self.open.pop()


def _parse(html: str) -> Tags:
    t = Tags()
    t.feed(html)
    t.close()
    assert t.open == [], t.open
    return t


def _svgs(html: str) -> list[ET.Element]:
    """Every chart, parsed as XML (so each is well-formed SVG on its own)."""
    found = re.findall(r"<svg .*?</svg>", html, flags=re.S)
    return [ET.fromstring(m) for m in found]  # noqa: S314 - our own output, not untrusted


def _count(svg: ET.Element, tag: str, cls: str) -> int:
    ns = "{http://www.w3.org/2000/svg}"
    return sum(1 for e in svg.iter(ns + tag) if cls in (e.get("class") or "").split())


def _kind(svgs: list[ET.Element], label: str) -> ET.Element:
    (svg,) = [s for s in svgs if s.get("aria-label") == label]
    return svg


def test_the_page_is_self_contained() -> None:
    html = render(_data())
    assert html.startswith("<!DOCTYPE html>")
    lowered = html.lower()
    for banned in ("<script", "<link", "@import", "url(", "src=", "<iframe", "<object"):
        assert banned not in lowered, banned
    urls = set(re.findall(r"https?://[^\s\"')]+", html))
    assert urls == {"http://www.w3.org/2000/svg"}  # the SVG namespace name, never fetched


def test_the_page_is_well_formed_and_every_chart_is_valid_svg() -> None:
    html = render(_data())
    _parse(html)
    svgs = _svgs(html)
    # sizes, one profile per segment, the map, segment PSI, centroid shift, 3 features
    assert len(svgs) == 1 + 3 + 1 + 1 + 1 + 3
    for svg in svgs:
        assert svg.get("viewBox") and svg.get("role") == "img" and svg.get("aria-label")


def test_sizes_over_time_draw_one_line_per_segment_ever_seen() -> None:
    svgs = _svgs(render(_data()))
    sizes = _kind(svgs, "Segment sizes over time")
    assert _count(sizes, "path", "series") == 4  # 0, 2, 5 and the vanished 1
    names = [p.get("data-series") for p in sizes.iter("{http://www.w3.org/2000/svg}path")]
    assert "Segment 1 (gone)" in names and "Paid <social> & co" in names
    assert _count(sizes, "circle", "dot") == 6 + 6 + 6 + 2


def test_profiles_show_a_bar_per_feature_and_the_business_figures() -> None:
    d = _data()
    html = render(d)
    svgs = _svgs(html)
    for sid in d.catalog:
        bars = _kind(svgs, f"{d.catalog[sid]['name']}: features against the population")
        assert _count(bars, "rect", "bar") == len(FEATURES)
    assert "Paid &lt;social&gt; &amp; co" in html and "Paid <social>" not in html
    row = re.search(r"<tr><td>.*?Paid &lt;social.*?</tr>", html)
    assert row and "<td>40</td>" in row.group(0) and "<td>–</td>" in row.group(0)
    total = re.search(r"<tr class=total>.*?</tr>", html)
    assert total and "<td>220</td>" in total.group(0) and "6,200.50" in total.group(0)
    assert "<td>2.00×</td>" not in html  # segment 2 has no ad cost: no ROAS
    assert "16.67×" in html  # segment 0: 5000 / 300


def test_the_map_draws_every_sampled_user_and_each_centre() -> None:
    d = _data()
    assert d.users is not None
    scatter = _kind(_svgs(render(d)), f"Map of {len(d.users.points)} users coloured by segment")
    assert _count(scatter, "circle", "user") == len(d.users.points) == 180
    assert _count(scatter, "circle", "centre") == 3


def test_drift_charts_mark_each_confirmed_drift() -> None:
    svgs = _svgs(render(_data()))
    seg = _kind(svgs, "Segment share drift (PSI)")
    assert _count(seg, "path", "drift-marker") == 1 and _count(seg, "line", "threshold") == 1
    shift = _kind(svgs, "Centroid shift per segment")
    assert _count(shift, "path", "drift-marker") == 2
    for f in ("spend, last 180 days", "share of paid-media visits"):
        assert _count(_kind(svgs, f"PSI of {f} over time"), "path", "drift-marker") == 1
    days = _kind(svgs, "PSI of days since last seen over time")
    assert _count(days, "path", "drift-marker") == 0
    assert _count(days, "circle", "dot") == 5  # the five checked cycles; the first was not


def test_each_segment_keeps_its_colour_in_every_chart() -> None:
    d = _data()
    svgs = _svgs(render(d))
    sizes = _kind(svgs, "Segment sizes over time")
    by_name = {p.get("data-series"): p.get("stroke") for p in sizes.iter() if p.get("data-series")}
    assert len({by_name[d.catalog[s]["name"]] for s in d.catalog}) == 3
    assert by_name["Segment 1 (gone)"] == charts.GONE
    scatter = next(s for s in svgs if (s.get("aria-label") or "").startswith("Map of"))
    centre_fill = {
        c.find("{http://www.w3.org/2000/svg}title").text: c.get("fill")  # type: ignore[union-attr]
        for c in scatter.iter("{http://www.w3.org/2000/svg}circle")
        if c.get("class") == "centre"
    }
    for sid in d.catalog:
        assert centre_fill[f"centre of {d.catalog[sid]['name']}"] == by_name[d.catalog[sid]["name"]]


def test_without_history_the_charts_say_so() -> None:
    html = render(_data(history=[]))
    _parse(html)
    assert html.count("No history yet") == 2
    labels = [s.get("aria-label") for s in _svgs(html)]
    assert "Segment sizes over time" not in labels and "Segment share drift (PSI)" not in labels


def test_history_without_drift_checks_says_so() -> None:
    html = render(_data(history=[_entry(0), _entry(1, checked=False)]))
    assert "No drift checks yet" in html and "No history yet" not in html


def test_without_stored_features_the_map_says_so() -> None:
    html = render(_data(users=None))
    _parse(html)
    assert "No user features to draw" in html


def test_rendering_is_a_pure_function_of_the_data() -> None:
    d = _data()
    assert render(d) == render(d)


def test_the_map_uses_the_models_scaling_recovered_from_the_catalog() -> None:
    m = user_map(list(FEATURES), SPACE, _members(), _catalog())
    assert isinstance(m, UserMap) and m.model_scaled == m.features == len(FEATURES)
    # each centre sits amid its own members on the map
    for sid, (cx, cy) in m.centres.items():
        mine = [(x, y) for x, y, s, _ in m.points if s == sid]
        mx, my = sum(x for x, _ in mine) / len(mine), sum(y for _, y in mine) / len(mine)
        assert abs(mx - cx) < 0.3 and abs(my - cy) < 0.3
    assert "to the right" in m.axes[0] and "upwards" in m.axes[1]


def test_a_single_member_is_not_a_map() -> None:
    one = dict(list(_members().items())[:1])
    assert user_map(list(FEATURES), SPACE, one, _catalog()) is None


@pytest.mark.parametrize(
    ("lo", "hi", "first", "last"),
    [(T0, T0 + 5 * MIN, "08:27", "08:31"), (T0, T0 + 3 * 86_400_000, "Nov 22", "Nov 25")],
)
def test_time_axis_labels_fit_the_span(lo: int, hi: int, first: str, last: str) -> None:
    labels = [text for _, text in charts.time_ticks(lo, hi)]
    assert first in labels[0] and last in labels[-1]
    assert 2 <= len(labels) <= 7


def test_drift_lines_break_where_a_cycle_did_not_judge_drift() -> None:
    history = [_entry(n, checked=n != 3) for n in range(1, 6)]
    seg = _kind(_svgs(render(_data(history=history))), "Segment share drift (PSI)")
    (path,) = [p for p in seg.iter("{http://www.w3.org/2000/svg}path") if p.get("data-series")]
    assert path.get("d", "").count("M") == 2  # cycles 1-2, then 4-5: no line across 3


def test_a_long_series_keeps_its_isolated_points_visible() -> None:
    points: list[tuple[float, float | None]] = [(T0 + n * MIN, 1.0) for n in range(100)]
    points[49], points[51] = (T0 + 49 * MIN, None), (T0 + 51 * MIN, None)
    chart = charts.line_chart([charts.Series("a", "#000", points)], label="x", y_label="y")
    svg = ET.fromstring(chart)  # noqa: S314 - our own output
    assert _count(svg, "circle", "dot") == 1  # only point 50, which has no line
