"""Every metric and label the shipped alert rules and dashboard use is one
the service serves on /metrics: a renamed metric fails here, not in an
outage when its alert stays silent."""

from __future__ import annotations

import json
import re
from pathlib import Path

import yaml

ROOT = Path(__file__).resolve().parents[2]
METRIC = re.compile(r"\b(ledger_[a-z_]+)")
LABELS = re.compile(r"by \(([^)]*)\)|\{([^}]*)\}")
SUFFIXES = ("_total", "_bucket", "_count", "_sum", "_created")


def used() -> tuple[set[str], set[str]]:
    rules = yaml.safe_load((ROOT / "deploy" / "prometheus" / "ledger-alerts.yml").read_text())
    exprs = [r["expr"] for g in rules["groups"] for r in g["rules"]]
    board = json.loads((ROOT / "deploy" / "grafana" / "ledger-dashboard.json").read_text())
    exprs += [t["expr"] for p in board["panels"] for t in p["targets"]]
    metrics = {m for e in exprs for m in METRIC.findall(e)}
    labels = set()
    for e in exprs:
        for by, matchers in LABELS.findall(e):
            labels |= {x.strip() for x in by.split(",") if x.strip()}
            labels |= {x.split("=")[0].strip() for x in matchers.split(",") if "=" in x}
    return metrics, labels


async def test_the_rules_and_the_dashboard_use_only_served_metrics(client):
    await client.get("/accounts", params={"limit": 1})  # a request, so its series exist
    text = (await client.get("/metrics")).text
    served = set()
    for line in text.splitlines():
        if line.startswith("# TYPE "):
            served.add(line.split()[2])
        elif line and not line.startswith("#"):
            served.add(line.split("{")[0].split()[0])
    metrics, labels = used()
    missing = {m for m in metrics if m not in served and not m.endswith(SUFFIXES)}
    missing |= {
        m for m in metrics if m.endswith(SUFFIXES) and m not in served
        and not any(m.removesuffix(s) in served for s in SUFFIXES)
    }  # fmt: skip
    assert missing == set()
    label_names = set(re.findall(r"[{,]([a-z_]+)=", text))
    assert labels - {"le"} <= label_names, labels - label_names
