"""The soak benchmark (benchmarks/soak.py) at a tiny scale: every input accounted for, and the accounting
itself catching a lost row, a duplicated row and duplicate-named files that cannot be told apart."""
import copy
import json
import subprocess
import sys
from pathlib import Path

import pytest

import soak
from _soak_check import account

BENCHMARKS = Path(__file__).resolve().parents[1] / "benchmarks"


@pytest.mark.profile("spark4")  # the accounting is the same in both profiles
def test_soak_accounts_for_every_file(spark, tmp_path):
    """The soak as its benchmark runs: a process and a SparkSession of its own.  Its memory bar compares the peaks
    of its driver, JVM and Python workers after the first 30 images and after all 120; in the test session those
    processes carry every earlier test's allocations (a reused worker's peak of 2.3 to 4.2 GB failed it in 3 runs of
    6 here), which is not the soak's memory."""
    run = subprocess.run([sys.executable, str(BENCHMARKS / "soak.py"), "--n", "120", "--size", "128", "--kills", "1",
                          "--checkpoint", "30", "--driver-memory", "2g", "--workdir", str(tmp_path)],
                         capture_output=True, text=True, timeout=900, cwd=BENCHMARKS)
    assert run.stdout.strip(), run.stderr[-3000:]
    out = json.loads(run.stdout.strip().splitlines()[-1])  # the JSON line
    assert run.returncode == 0 and out["ok"], (out["problems"], run.stderr[-3000:])
    kinds = out["kinds"]
    assert all(kinds[k] >= 2 for k in ("corrupt", "truncated", "orphan", "missing")) and kinds["duplicate"] >= 4
    assert set(out["checks"]) >= {"ingest_first", "ingest_all", "score_heatmaps_off_all", "score_heatmaps_on_all",
                                  "memory_no_growth", "kill_rerun_1", "bad_label_format"}
    assert out["ingest_report"]["images_found"] == out["files_on_disk"]
    assert out["kills"][0]["killed_after_write_start_s"] is not None

    # the accounting flags what a broken scorer would do
    phase = json.loads((tmp_path / "data" / "ground_truth.json").read_text())["phases"]["all"]
    labels = json.loads((tmp_path / "ir" / "cxrzoo.json").read_text())["labels"]
    rows, key = soak.score_rows(spark, tmp_path / "score_heatmaps_off-all.parquet", labels, False)
    assert account(rows, phase, key, "has_probs")["ok"]
    good = next(r for r in rows if r["error"] is None)
    assert "silently missing" in " ".join(account([r for r in rows if r is not good], phase, key,
                                                  "has_probs")["problems"])
    assert "appears in 2 rows" in " ".join(account(rows + [good], phase, key, "has_probs")["problems"])
    name = next(iter(phase["dup_groups"]))
    bare = [dict(r, **{key: name}) if r[key].endswith("/" + name) else r for r in copy.deepcopy(rows)]
    assert "cannot be told apart" in " ".join(account(bare, phase, key, "has_probs")["problems"])
    one = [r for r in bare if r[key] != name] + [next(r for r in bare if r[key] == name)]
    assert "silently missing" in " ".join(account(one, phase, key, "has_probs")["problems"])
    bad = next(p for p, k in phase["files"].items() if k == "corrupt")
    hidden = [dict(r, error=None, has_probs=True) if r["error"] and bad.rsplit("/", 1)[1] in r["error"] else r
              for r in rows]
    assert "expected an error row naming it" in " ".join(account(hidden, phase, key, "has_probs")["problems"])
