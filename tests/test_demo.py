"""`cxrzoo demo` on a small set, as a user runs it: a short, quiet console, a log file, a headline over the
labels that have enough test positives, patient-wise splits, findings in the scores."""
from __future__ import annotations

import json
import os
import subprocess
import sys

import pyarrow.parquet as pq
import pytest

# `make demo` runs in the default profile (.venv), and the demo trains the reproducible engine, torch, in either
pytestmark = pytest.mark.profile("spark35")


def test_the_demo_prints_only_its_own_lines_and_logs_the_rest(tmp_path):
    out = tmp_path / "demo"
    env = {k: v for k, v in os.environ.items() if k not in ("PYSPARK_SUBMIT_ARGS",)}
    run = subprocess.run([sys.executable, "-m", "cxrzoo.cli", "demo", "--out", str(out), "--n", "240", "--epochs",
                          "2", "--driver-memory", "2g"], capture_output=True, text=True, timeout=900, env=env)
    console = (run.stdout + run.stderr).splitlines()
    assert run.returncode == 0, run.stderr[-3000:]
    assert len(console) <= 60, "\n".join(console)
    noise = [ln for ln in console if any(s in ln for s in ("creating: ", " WARN ", " INFO ", "py4j", "Traceback",
                                                            "Closing down"))]
    assert not noise, "\n".join(noise)
    log_file = out / "cxrzoo-demo.log"
    assert console[0] == f"log: {log_file}" and log_file.stat().st_size > 0
    assert any(ln.startswith("4/8 train the tiny CNN") for ln in console)
    assert any(ln.startswith("mean over the ") for ln in console)

    summary = json.loads((out / "summary.json").read_text())
    pos = summary["positives"]
    assert summary["headline_labels"] == [k for k, v in summary["auc"].items() if v is not None and pos[k] >= 10]
    assert set(summary["too_few_positives"]) == set(summary["auc"]) - set(summary["headline_labels"])
    patients = {k: set(pq.read_table(summary["outputs"][k], columns=["patient_id"]).column(0).to_pylist())
                for k in ("train", "val", "test")}
    assert not (patients["train"] & patients["val"] or patients["train"] & patients["test"]
                or patients["val"] & patients["test"])
    scores = pq.read_table(summary["outputs"]["scores.parquet"])
    assert "findings" in scores.column_names and scores.num_rows == summary["split"]["test"]
