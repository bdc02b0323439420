"""The monitoring that ships in deploy/: Prometheus alert rules checked by
promtool (Debian's prometheus package; CI fetches it) and unit-tested with
their own input series, and the Grafana dashboard's queries parsed by
promtool too. Which metrics they use exist: tests/api/test_monitoring_metrics.py."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
from pathlib import Path

import pytest
import yaml

ROOT = Path(__file__).resolve().parents[2]
RULES = ROOT / "deploy" / "prometheus" / "ledger-alerts.yml"
RULE_TESTS = ROOT / "deploy" / "prometheus" / "ledger-alerts.test.yml"
DASHBOARD = ROOT / "deploy" / "grafana" / "ledger-dashboard.json"


def promtool() -> str:
    found = shutil.which("promtool") or str(ROOT / ".ci" / "tools" / "usr" / "bin" / "promtool")
    if not Path(found).exists():
        if os.environ.get("LEDGER_REQUIRE_PROMTOOL"):
            pytest.fail("promtool is required here (.ci/run fetches Debian's prometheus)")
        pytest.skip("promtool is not installed (Debian's prometheus package has it)")
    return found


def run(*args: str, cwd: Path) -> str:
    done = subprocess.run(args, cwd=cwd, capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stdout + done.stderr
    return done.stdout


def dashboard_queries() -> list[str]:
    board = json.loads(DASHBOARD.read_text())
    return [t["expr"] for p in board["panels"] for t in p["targets"]]


def test_the_alert_rules_pass_promtool_and_their_unit_tests():
    tool = promtool()
    assert "SUCCESS: 5 rules found" in run(tool, "check", "rules", RULES.name, cwd=RULES.parent)
    assert "SUCCESS" in run(tool, "test", "rules", RULE_TESTS.name, cwd=RULES.parent)


def test_every_dashboard_query_is_valid_promql(tmp_path):
    tool = promtool()
    queries = dashboard_queries()
    rules = {
        "groups": [
            {
                "name": "dashboard",
                "rules": [{"record": f"dashboard:q{i}", "expr": q} for i, q in enumerate(queries)],
            }
        ]
    }
    (tmp_path / "dashboard.yml").write_text(yaml.safe_dump(rules))
    out = run(tool, "check", "rules", "dashboard.yml", cwd=tmp_path)
    assert f"SUCCESS: {len(queries)} rules found" in out


def test_the_dashboard_is_one_grafana_document_with_unique_panels():
    board = json.loads(DASHBOARD.read_text())
    assert board["uid"] and board["title"] and board["panels"]
    ids = [p["id"] for p in board["panels"]]
    assert len(ids) == len(set(ids))
    for panel in board["panels"]:
        assert panel["datasource"]["uid"] == "${datasource}", panel["title"]
        assert panel["targets"], panel["title"]
