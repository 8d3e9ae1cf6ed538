"""deploy/prometheus and deploy/grafana: promtool checks the rules and runs their unit tests;
every alert carries for/severity/summary/runbook_url; every query of the dashboard parses
(promtool, as recording rules); every paysync_* metric that either names exists in
paysync/metrics.py."""

from __future__ import annotations

import ast
import json
import re
import subprocess
import tempfile
from pathlib import Path
from typing import Any

import yaml
from common import DEPLOY, ROOT, RUNBOOK, Report, load_yaml, tool

ALERTS = DEPLOY / "prometheus" / "alerts.yml"
ALERT_TESTS = DEPLOY / "prometheus" / "alerts.test.yml"
DASHBOARD = DEPLOY / "grafana" / "paysync.json"
METRICS = ROOT / "paysync" / "metrics.py"
SEVERITIES = {"critical", "warning"}
# Metrics of other exporters the rules and the dashboard use, by name prefix.
EXTERNAL = ("kube_pod_status_", "rabbitmq_")
GRAFANA_VARIABLES = {
    "$__rate_interval": "5m",
    "$__interval": "1m",
    "$__range": "1h",
    "$provider": ".*",
}


def defined_metrics() -> set[str]:
    """Every metric name paysync/metrics.py registers, with its exposition suffixes."""
    names = set()
    for node in ast.walk(ast.parse(METRICS.read_text(encoding="utf-8"))):
        if (
            isinstance(node, ast.Call)
            and isinstance(node.func, ast.Name)
            and node.func.id in ("Counter", "Gauge", "Histogram")
            and node.args
            and isinstance(node.args[0], ast.Constant)
        ):
            name = str(node.args[0].value)
            names.add(name)
            if node.func.id == "Histogram":
                names |= {f"{name}_bucket", f"{name}_sum", f"{name}_count"}
    return names


def unknown_metrics(exprs: list[str], known: set[str]) -> list[str]:
    used = {m for e in exprs for m in re.findall(r"\b(paysync_[a-z0-9_]+)", e)}
    return [f"{m} is not defined in paysync/metrics.py" for m in sorted(used - known)]


def promtool(report: Report, what: str, *args: str) -> bool:
    binary = tool("promtool")
    if binary is None:
        report.skip(what, "promtool not found (deploy/bootstrap.sh tools installs it)")
        return False
    run = subprocess.run([binary, *args], capture_output=True, text=True, check=False)  # noqa: S603
    lines = (run.stdout + run.stderr).strip().splitlines()
    report.check(what, [] if run.returncode == 0 else lines)
    return True


def alert_problems(groups: list[dict[str, Any]]) -> list[str]:
    problems = []
    for group in groups:
        for rule in group["rules"]:
            name = rule.get("alert") or rule.get("record")
            labels, annotations = rule.get("labels", {}), rule.get("annotations", {})
            if "alert" not in rule:
                continue
            if "for" not in rule:
                problems.append(f"{name}: no for:")
            if labels.get("severity") not in SEVERITIES:
                problems.append(f"{name}: severity must be one of {sorted(SEVERITIES)}")
            if not annotations.get("summary"):
                problems.append(f"{name}: no summary")
            if annotations.get("runbook_url") != RUNBOOK:
                problems.append(f"{name}: runbook_url must be {RUNBOOK}")
    return problems


def runbook_anchor_problems() -> list[str]:
    """GitHub's anchor of each README heading: lower case, punctuation dropped, - for space."""
    headings = re.findall(r"^#+ (.+)$", (ROOT / "README.md").read_text(encoding="utf-8"), re.M)
    anchors = {re.sub(r"[^\w\- ]", "", h.strip().lower()).replace(" ", "-") for h in headings}
    anchor = RUNBOOK.split("#", 1)[1]
    return [] if anchor in anchors else [f"README.md has no heading with anchor #{anchor}"]


def _overlap(a: dict[str, int], b: dict[str, int]) -> bool:
    return (
        a["x"] < b["x"] + b["w"]
        and b["x"] < a["x"] + a["w"]
        and a["y"] < b["y"] + b["h"]
        and b["y"] < a["y"] + a["h"]
    )


def dashboard_exprs(dashboard: dict[str, Any]) -> tuple[list[str], list[str]]:
    problems, exprs = [], []
    panels = dashboard["panels"]
    ids = [p["id"] for p in panels]
    if len(ids) != len(set(ids)):
        problems.append("panel ids are not unique")
    problems += [
        f"panels overlap: {a['title']!r} and {b['title']!r}"
        for i, a in enumerate(panels)
        for b in panels[i + 1 :]
        if _overlap(a["gridPos"], b["gridPos"])
    ]
    for panel in dashboard["panels"]:
        for target in panel.get("targets", []):
            if target.get("datasource", {}).get("uid") != "${datasource}":
                problems.append(f"{panel['title']}: target not on the ${{datasource}} variable")
            expr = target["expr"]
            for variable, value in GRAFANA_VARIABLES.items():
                expr = expr.replace(variable, value)
            if "$" in expr:
                problems.append(f"{panel['title']}: unknown variable in {target['expr']}")
            exprs.append(expr)
    return problems, exprs


def check(report: Report) -> None:
    groups = load_yaml(ALERTS)[0]["groups"]
    rules = [r for g in groups for r in g["rules"]]
    known = defined_metrics()
    promtool(
        report, f"alerts: promtool check rules ({len(rules)} rules)", "check", "rules", str(ALERTS)
    )
    promtool(
        report, "alerts: promtool test rules (alerts.test.yml)", "test", "rules", str(ALERT_TESTS)
    )
    problems = alert_problems(groups) + runbook_anchor_problems()
    problems += unknown_metrics([r["expr"] for r in rules], known)
    report.check("alerts: for, severity, summary, runbook_url; metrics exist", problems)

    dashboard = json.loads(DASHBOARD.read_text(encoding="utf-8"))
    problems, exprs = dashboard_exprs(dashboard)
    problems += unknown_metrics(exprs, known)
    used = {m for e in exprs for m in re.findall(r"\b([a-z_]+(?:_total|_seconds|_bucket))", e)}
    problems += [
        f"{m} is neither paysync's nor known"
        for m in sorted(used)
        if not m.startswith("paysync_") and not m.startswith(EXTERNAL)
    ]
    report.check(f"grafana: {len(exprs)} queries over defined metrics", problems)
    with tempfile.TemporaryDirectory() as tmp:
        rules_file = Path(tmp) / "dashboard-queries.yml"
        records = [{"record": f"dashboard:query{i}", "expr": e} for i, e in enumerate(exprs)]
        rules_file.write_text(yaml.safe_dump({"groups": [{"name": "dashboard", "rules": records}]}))
        promtool(
            report,
            "grafana: every query parses (promtool check rules)",
            "check",
            "rules",
            str(rules_file),
        )
