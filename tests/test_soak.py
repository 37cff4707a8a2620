"""The soak benchmark (benchmarks/soak.py) at a tiny scale: every input accounted for, and the accounting
itself catching a lost row, a duplicated row and duplicate-named files that cannot be told apart."""
import argparse
import copy
import json

import pytest

import soak
from _soak_check import account


def _args(*argv: str) -> argparse.Namespace:
    ap = argparse.ArgumentParser()
    soak._options(ap)
    return ap.parse_args(list(argv))


@pytest.mark.profile("spark4")  # the accounting is the same in both profiles
def test_soak_accounts_for_every_file(spark, tmp_path):
    args = _args("--n", "120", "--size", "128", "--kills", "1", "--checkpoint", "30", "--driver-memory", "2g")
    res = soak.run(spark, args, tmp_path)
    out = soak._report(args, res, tmp_path)
    json.dumps(out)  # the JSON line
    assert out["ok"], out["problems"]
    kinds = out["kinds"]
    assert all(kinds[k] >= 2 for k in ("corrupt", "truncated", "orphan", "missing")) and kinds["duplicate"] >= 4
    assert set(out["checks"]) >= {"ingest_first", "ingest_all", "score_heatmaps_off_all", "score_heatmaps_on_all",
                                  "memory_no_growth", "kill_rerun_1", "bad_label_format"}
    assert out["ingest_report"]["images_found"] == out["files_on_disk"]
    assert out["kills"][0]["killed_after_write_start_s"] is not None

    # the accounting flags what a broken scorer would do
    phase = res["truth"]["phases"]["all"]
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
