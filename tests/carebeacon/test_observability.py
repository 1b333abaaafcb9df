"""Observability as files (``deploy/prometheus/``, ``deploy/grafana/``): the Prometheus
configuration and alert rules pass ``promtool check`` and their unit tests
(``promtool test rules``); the Grafana dashboards are valid, provisioned, and every query names
a metric the code defines (Prometheus) or runs on the migrated schema (PostgreSQL)."""

from __future__ import annotations

import importlib
import json
import re
import shlex
import shutil
import subprocess
from pathlib import Path
from typing import Any

import psycopg
import pytest
import yaml
from prometheus_client import REGISTRY

DEPLOY = Path(__file__).resolve().parents[2] / "deploy"
PROMETHEUS = DEPLOY / "prometheus"
GRAFANA = DEPLOY / "grafana"
PROMTOOL = shutil.which("promtool")
needs_promtool = pytest.mark.skipif(PROMTOOL is None, reason="promtool not installed")
_METRIC = re.compile(r"\b(carebeacon_[a-z0-9_]+)\b")


def _promtool(*args: str) -> subprocess.CompletedProcess[str]:
    assert PROMTOOL is not None
    return subprocess.run(
        [PROMTOOL, *args], cwd=PROMETHEUS, capture_output=True, text=True, timeout=60, check=False
    )


def _defined_metrics() -> set[str]:
    """Every sample name the product's metrics can expose (counter ``_total``, histogram
    ``_bucket``/``_sum``/``_count``, gauge as named), from the registry once the processes'
    modules are imported: ingest (with the alert engine) and the scheduler."""
    for module in ("ingest.service", "alerts.scheduler"):
        importlib.import_module(module)
    suffixes = {
        "counter": ("_total", "_created"),
        "histogram": ("_bucket", "_sum", "_count", "_created"),
        "gauge": ("",),
        "summary": ("_sum", "_count", "_created"),
    }
    names: set[str] = set()
    for family in REGISTRY.collect():
        for suffix in suffixes.get(family.type, ("",)):
            names.add(family.name + suffix)
    return {n for n in names if n.startswith("carebeacon_")}


def _rules() -> list[dict[str, Any]]:
    doc = yaml.safe_load((PROMETHEUS / "alerts.yml").read_text(encoding="utf-8"))
    return [rule for group in doc["groups"] for rule in group["rules"]]


def _dashboards() -> list[dict[str, Any]]:
    return [json.loads(p.read_text(encoding="utf-8")) for p in sorted(GRAFANA.glob("*.json"))]


@needs_promtool
def test_prometheus_configuration_and_rules_pass_promtool_check() -> None:
    config = _promtool("check", "config", "prometheus.yml")
    assert config.returncode == 0, config.stdout + config.stderr
    rules = _promtool("check", "rules", "alerts.yml")
    assert rules.returncode == 0, rules.stdout + rules.stderr
    assert "SUCCESS: 10 rules found" in rules.stdout


@needs_promtool
def test_alert_rules_pass_their_unit_tests() -> None:
    result = _promtool("test", "rules", "alerts_test.yml")
    assert result.returncode == 0, result.stdout + result.stderr
    assert "SUCCESS" in result.stdout


@needs_promtool
def test_rule_unit_tests_detect_a_wrong_threshold(tmp_path: Path) -> None:
    """The unit tests are not vacuous: the lag bound raised tenfold fails them."""
    text = (PROMETHEUS / "alerts.yml").read_text(encoding="utf-8")
    assert "\n          > 60\n" in text
    (tmp_path / "alerts.yml").write_text(text.replace("\n          > 60\n", "\n          > 600\n"))
    shutil.copy(PROMETHEUS / "alerts_test.yml", tmp_path)
    assert PROMTOOL is not None
    result = subprocess.run(
        [PROMTOOL, "test", "rules", "alerts_test.yml"],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert result.returncode != 0
    assert "CareBeaconIngestLagHigh" in result.stdout + result.stderr


def test_every_alert_is_unit_tested_and_names_only_defined_metrics() -> None:
    tests = yaml.safe_load((PROMETHEUS / "alerts_test.yml").read_text(encoding="utf-8"))
    tested = {
        case["alertname"]
        for group in tests["tests"]
        for case in group.get("alert_rule_test", [])
        if case["exp_alerts"]
    }
    defined = _defined_metrics()
    names = [rule["alert"] for rule in _rules()]
    assert {
        "CareBeaconIngestDown",
        "CareBeaconIngestLagHigh",
        "CareBeaconQuarantineRateHigh",
        "CareBeaconSchedulerStalled",
        "CareBeaconNoReadings",
    } <= set(names)
    for rule in _rules():
        assert rule["alert"] in tested, f"{rule['alert']} never fires in alerts_test.yml"
        assert rule["labels"]["severity"] in {"critical", "warning"}
        used = set(_METRIC.findall(rule["expr"]))
        assert used or "up{" in rule["expr"], rule["alert"]
        assert used <= defined, (rule["alert"], used - defined)


def test_scrape_targets_are_the_processes_that_serve_metrics() -> None:
    """Ingest on CAREBEACON_METRICS_PORT's default (9464), the scheduler on the port its unit
    gives ``--metrics-port``; the web app serves no /metrics and is not scraped."""
    from carebeacon.settings import Settings

    config = yaml.safe_load((PROMETHEUS / "prometheus.yml").read_text(encoding="utf-8"))
    jobs = {
        job["job_name"]: [t for sc in job["static_configs"] for t in sc["targets"]]
        for job in config["scrape_configs"]
    }
    assert set(jobs) == {"carebeacon-ingest", "carebeacon-scheduler"}
    port = Settings.model_fields["metrics_port"].default
    assert jobs["carebeacon-ingest"] == [f"127.0.0.1:{port}"]
    unit = (DEPLOY / "systemd" / "carebeacon-scheduler.service").read_text(encoding="utf-8")
    (exec_start,) = [line for line in unit.splitlines() if line.startswith("ExecStart=")]
    argv = shlex.split(exec_start.removeprefix("ExecStart="))
    assert argv[1:] == ["scheduler", "--metrics-port", "9465"]
    assert jobs["carebeacon-scheduler"] == ["127.0.0.1:9465"]
    assert config["rule_files"] == ["alerts.yml"]


def test_dashboards_are_provisioned_from_one_file_provider() -> None:
    provider = yaml.safe_load((GRAFANA / "dashboards.yaml").read_text(encoding="utf-8"))
    assert provider["apiVersion"] == 1
    (only,) = provider["providers"]
    assert only["type"] == "file"
    assert Path(only["options"]["path"]).is_absolute()
    datasources = yaml.safe_load((GRAFANA / "datasources.yaml").read_text(encoding="utf-8"))
    uids = {d["uid"] for d in datasources["datasources"]}
    assert {"carebeacon-prometheus", "carebeacon-timescaledb"} <= uids


def test_dashboard_panels_query_defined_metrics_and_known_datasources() -> None:
    datasources = yaml.safe_load((GRAFANA / "datasources.yaml").read_text(encoding="utf-8"))
    kinds = {d["uid"]: d["type"] for d in datasources["datasources"]}
    defined = _defined_metrics()
    dashboards = _dashboards()
    assert dashboards
    seen: set[str] = set()
    for board in dashboards:
        assert board["uid"]
        assert board["title"]
        ids = [p["id"] for p in board["panels"]]
        assert len(ids) == len(set(ids)), "panel ids must be unique"
        for panel in board["panels"]:
            source = panel["datasource"]
            assert kinds[source["uid"]] == source["type"], panel["title"]
            assert panel["targets"], panel["title"]
            for target in panel["targets"]:
                if source["type"] == "prometheus":
                    used = set(_METRIC.findall(target["expr"]))
                    assert used, (panel["title"], target["expr"])
                    assert used <= defined, (panel["title"], used - defined)
                    seen |= used
                else:
                    assert target["rawSql"].lstrip().upper().startswith("SELECT")
    # the pipeline's own health is on the board
    assert "carebeacon_pipeline_stalled" in seen
    assert "carebeacon_scheduler_last_pass_timestamp_seconds" in seen


@pytest.mark.db
def test_dashboard_sql_runs_on_the_migrated_schema(database: str) -> None:
    queries = [
        target["rawSql"]
        for board in _dashboards()
        for panel in board["panels"]
        for target in panel["targets"]
        if "rawSql" in target
    ]
    assert len(queries) >= 2
    with psycopg.connect(database) as conn:
        conn.execute("SET TRANSACTION READ ONLY")
        for sql in queries:
            assert "$__" not in sql  # no Grafana macros: the text is what PostgreSQL runs
            conn.execute(sql.encode()).fetchall()
