"""deploy/: the Grafana dashboard and the Prometheus alerts only query metrics dbfw really exposes."""

from __future__ import annotations

import json
import re
import shutil
import subprocess
import urllib.request
from pathlib import Path

import yaml

from tests.conftest import DbfwProcess

ROOT = Path(__file__).resolve().parents[2]
DEPLOY = ROOT / "deploy"


def _metric_names(expr: str) -> set[str]:
    names = set(re.findall(r"\bdbfw_[a-z_]+", expr))
    return {re.sub(r"_(bucket|count|sum)$", "", n) for n in names}


def _exposed(proc: DbfwProcess) -> set[str]:
    with urllib.request.urlopen(f"http://127.0.0.1:{proc.admin_port}/metrics", timeout=10) as resp:
        text = resp.read().decode()
    names = set()
    for line in text.splitlines():
        if line.startswith("# TYPE "):
            names.add(line.split()[2])
    # Counters are exposed with _total appended to their family name.
    return names | {n + "_total" for n in names}


def test_dashboard_queries_only_exposed_metrics(dbfw: DbfwProcess) -> None:
    dashboard = json.loads((DEPLOY / "grafana" / "dbfw.json").read_text())
    exprs = [t["expr"] for p in dashboard["panels"] for t in p["targets"]]
    assert len(exprs) >= 10
    wanted = set().union(*(_metric_names(e) for e in exprs))
    missing = wanted - _exposed(dbfw)
    assert not missing, f"the dashboard queries metrics dbfw does not expose: {missing}"
    titles = " ".join(p["title"].lower() for p in dashboard["panels"])
    for topic in ("class", "overhead", "pending approvals", "masked", "connections", "errors"):
        assert topic in titles


def test_alert_rules_are_valid_and_use_exposed_metrics(dbfw: DbfwProcess) -> None:
    path = DEPLOY / "prometheus" / "dbfw-alerts.yml"
    doc = yaml.safe_load(path.read_text())
    rules = [r for g in doc["groups"] for r in g["rules"]]
    assert {r["alert"] for r in rules} >= {"DbfwApprovalsWaitingTooLong", "DbfwParseFailureRateHigh",
                                           "DbfwUpstreamErrors", "DbfwOverheadP99High"}
    exposed = _exposed(dbfw)
    for r in rules:
        assert r["expr"] and r["labels"]["severity"] in ("warning", "critical") and r["annotations"]["summary"]
        assert _metric_names(r["expr"]) <= exposed, r["alert"]
    promtool = shutil.which("promtool")
    if promtool:  # the real checker where it is installed; the structure is checked above in any case
        out = subprocess.run([promtool, "check", "rules", str(path)], capture_output=True, text=True)
        assert out.returncode == 0, out.stdout + out.stderr
    scrape = yaml.safe_load((DEPLOY / "prometheus" / "prometheus.yml").read_text())
    assert scrape["scrape_configs"][0]["metrics_path"] == "/metrics"
    assert "dbfw-alerts.yml" in scrape["rule_files"]
