"""The built wheel carries what the operator tools need outside a checkout:
the locustfiles, the targets, the migrations. Built and installed here into
a folder of its own, then used from another working directory."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

# End to end, more than about ten seconds: not in `pytest -m "not slow"`.
pytestmark = pytest.mark.slow

ROOT = Path(__file__).resolve().parents[2]


def test_the_wheel_runs_the_operator_tools_outside_the_checkout(tmp_path):
    built = subprocess.run(
        [sys.executable, "-m", "pip", "wheel", "--no-deps", "-q", "-w", str(tmp_path), str(ROOT)],
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert built.returncode == 0, built.stderr
    (wheel,) = tmp_path.glob("ledger-*.whl")
    site = tmp_path / "site"
    installed = subprocess.run(
        [sys.executable, "-m", "pip", "install", "--no-deps", "-q", "--target", str(site), wheel],
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert installed.returncode == 0, installed.stderr
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    env = {**os.environ, "PYTHONPATH": str(site)}
    probe = subprocess.run(
        [
            sys.executable,
            "-c",
            "import ledger, ledger.ops.files as f, ledger.ops.pgbench as p, "
            "ledger.storage.migrate as m; "
            "print(ledger.__file__); print(sorted(x.name for x in f.locustfiles().iterdir())); "
            "print(f.package_file('targets.toml').is_file()); print(m.schema_dir()); "
            "print(len(p.script('load-')) > 0)",
        ],
        cwd=elsewhere,
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert probe.returncode == 0, probe.stderr
    module, files, targets, schema, script = probe.stdout.splitlines()
    assert module.startswith(str(site))
    for shape in ("any_to_any", "fan_in_hot", "authorize_capture", "read_mix", "replays"):
        assert f"'{shape}.py'" in files
    assert "'common.py'" in files
    assert targets == "True" and script == "True"
    assert schema.startswith(str(site)) and (Path(schema) / "versions").is_dir()
    helped = subprocess.run(
        [sys.executable, "-m", "ledger.cli", "bench", "--help"],
        cwd=elsewhere,
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert helped.returncode == 0 and "any_to_any" in helped.stdout, helped.stderr
