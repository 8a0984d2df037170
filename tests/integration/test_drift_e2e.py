"""Drift on the real broker and Redis, watched by a real Prometheus with our rules.

A stationary population (models/steady.py) is replayed as history; then one worker
process, scraped by Prometheus every second, receives a stationary control period and
then a period of the same length in which paid search reaches one persona (its channel
mix moves). The control must never raise the drift signal; the shift must raise it
within a bounded number of events, and Prometheus must take the FeatureDrift alert to
firing. Afterwards the model has adapted: it published newer versions and segments
that persisted kept their ids.
"""

from __future__ import annotations

import json
import subprocess
import time
import uuid
from collections.abc import Callable, Iterator
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import httpx
import orjson
import pytest
from prometheus_client.parser import text_string_to_metric_families

from segstream.consumers.exports import read
from segstream.consumers.sample import start_worker, stop_worker
from segstream.models.steady import SteadyGenerator
from segstream.schemas.privacy import hash_email_field
from segstream.schemas.records import is_segment_event
from segstream.schemas.settings import Settings
from segstream.streams.lag import Offsets
from segstream.streams.produce import send_all
from segstream.streams.topics import ensure_topics

pytestmark = [pytest.mark.integration, pytest.mark.e2e]
REPO = Path(__file__).resolve().parents[2]
USERS, HISTORY_DAYS = 300, 90
CHUNKS, CHUNK_DAYS = 4, 5  # each period: 20 days of behaviour, in 4 deliveries
SHIFTED = "bargain_browser"
INPUTS = ("web", "ad", "crm", "identity", "events", "training")


@dataclass
class Period:
    events: list[int] = field(default_factory=list)  # events delivered so far, per chunk
    detected: list[dict[str, float]] = field(default_factory=list)  # counters after each
    psi: list[dict[str, float]] = field(default_factory=list)  # feature PSI after each
    alerts: set[str] = field(default_factory=set)  # alerts Prometheus had firing


@dataclass
class Outcome:
    control: Period
    shift: Period
    versions: tuple[int, int]  # model version at the end of the control, at the end
    segments_before: dict[int, str]  # catalog at the end of the control: id -> name
    segments_after: dict[int, str]
    segment_events: list[dict[str, Any]]


def caught_up(settings: Settings) -> bool:
    """The workers have read every record of their inputs: the edge's group the sources,
    the worker group ``identity`` and ``events``, the trainer ``training``."""
    tps = [
        (settings.topic(t), p)
        for t in INPUTS
        for p in range(1 if t == "training" else settings.partitions)
    ]
    offsets = Offsets(settings)
    try:
        return all(pos.lag == 0 for pos in offsets.read(tps).values())
    finally:
        offsets.close()


def scrape(port: int) -> dict[str, dict[tuple[tuple[str, str], ...], float]]:
    text = httpx.get(f"http://127.0.0.1:{port}/metrics", timeout=5).text
    out: dict[str, dict[tuple[tuple[str, str], ...], float]] = {}
    for family in text_string_to_metric_families(text):
        for s in family.samples:
            out.setdefault(s.name, {})[tuple(sorted(s.labels.items()))] = s.value
    return out


def by_label(samples: dict[tuple[tuple[str, str], ...], float], label: str) -> dict[str, float]:
    return {dict(k)[label]: v for k, v in samples.items()}


class Prometheus:
    """A real Prometheus scraping the worker every second, with deploy/prometheus/rules.yml."""

    def __init__(self, tmp: Path, target_port: int, port: int) -> None:
        config = tmp / "prometheus.yml"
        config.write_text(
            "global: {scrape_interval: 1s, evaluation_interval: 1s}\n"
            f"rule_files: ['{REPO / 'deploy' / 'prometheus' / 'rules.yml'}']\n"
            "scrape_configs:\n"
            "  - job_name: segstream-worker\n"
            f"    static_configs: [{{targets: ['127.0.0.1:{target_port}']}}]\n"
        )
        self.url = f"http://127.0.0.1:{port}"
        self.log = (tmp / "prometheus.log").open("wb")
        self.proc = subprocess.Popen(
            ["prometheus", f"--config.file={config}", f"--storage.tsdb.path={tmp / 'tsdb'}",
             f"--web.listen-address=127.0.0.1:{port}"],
            stdout=self.log, stderr=subprocess.STDOUT,
        )  # fmt: skip
        deadline = time.monotonic() + 60
        while not self._ready():
            assert self.proc.poll() is None, (tmp / "prometheus.log").read_text()[-3000:]
            assert time.monotonic() < deadline, "prometheus did not become ready"
            time.sleep(0.5)

    def _ready(self) -> bool:
        try:
            return httpx.get(f"{self.url}/-/ready", timeout=2).status_code == 200
        except httpx.TransportError:
            return False

    def firing(self) -> set[str]:
        alerts = httpx.get(f"{self.url}/api/v1/alerts", timeout=5).json()["data"]["alerts"]
        return {a["labels"]["alertname"] for a in alerts if a["state"] == "firing"}

    def stop(self) -> None:
        self.proc.terminate()
        self.proc.wait(30)
        self.log.close()


def _records(settings: Settings, events: Iterator[Any]) -> list[tuple[str, bytes, bytes]]:
    key = settings.email_hash_key.get_secret_value().encode()
    return [
        (e.source, e.key.encode(), orjson.dumps(hash_email_field(e.value, key))) for e in events
    ]


def _catalog(settings: Settings) -> dict[int, str]:
    from segstream.consumers.queries import reader

    return {sid: p["name"] for sid, p in reader(settings).segments().items()}


def _deliver(
    settings: Settings,
    g: SteadyGenerator,
    shift: str | None,
    port: int,
    prom: Prometheus,
    proc: subprocess.Popen[bytes],
    log: Path,
) -> Period:
    period = Period()
    total = 0
    for _ in range(CHUNKS):
        start = max(scrape(port)["segstream_model_version"].values())
        total += send_all(settings, _records(settings, g.later(CHUNK_DAYS, shift=shift)))
        deadline = time.monotonic() + 240
        while not caught_up(settings):
            assert proc.poll() is None, log.read_text()[-3000:]
            assert time.monotonic() < deadline, "the worker did not catch up"
            period.alerts |= prom.firing()
            time.sleep(1)
        last, stable_since = -1.0, time.monotonic()
        while True:  # the model cycles (each a drift check) until the new data is learnt
            metrics = scrape(port)
            version = max(metrics["segstream_model_version"].values())
            period.alerts |= prom.firing()
            if version != last:
                last, stable_since = version, time.monotonic()
            if version > start and time.monotonic() - stable_since >= 3:
                break
            assert time.monotonic() < deadline, "the model did not settle"
            time.sleep(0.5)
        period.events.append(total)
        period.detected.append(by_label(metrics["segstream_drift_detected_total"], "kind"))
        period.psi.append(by_label(metrics["segstream_feature_drift"], "feature"))
    time.sleep(3)  # two evaluation intervals for the last rule results
    period.alerts |= prom.firing()
    return period


@pytest.fixture(scope="module")
def outcome(
    servers: None,
    tmp_path_factory: pytest.TempPathFactory,
    segmented: Callable[..., None],
    free_port: Callable[[], int],
) -> Iterator[Outcome]:
    tmp = tmp_path_factory.mktemp("drift")
    settings = Settings(namespace=f"dr{uuid.uuid4().hex[:8]}", metrics_port=0)
    ensure_topics(settings)
    g = SteadyGenerator(users=USERS, seed=5, days=HISTORY_DAYS)
    send_all(settings, _records(settings, g.events()))
    env = {
        "SEGSTREAM_NAMESPACE": settings.namespace,
        "SEGSTREAM_PUBLISH_EVERY_S": "1",
        "SEGSTREAM_DRIFT_CONFIRM": "2",
        "SEGSTREAM_DRIFT_MAX_LAG": "0",  # 300 users: judge only with nothing queued
    }
    segmented(settings, tmp / "history.log", sorted(g.present), env=env)

    # a fresh worker: its drift reference is the population as the history left it
    port = free_port()
    log = tmp / "worker.log"
    proc = start_worker(settings, log, env={**env, "SEGSTREAM_METRICS_PORT": str(port)})
    prom = Prometheus(tmp, port, free_port())
    try:
        deadline = time.monotonic() + 120
        while True:
            try:
                if scrape(port).get("segstream_model_owner", {}).get((), 0) == 1:
                    break
            except httpx.TransportError:
                pass
            assert proc.poll() is None, log.read_text()[-3000:]
            assert time.monotonic() < deadline, "the worker did not take the model"
            time.sleep(1)
        control = _deliver(settings, g, None, port, prom, proc, log)
        version_control = int(max(scrape(port)["segstream_model_version"].values()))
        before = _catalog(settings)
        shift = _deliver(settings, g, SHIFTED, port, prom, proc, log)
        version_end = int(max(scrape(port)["segstream_model_version"].values()))
        after = _catalog(settings)
    finally:
        prom.stop()
        code = stop_worker(proc)
    assert code == 0, log.read_text()[-3000:]
    events = [
        c for _, v in read(settings, settings.topic("segment-changes")) if v
        for c in [orjson.loads(v)] if is_segment_event(c)
    ]  # fmt: skip
    result = Outcome(control, shift, (version_control, version_end), before, after, events)
    (tmp / "outcome.json").write_text(json.dumps(asdict(result), indent=1, default=str))
    yield result


def test_the_stationary_control_never_raises_the_drift_signal(outcome: Outcome) -> None:
    control = outcome.control
    assert all(d.get("feature", 0) == 0 for d in control.detected), control
    assert max(max(p.values()) for p in control.psi) < 0.25, control.psi
    assert "FeatureDrift" not in control.alerts, control.alerts


def test_a_shifted_channel_mix_is_detected_within_a_bounded_number_of_events(
    outcome: Outcome,
) -> None:
    shift = outcome.shift
    first = next((i for i, d in enumerate(shift.detected) if d.get("feature", 0) > 0), None)
    assert first is not None, shift
    assert first <= 1, f"detected only after {shift.events[first]} events: {shift}"
    moved = {f for p in shift.psi for f, v in p.items() if v > 0.25}
    assert {"share_paid", "share_social"} & moved, shift.psi


def test_prometheus_takes_the_feature_drift_alert_to_firing(outcome: Outcome) -> None:
    assert "FeatureDrift" in outcome.shift.alerts, outcome.shift.alerts


def test_the_model_adapts_and_segments_that_persist_keep_their_ids(outcome: Outcome) -> None:
    version_control, version_end = outcome.versions
    assert version_end > version_control
    kept = set(outcome.segments_before) & set(outcome.segments_after)
    assert kept, (outcome.segments_before, outcome.segments_after)
    announced = {(e["segment"], e["event"]) for e in outcome.segment_events}
    for sid in set(outcome.segments_after) - set(outcome.segments_before):
        assert (sid, "appeared") in announced
    for sid in set(outcome.segments_before) - set(outcome.segments_after):
        assert (sid, "vanished") in announced
