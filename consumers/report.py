"""``segstream report``: one self-contained HTML page about the live segments.

Four sections, each from the live view (``consumers.redis_view.SegmentReader``):

1. segment sizes over time, from the model-cycle history (``seg:{ns}:history``);
2. each segment against the population (z-scores of the catalog) and its business
   figures (``seg:{ns}:health:*``);
3. a map of a sample of members (their stored features, transformed and scaled as
   the model does, projected by PCA: :mod:`models.projection`), coloured by segment;
4. drift over time: feature PSI, segment-share PSI and centroid shift, with the
   confirmed drifts marked.

The page needs nothing but itself: inline SVG (``consumers.charts``) and CSS, no
script, no font or file from elsewhere. :func:`gather` reads, :func:`render` is pure.
"""

from __future__ import annotations

import random
import time
from dataclasses import dataclass, field
from datetime import UTC, datetime
from html import escape
from pathlib import Path
from typing import Any

import numpy as np
import orjson

from segstream.consumers import charts
from segstream.consumers.charts import Point, Series
from segstream.consumers.queries import reader
from segstream.consumers.redis_view import SegmentReader
from segstream.models.features import FeatureSpace, feature_space
from segstream.models.health import Health
from segstream.models.projection import fit_scaling, pca_2d
from segstream.schemas.errors import NoSegments
from segstream.schemas.settings import Settings

FEATURE_LABELS = {  # what a marketer reads, with the unit
    "recency_days": "days since last seen",
    "tenure_days": "days since first seen",
    "frequency_30d": "events, last 30 days",
    "monetary_180d": "spend, last 180 days",
    "sessions_30d": "sessions, last 30 days",
    "pages_per_session": "pages per session",
    "cart_rate": "carts per session",
    "purchases": "purchases (lifetime)",
    "revenue": "revenue (lifetime)",
    "ad_clicks_30d": "ad clicks, last 30 days",
    "ad_cost_180d": "ad cost, last 180 days",
    "crm_amount_180d": "CRM amount, last 180 days",
    "share_paid": "share of paid-media visits",
    "share_social": "share of social visits",
    "share_email": "share of email visits",
}
FETCH_CHUNK = 1000


def label(feature: str) -> str:
    return FEATURE_LABELS.get(feature, feature.replace("_", " "))


@dataclass(frozen=True)
class Thresholds:
    feature_psi: float
    segment_psi: float
    centroid_shift: float


@dataclass(frozen=True)
class UserMap:
    """The projected sample: ``points`` are ``(x, y, segment, profile)``."""

    points: list[tuple[float, float, int, str]]
    centres: dict[int, tuple[float, float]]
    explained: tuple[float, float]
    axes: tuple[str, str]
    model_scaled: int  # features scaled with the model's scaler (the rest: the sample's)
    features: int


@dataclass(frozen=True)
class ReportData:
    namespace: str
    generated_ms: int
    catalog: dict[int, dict[str, Any]]
    health: dict[int, Health]
    features: list[str]
    thresholds: Thresholds
    model: dict[str, Any] | None = None
    history: list[dict[str, Any]] = field(default_factory=list)
    users: UserMap | None = None
    sample_asked: int = 0


# ------------------------------------------------------------------ gathering
def gather(settings: Settings, sample: int = 2000) -> ReportData:
    """Everything the report shows, read from Redis; :class:`NoSegments` when empty."""
    r = reader(settings)
    catalog = r.segments()
    if not catalog:
        raise NoSegments(settings.namespace)
    model = r.model()
    health = r.health(sorted(catalog))
    features = list((model or {}).get("features") or settings.features)
    space = feature_space(
        features, settings.paid_channels, settings.social_channels, settings.email_channels
    )
    members = sample_members(r, {sid: h.users for sid, h in health.items()}, sample)
    history = r.history()
    used = (history[-1].get("thresholds") if history else None) or {}  # the worker's own
    return ReportData(
        namespace=settings.namespace,
        generated_ms=int(time.time() * 1000),
        catalog=catalog,
        health=health,
        features=features,
        thresholds=Thresholds(
            used.get("feature_psi", settings.drift_feature_psi),
            used.get("segment_psi", settings.drift_segment_psi),
            used.get("centroid_shift", settings.drift_centroid_shift),
        ),
        model=model,
        history=history,
        users=user_map(features, space, members, catalog),
        sample_asked=sample,
    )


def sample_members(
    r: SegmentReader, sizes: dict[int, int], n: int
) -> dict[str, tuple[int, dict[str, float]]]:
    """Up to ``n`` members, each segment in proportion to its size, with their features
    (members without stored features are left out)."""
    total = sum(sizes.values())
    if n <= 0 or total == 0:
        return {}
    pipe = r.client.pipeline(transaction=False)
    order = [sid for sid in sorted(sizes) if sizes[sid]]
    for sid in order:
        pipe.srandmember(r.keys.members(sid), max(1, round(n * sizes[sid] / total)))
    drawn = zip(order, pipe.execute(), strict=True)
    picked = [(sid, m.decode()) for sid, ms in drawn for m in ms][: max(n, len(order))]
    out: dict[str, tuple[int, dict[str, float]]] = {}
    for i in range(0, len(picked), FETCH_CHUNK):
        chunk = picked[i : i + FETCH_CHUNK]
        raw = r.client.mget([r.keys.features(p) for _, p in chunk])
        for (sid, profile), feats in zip(chunk, raw, strict=True):
            if feats:
                out[profile] = (sid, orjson.loads(feats))
    return out


def user_map(
    features: list[str],
    space: FeatureSpace,
    members: dict[str, tuple[int, dict[str, float]]],
    catalog: dict[int, dict[str, Any]],
) -> UserMap | None:
    """Members in the model's space (``transform``, then the model's scaling where the
    catalog implies it), on their two principal axes; centroids on the same axes."""
    if len(members) < 2 or not features:
        return None
    profiles = list(members)
    # drawn in a mixed order, so no segment's dots all cover another's
    random.Random(0).shuffle(profiles)  # noqa: S311 - drawing order, not security
    rows = [space.transform(members[p][1]) for p in profiles]
    x = np.array([[row.get(f, 0.0) for f in features] for row in rows], dtype=np.float64)
    ids = sorted(catalog)
    cent = np.array(
        [
            [space.transform(catalog[s].get("centroid") or {}).get(f, 0.0) for f in features]
            for s in ids
        ],
        dtype=np.float64,
    )
    z = np.array(
        [[float((catalog[s].get("z") or {}).get(f, 0.0)) for f in features] for s in ids],
        dtype=np.float64,
    )
    scaling = fit_scaling(x, cent, z)
    proj = pca_2d(scaling.apply(x))
    centres = proj.project(scaling.apply(cent))
    return UserMap(
        points=[
            (float(px), float(py), members[p][0], p)
            for p, (px, py) in zip(profiles, proj.points, strict=True)
        ],
        centres={s: (float(cx), float(cy)) for s, (cx, cy) in zip(ids, centres, strict=True)},
        explained=(float(proj.explained[0]), float(proj.explained[1])),
        axes=(
            _axis_text(proj.loadings(features, 0), "to the right"),
            _axis_text(proj.loadings(features, 1), "upwards"),
        ),
        model_scaled=sum(scaling.from_model),
        features=len(features),
    )


def _axis_text(loadings: list[tuple[str, float]], way: str) -> str:
    if not loadings:
        return ""
    said = ", ".join(f"{'more' if w > 0 else 'less'} {label(f)}" for f, w in loadings)
    return f"{way}, {said}"


def write_report(settings: Settings, out: Path, sample: int = 2000) -> ReportData:
    data = gather(settings, sample)
    out.write_text(render(data), encoding="utf-8")
    return data


# ------------------------------------------------------------------ rendering
CSS = """
body{font:15px/1.45 system-ui,-apple-system,"Segoe UI",Roboto,sans-serif;color:#1d1d1f;
margin:0 auto;max-width:1000px;padding:24px}
h1{font-size:26px;margin:0 0 4px}h2{font-size:20px;margin:36px 0 6px;
border-bottom:1px solid #ddd;padding-bottom:4px}h3{font-size:15px;margin:0 0 2px}
.meta,.note,.empty{color:#555}.empty{background:#f6f6f6;padding:14px;border-radius:6px}
svg.chart{width:100%;height:auto;display:block}
.legend{list-style:none;padding:0;margin:6px 0;display:flex;flex-wrap:wrap;gap:4px 16px}
.sw{display:inline-block;width:12px;height:12px;border-radius:2px;margin-right:6px;
vertical-align:-1px}
table{border-collapse:collapse;width:100%;font-variant-numeric:tabular-nums;margin:8px 0}
th,td{padding:5px 8px;border-bottom:1px solid #e5e5e5;text-align:right}
th:first-child,td:first-child{text-align:left}tr.total td{font-weight:600}
.cards{display:grid;grid-template-columns:repeat(auto-fill,minmax(440px,1fr));gap:14px}
.card{border:1px solid #e2e2e2;border-radius:8px;padding:12px}
.card p{margin:4px 0 6px;font-size:13px;color:#444}
.grid{display:grid;grid-template-columns:repeat(auto-fill,minmax(300px,1fr));gap:10px}
"""


def render(d: ReportData) -> str:
    """The whole page as one HTML string (no reads: a pure function of ``d``)."""
    colours = segment_colours(d)
    body = [
        _header(d),
        _sizes(d, colours),
        _profiles(d, colours),
        _map(d, colours),
        _drift(d, colours),
    ]
    return (
        '<!DOCTYPE html>\n<html lang="en"><head><meta charset="utf-8">'
        f"<title>Segment report · {_e(d.namespace)}</title>"
        '<meta name="viewport" content="width=device-width, initial-scale=1">'
        f"<style>{CSS}</style></head><body>{''.join(body)}</body></html>\n"
    )


def _e(text: object) -> str:
    return escape(str(text), quote=True)


def _when(ms: float | None) -> str:
    if not ms:
        return "–"
    return datetime.fromtimestamp(ms / 1000, tz=UTC).strftime("%Y-%m-%d %H:%M UTC")


def _sid(key: Any) -> int:
    return int(key)


def segment_colours(d: ReportData) -> dict[int, str]:
    """One colour per segment id, the same in every chart: the live segments take the
    palette, segments that no longer exist are grey."""
    gone: set[int] = set()
    for entry in d.history:
        gone |= {_sid(k) for k in entry.get("segments") or {}}
        gone |= {_sid(k) for k in entry.get("centroid_shift") or {}}
    out = dict.fromkeys(gone - set(d.catalog), charts.GONE)
    out.update({sid: charts.colour(n) for n, sid in enumerate(sorted(d.catalog))})
    return out


def _name(d: ReportData, sid: int) -> str:
    prof = d.catalog.get(sid)
    return str(prof.get("name") or f"Segment {sid}") if prof else f"Segment {sid} (gone)"


def _legend(d: ReportData, colours: dict[int, str], ids: list[int]) -> str:
    """Segment names by colour; the segments that no longer exist share one grey item."""
    live = [s for s in ids if s in d.catalog]
    items = [
        f'<li><span class="sw" style="background:{colours[s]}"></span>{_e(_name(d, s))}</li>'
        for s in live
    ]
    if len(live) < len(ids):
        items.append(
            f'<li><span class="sw" style="background:{charts.GONE}"></span>'
            "segments that no longer exist</li>"
        )
    return f'<ul class="legend">{"".join(items)}</ul>'


def _x(entry: dict[str, Any]) -> float:
    return float(entry.get("wall_ms") or entry.get("created_ms") or 0)


def _header(d: ReportData) -> str:
    users = sum(h.users for h in d.health.values())
    version = (d.model or {}).get("version", "–")
    created = _when((d.model or {}).get("created_ms"))
    return (
        f'<h1>Segment report</h1><p class="meta">Namespace <b>{_e(d.namespace)}</b> · '
        f"model version <b>{_e(version)}</b> (published {created}) · {len(d.catalog)} "
        f"segments · {users:,} users · generated {_when(d.generated_ms)}</p>"
    )


NO_HISTORY = (
    '<p class="empty">No history yet: the worker records one entry per model cycle '
    "(every SEGSTREAM_PUBLISH_EVERY_S seconds). Run it for a few cycles and report again.</p>"
)


def _sizes(d: ReportData, colours: dict[int, str]) -> str:
    head = (
        '<h2>1. Segment sizes over time</h2><p class="note">Members of each segment at '
        "every model cycle. A line that starts late is a segment that appeared; one that "
        "stops is a segment that vanished.</p>"
    )
    if not d.history:
        return head + NO_HISTORY
    ids = sorted({_sid(k) for e in d.history for k in e.get("segments") or {}})
    series = [
        Series(
            _name(d, sid),
            colours[sid],
            [(_x(e), _users(e, sid)) for e in d.history],
        )
        for sid in ids
    ]
    chart = charts.line_chart(series, label="Segment sizes over time", y_label="users")
    return head + _legend(d, colours, ids) + chart


def _users(entry: dict[str, Any], sid: int) -> float | None:
    segs = entry.get("segments") or {}
    seg = segs.get(str(sid), segs.get(sid))
    return None if seg is None else float(seg.get("users") or 0)


def _money(x: float | None) -> str:
    return "–" if x is None else f"{x:,.2f}"


def _profiles(d: ReportData, colours: dict[int, str]) -> str:
    ids = sorted(d.catalog, key=lambda s: (-d.health[s].users, s))
    total = Health(
        sum(h.users for h in d.health.values()),
        sum(h.revenue for h in d.health.values()),
        sum(h.converted for h in d.health.values()),
        sum(h.ad_cost for h in d.health.values()),
    )
    rows = []
    for sid in [*ids, None]:
        h = total if sid is None else d.health[sid]
        share = h.users / total.users if total.users else 0.0
        name = (
            "All users"
            if sid is None
            else f'<span class="sw" style="background:{colours[sid]}"></span>{_e(_name(d, sid))}'
        )
        rows.append(
            f"<tr{' class=total' if sid is None else ''}><td>{name}</td><td>{h.users:,}</td>"
            f"<td>{share:.0%}</td><td>{_money(h.revenue)}</td>"
            f"<td>{_money(h.revenue_per_user)}</td>"
            f"<td>{'–' if h.conversion_rate is None else f'{h.conversion_rate:.1%}'}</td>"
            f"<td>{_money(h.cac)}</td>"
            f"<td>{'–' if h.roas is None else f'{h.roas:.2f}×'}</td></tr>"
        )
    table = (
        "<table><thead><tr><th>segment</th><th>users</th><th>share</th><th>revenue</th>"
        "<th>revenue / user</th><th>conversion rate</th><th>CAC</th><th>ROAS</th></tr>"
        f"</thead><tbody>{''.join(rows)}</tbody></table>"
        '<p class="note">Money in the shop\'s currency, lifetime figures of the current '
        "members. CAC: ad cost per converted member; ROAS: revenue per unit of ad cost; "
        "– where undefined (nobody converted, or no ad cost).</p>"
    )
    cards = []
    for sid in ids:
        prof = d.catalog[sid]
        z, centroid = prof.get("z") or {}, prof.get("centroid") or {}
        bars = [
            (
                label(f),
                float(z.get(f, 0.0)),
                f"{label(f)} ({f}): {centroid.get(f, '–')} on average in this segment, "
                f"z = {float(z.get(f, 0.0)):+.2f}",
            )
            for f in d.features
        ]
        cards.append(
            f'<div class="card"><h3><span class="sw" style="background:{colours[sid]}">'
            f"</span>{_e(_name(d, sid))} <small>(id {sid})</small></h3>"
            f"<p>{_e(prof.get('description') or '')}</p>"
            + charts.z_bars(bars, label=f"{_name(d, sid)}: features against the population")
            + "</div>"
        )
    return (
        "<h2>2. Who is in each segment</h2><h3>Business figures</h3>"
        + table
        + '<h3>Profiles</h3><p class="note">How far each segment sits from the average user '
        "on each feature, in standard deviations (z-scores): "
        f'<span class="sw" style="background:{charts.ABOVE}"></span>above average, '
        f'<span class="sw" style="background:{charts.BELOW}"></span>below. Bars stop at ±3; '
        "the number is the true value.</p>"
        f'<div class="cards">{"".join(cards)}</div>'
    )


def _map(d: ReportData, colours: dict[int, str]) -> str:
    head = "<h2>3. Map of users</h2>"
    m = d.users
    if m is None:
        return head + (
            '<p class="empty">No user features to draw: none stored in Redis '
            "(SEGSTREAM_REDIS_STORE_FEATURES off?) or a sample of 0 was asked.</p>"
        )
    points = [
        Point(x, y, colours.get(sid, "#777"), f"{p} · {_name(d, sid)}") for x, y, sid, p in m.points
    ]
    centres = [
        (Point(x, y, colours[sid], f"centre of {_name(d, sid)}"), _name(d, sid))
        for sid, (x, y) in m.centres.items()
    ]
    chart = charts.scatter(
        points,
        centres,
        label=f"Map of {len(points):,} users coloured by segment",
        x_label=f"axis 1 ({m.explained[0]:.0%} of the differences) →",
        y_label=f"axis 2 ({m.explained[1]:.0%}) →",
    )
    axes = "; ".join(_e(a) for a in m.axes if a)
    scaled = (
        "scaled as the model scales them"
        if m.model_scaled == m.features
        else f"scaled as the model does for {m.model_scaled} of {m.features} features "
        "(the others by the sample's own spread)"
    )
    note = (
        f'<p class="note">{len(points):,} members drawn at random (up to {d.sample_asked:,}, '
        "each segment in proportion to its size), their features "
        f"{scaled}, then laid flat on the two directions along which users differ most "
        "(principal components). Close dots behave alike; large outlined dots are the "
        "segment centres. Hover a dot for its user.</p>"
    )
    ids = sorted({sid for _, _, sid, _ in m.points} | set(m.centres))
    reading = f'<p class="note">Reading the axes: {axes}.</p>' if axes else ""
    return head + note + _legend(d, colours, ids) + chart + reading


def _drift(d: ReportData, colours: dict[int, str]) -> str:
    t = d.thresholds
    head = (
        '<h2>4. Drift</h2><p class="note">Has the population moved away from what the '
        "segments were drawn on? Dashed red lines are the alert thresholds; a black-outlined "
        "diamond marks a drift the worker confirmed (over the threshold on consecutive "
        "checks), after which it measures from the new state again.</p>"
    )
    checked = [e for e in d.history if e.get("checked")]
    if not checked:
        why = (
            NO_HISTORY
            if not d.history
            else (
                '<p class="empty">No drift checks yet: the worker judges drift once it has '
                "caught up with its input.</p>"
            )
        )
        return head + why
    seg_marks = [
        (_x(e), float(e.get("segment_psi") or 0), f"segment shares drift confirmed {_when(_x(e))}")
        for e in checked
        if (e.get("confirmed") or {}).get("segments")
    ]
    seg_chart = charts.line_chart(
        [
            Series(
                "segment share PSI",
                "#333333",
                [(_x(e), _get(e, "segment_psi") if e.get("checked") else None) for e in d.history],
                seg_marks,
            )
        ],
        label="Segment share drift (PSI)",
        y_label="PSI",
        threshold=(t.segment_psi, f"threshold {t.segment_psi:g}"),
        height=220,
    )
    ids = sorted({_sid(k) for e in checked for k in e.get("centroid_shift") or {}})
    shift = [
        Series(
            _name(d, sid),
            colours[sid],
            [(_x(e), _checked(e, "centroid_shift", sid)) for e in d.history],
            [
                (_x(e), v, f"{_name(d, sid)}: centre moved {v:.2f} σ, confirmed {_when(_x(e))}")
                for e in checked
                if sid in {_sid(c) for c in (e.get("confirmed") or {}).get("centroids") or []}
                and (v := _get(e.get("centroid_shift"), sid)) is not None
            ],
        )
        for sid in ids
    ]
    shift_chart = charts.line_chart(
        shift,
        label="Centroid shift per segment",
        y_label="shift (std. deviations)",
        threshold=(t.centroid_shift, f"threshold {t.centroid_shift:g}"),
        height=260,
    )
    seen = {f for e in checked for f in e.get("feature_psi") or {}}
    feats = [f for f in d.features if f in seen] + sorted(seen - set(d.features))
    small = []
    for f in feats:
        marks = [
            (_x(e), float(e["feature_psi"][f]), f"{label(f)}: drift confirmed {_when(_x(e))}")
            for e in checked
            if f in ((e.get("confirmed") or {}).get("features") or [])
            and f in (e.get("feature_psi") or {})
        ]
        series = Series(
            label(f), "#0072B2", [(_x(e), _checked(e, "feature_psi", f)) for e in d.history], marks
        )
        small.append(
            f"<div><h3>{_e(label(f))}</h3>"
            + charts.line_chart(
                [series],
                label=f"PSI of {label(f)} over time",
                y_label="PSI",
                threshold=(t.feature_psi, f"{t.feature_psi:g}"),
                width=420,
                height=200,
            )
            + "</div>"
        )
    return (
        head
        + "<h3>Segment shares</h3>"
        + seg_chart
        + "<h3>Segment centres</h3>"
        + _legend(d, colours, ids)
        + shift_chart
        + "<h3>Features (PSI: below 0.1 stable, 0.1–0.25 moving, above 0.25 shifted)</h3>"
        + f'<div class="grid">{"".join(small)}</div>'
    )


def _checked(entry: dict[str, Any], field: str, key: Any) -> float | None:
    """A drift value of a cycle that judged drift (else None: the line breaks there)."""
    return _get(entry.get(field), key) if entry.get("checked") else None


def _get(values: Any, key: Any) -> float | None:
    if not values:
        return None
    v = values.get(str(key), values.get(key)) if isinstance(values, dict) else None
    return None if v is None else float(v)
