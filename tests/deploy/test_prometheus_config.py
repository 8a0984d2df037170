"""deploy/prometheus: promtool accepts the config and the rules, the rules pass their unit
tests, every alert is tested both ways, and the rules and the Grafana dashboard use only the
metric contract.

promtool comes with Debian's ``prometheus`` package (``deploy/test`` installs it through
``deploy/local/system-deps``); without it these tests fail rather than skip, so CI cannot
go green without checking the rules.
"""

from __future__ import annotations

import json
import re
import shutil
import subprocess
from pathlib import Path
from typing import Any

import pytest
import yaml  # PyYAML, installed with uvicorn[standard]

from segstream.schemas.settings import Settings

REPO = Path(__file__).resolve().parents[2]
PROM = REPO / "deploy" / "prometheus"
CONFIG = PROM / "prometheus.yml"
RULES = PROM / "rules.yml"
RULE_TESTS = PROM / "tests" / "rules_test.yml"
DASHBOARD = PROM / "grafana" / "segment-health.json"

METRIC_NAME = re.compile(r"\bsegstream_[a-z0-9_]+")


METRICS_PAGE = REPO / "docs" / "reference" / "metrics.md"


def documented_metrics() -> tuple[set[str], set[str]]:
    """The public metric names (docs/reference/metrics.md, the whole page), and which of
    them are histograms."""
    text = METRICS_PAGE.read_text()
    names = set(METRIC_NAME.findall(text))
    histograms = {
        m.group(1) for m in re.finditer(r"^\| `(segstream_[a-z0-9_]+)` \| histogram \|", text, re.M)
    }
    return names, histograms


CONTRACT, HISTOGRAMS = documented_metrics()
RECORDED_NAME = re.compile(r"\bsegstream:[a-z0-9_:]+")
JOB_MATCHER = re.compile(r'\bjob\s*(=~|=)\s*"([^"]+)"')
SEVERITIES = {"critical", "warning"}
DATASOURCE = {"type": "prometheus", "uid": "${DS_PROMETHEUS}"}


def promtool(*args: str) -> subprocess.CompletedProcess[str]:
    exe = shutil.which("promtool")
    if exe is None:
        pytest.fail(
            "promtool is not installed: it comes with Debian's prometheus package "
            "(deploy/local/system-deps promtool, or apt-get install -y prometheus; "
            "deploy/test does this itself)",
            pytrace=False,
        )
    return subprocess.run(
        [exe, *args], cwd=REPO, capture_output=True, text=True, timeout=300, check=False
    )


def assert_ok(proc: subprocess.CompletedProcess[str]) -> None:
    assert proc.returncode == 0, (
        f"{' '.join(proc.args)} exited {proc.returncode}\n"
        f"--- stdout\n{proc.stdout}\n--- stderr\n{proc.stderr}"
    )


def load_yaml(path: Path) -> Any:
    return yaml.safe_load(path.read_text())


def rules() -> list[dict[str, Any]]:
    return [rule for group in load_yaml(RULES)["groups"] for rule in group["rules"]]


def alerts() -> dict[str, dict[str, Any]]:
    return {rule["alert"]: rule for rule in rules() if "alert" in rule}


def recorded() -> set[str]:
    return {rule["record"] for rule in rules() if "record" in rule}


def dashboard() -> dict[str, Any]:
    loaded: dict[str, Any] = json.loads(DASHBOARD.read_text())
    return loaded


def panels(board: dict[str, Any]) -> list[dict[str, Any]]:
    """Every panel, those inside collapsed rows included."""
    found: list[dict[str, Any]] = []
    for panel in board["panels"]:
        found.append(panel)
        found.extend(panel.get("panels", []))
    return found


def dashboard_exprs(board: dict[str, Any]) -> list[str]:
    exprs = [t["expr"] for p in panels(board) for t in p.get("targets", []) if t.get("expr")]
    exprs += [a["expr"] for a in board["annotations"]["list"] if a.get("expr")]
    return exprs


def contract_name(name: str) -> str:
    """A histogram's series (_bucket, _count, _sum) by the histogram's name."""
    for suffix in ("_bucket", "_count", "_sum"):
        if name.endswith(suffix) and name.removesuffix(suffix) in HISTOGRAMS:
            return name.removesuffix(suffix)
    return name


# ------------------------------------------------------------------ promtool


def test_promtool_check_config() -> None:
    assert_ok(promtool("check", "config", str(CONFIG.relative_to(REPO))))


def test_promtool_check_rules() -> None:
    assert_ok(promtool("check", "rules", str(RULES.relative_to(REPO))))


def test_promtool_rule_unit_tests() -> None:
    assert_ok(promtool("test", "rules", str(RULE_TESTS.relative_to(REPO))))


def test_dashboard_queries_are_valid_promql(tmp_path: Path) -> None:
    """promtool parses each dashboard query as a recording rule (Grafana's $__ intervals
    replaced by a fixed one)."""
    exprs = dashboard_exprs(dashboard())
    assert exprs
    fake_rules = {
        "groups": [
            {
                "name": "dashboard",
                "rules": [
                    {"record": f"dashboard:query_{i}", "expr": re.sub(r"\$__\w+", "5m", e)}
                    for i, e in enumerate(exprs)
                ],
            }
        ]
    }
    path = tmp_path / "dashboard_queries.yml"
    path.write_text(yaml.safe_dump(fake_rules))
    assert_ok(promtool("check", "rules", str(path)))


# ------------------------------------------------------------------ rules


def test_every_alert_has_severity_summary_and_description() -> None:
    for name, rule in alerts().items():
        assert rule.get("labels", {}).get("severity") in SEVERITIES, name
        annotations = rule.get("annotations", {})
        assert annotations.get("summary"), f"{name}: no summary"
        assert annotations.get("description"), f"{name}: no description"


def test_expected_alerts_exist() -> None:
    expected = {
        "SegmentDistributionDrift",
        "FeatureDrift",
        "CentroidShift",
        "SegmentSaturating",
        "SegmentDeclining",
        "DlqRateHigh",
        "ConsumerLagHigh",
        "ProcessingStalled",
        "ApiLatencyHigh",
        "ApiErrors",
    }
    assert expected <= set(alerts())


def test_every_alert_is_tested_firing_and_quiet() -> None:
    fires: set[str] = set()
    quiet: set[str] = set()
    checked_exprs: list[str] = []
    for case in load_yaml(RULE_TESTS)["tests"]:
        for check in case.get("alert_rule_test", []):
            (fires if check.get("exp_alerts") else quiet).add(check["alertname"])
        checked_exprs += [check["expr"] for check in case.get("promql_expr_test", [])]
    names = set(alerts())
    assert not names - fires, f"alerts never shown firing: {sorted(names - fires)}"
    assert not names - quiet, f"alerts never shown quiet: {sorted(names - quiet)}"
    unchecked = {r for r in recorded() if not any(r in e for e in checked_exprs)}
    assert not unchecked, f"recording rules without a promql_expr_test: {sorted(unchecked)}"


def test_rules_use_only_contract_metrics() -> None:
    text = RULES.read_text()
    unknown = {n for n in METRIC_NAME.findall(text) if contract_name(n) not in CONTRACT}
    assert not unknown, f"rules.yml uses metrics outside the contract: {sorted(unknown)}"
    undefined = set(RECORDED_NAME.findall(text)) - recorded()
    assert not undefined, f"rules.yml uses undefined recording rules: {sorted(undefined)}"


def test_rules_select_jobs_the_config_scrapes() -> None:
    jobs = {job["job_name"] for job in load_yaml(CONFIG)["scrape_configs"]}
    for op, value in JOB_MATCHER.findall(RULES.read_text()):
        wanted = set(value.split("|")) if op == "=~" else {value}
        assert wanted <= jobs, f"rules.yml selects job {value!r}; prometheus.yml has {jobs}"


# ------------------------------------------------------------------ config


def test_config_loads_the_rules_and_scrapes_the_default_ports() -> None:
    config = load_yaml(CONFIG)
    assert [(CONFIG.parent / f).resolve() for f in config["rule_files"]] == [RULES.resolve()]
    targets = {
        job["job_name"]: [t for sc in job["static_configs"] for t in sc["targets"]]
        for job in config["scrape_configs"]
    }
    fields = Settings.model_fields
    assert targets["segstream-worker"] == [f"127.0.0.1:{fields['metrics_port'].default}"]
    assert targets["segstream-api"] == [f"127.0.0.1:{fields['api_port'].default}"]
    assert targets["segstream-triggers"] == [f"127.0.0.1:{fields['triggers_metrics_port'].default}"]


# ------------------------------------------------------------------ dashboard


def test_dashboard_is_valid_and_uses_the_datasource_variable() -> None:
    board = dashboard()
    assert board["title"] == "Segment health"
    variables = {v["name"]: v for v in board["templating"]["list"]}
    assert variables["DS_PROMETHEUS"]["type"] == "datasource"
    assert variables["DS_PROMETHEUS"]["query"] == "prometheus"
    ids = [p["id"] for p in panels(board)]
    assert len(ids) == len(set(ids)), "duplicate panel ids"
    for panel in panels(board):
        pos = panel["gridPos"]
        assert pos["x"] + pos["w"] <= 24, panel["title"]
        if panel["type"] == "row":
            continue
        sources = [panel["datasource"], *(t["datasource"] for t in panel["targets"])]
        assert all(s == DATASOURCE for s in sources), panel["title"]


def test_dashboard_covers_segment_health() -> None:
    exprs = " ".join(dashboard_exprs(dashboard()))
    for needed in [
        "segstream:segment_users:owner",
        "segstream:segment_share:owner",
        "segstream:segment_revenue:owner",
        "segstream:segment_conversion_rate:owner",
        "segstream:segment_cac:owner",
        "segstream:segment_roas:owner",
        "segstream:feature_drift:owner",
        "segstream:segment_drift:owner",
        "segstream_drift_detected_total",
        "segstream:segment_changes:per_minute",
        "segstream:write_latency_seconds:p50_5m",
        "segstream:write_latency_seconds:p99_5m",
        "segstream_write_latency_seconds_bucket",
        "segstream_dlq_total",
        "segstream:consumer_lag:by_partition",
        "segstream_model_version",
    ]:
        assert needed in exprs, f"no dashboard panel queries {needed}"


def test_dashboard_uses_only_contract_metrics_and_defined_recordings() -> None:
    text = DASHBOARD.read_text()  # queries, and names mentioned in descriptions
    unknown = {n for n in METRIC_NAME.findall(text) if contract_name(n) not in CONTRACT}
    assert not unknown, f"dashboard uses metrics outside the contract: {sorted(unknown)}"
    undefined = set(RECORDED_NAME.findall(text)) - recorded()
    assert not undefined, f"dashboard uses undefined recording rules: {sorted(undefined)}"


def test_the_metrics_page_lists_every_metric_the_code_exports_and_no_other() -> None:
    from prometheus_client import REGISTRY, CollectorRegistry

    import segstream.streams.metrics  # noqa: F401  (registers the worker's metrics)
    from segstream.consumers.api import create_app
    from segstream.consumers.triggers import RELAY_REGISTRY
    from segstream.schemas.settings import Settings

    app = create_app(Settings())
    api: CollectorRegistry = app.state.metrics_registry
    families = [*REGISTRY.collect(), *api.collect(), *RELAY_REGISTRY.collect()]
    exported = {
        m.name + ("_total" if m.type == "counter" else "")
        for m in families
        if m.name.startswith("segstream_")
    }
    assert exported == CONTRACT
    histograms = {m.name for m in families if m.type == "histogram"}
    assert {h for h in histograms if h.startswith("segstream_")} == HISTOGRAMS
