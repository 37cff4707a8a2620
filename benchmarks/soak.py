"""Soak: ingest and score N synthetic 1024² radiographs with 1 % bad files mixed in, on one local[2] session.

What it does, in one SparkSession on local[2]:

1. data (:mod:`_soak_data`): ``--n`` PNGs from cxrzoo's own synth (``cxrzoo.synth.write_dataset``), split into
   ``images/first`` (the first ``--checkpoint`` images, default 5,000) and ``images/rest``, with corrupt
   (bytes flipped in the IDAT data), truncated, orphan (no label row), missing (a label row, no file) and
   duplicate-named files (``a/X.png`` and ``b/X.png``) mixed in, each ``max(2, n × 1 % / 5)`` times; the
   ground truth in ``ground_truth.json``.  A copy of the label CSV with one unknown label checks the
   bad-format path: the ingest must refuse it naming the CSV line, or give that image an error row.
2. model: the ``tiny`` network with seeded random weights (engine-neutral, no training), exported to
   OpenVINO IR with its heatmaps output.
3. per phase, ``first`` (the checkpoint's images) then ``all`` (N): ``jobs.ingest`` at 256², then
   ``jobs.score`` of the image directory with heatmaps off and on.  Every output is checked against the
   ground truth (:mod:`_soak_check`): every input file accounted for exactly once (a good row, or an error row
   naming the file; each duplicate a row of its own or reported; none silently missing; no key twice) and
   the ingest report's counts equal to the truth and to the rows written.
4. memory (:mod:`_soak_mem`): a thread samples /proc while the jobs run: the driver JVM's and the Python
   driver's VmHWM, each Python worker's VmHWM (pyspark.daemon and everything below the JVM) and the sum of
   their RSS; and, at each checkpoint, the JVM heap's peak committed size and what a full GC leaves of it.
   The bar: every peak after N images ≤ ``--mem-factor`` (1.25) × its value after the checkpoint's images +
   ``--mem-slack-mb`` (256 MB: the driver also holds the soak's own bookkeeping of N rows); the JVM's RSS
   may grow by its committed heap's growth on top (the collector commits heap lazily up to -Xmx), its
   retained heap may not.  Memory growing with the number of images (a per-image leak, a task holding its
   whole partition) fails it.
5. kill (:mod:`_soak_kill`), ``--kills`` rounds: ``cxrzoo score`` of all N images as a subprocess, SIGKILLed
   (its process group) a random time after its write starts, then rerun; the output must then hold exactly
   one row per input image and no hidden sibling of the write.  Round 1 writes a new output, round 2
   replaces the existing one.  The kill falls uniformly in 5-100 % of the write's expected duration (round 1:
   the in-session scoring time + 5 s of cold start; later rounds: the previous rerun's write).

Throughput (images/s, files listed / wall seconds of each job) is printed for the ingest and for scoring with
heatmaps off and on.  Exit code 1 when any check fails; the JSON line is printed either way.

    .venv/bin/python benchmarks/soak.py [--n 20000] [--size 1024] [--checkpoint 5000] [--kills 2] [--workdir DIR]
    .venv/bin/python benchmarks/soak.py --n 300 --size 256      # a short run (a few minutes)
"""
from __future__ import annotations

import json
import logging
import shutil
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

from _common import bench_args, cpu_name, emit
from _soak_check import account
from _soak_data import build, kind_counts
from _soak_kill import kill_and_rerun
from _soak_mem import ProcSampler, jvm_heap, jvm_pid, no_growth

log = logging.getLogger("bench.soak")
IMAGE_SIZE = 256  # ingest size and the IR's input (the tiny net sees the 224² centre crop)
COLD_START_S = 5.0  # a new command's write takes longer than the warm session's: workers start, the IR compiles


def _options(ap) -> None:
    ap.add_argument("--n", type=int, default=20000, help="synthetic images (default: 20,000)")
    ap.add_argument("--size", type=int, default=1024, help="side of the synthetic PNGs (default: 1024)")
    ap.add_argument("--checkpoint", type=int, default=5000, help="images of the first measurement (default: "
                    "5,000; at most n/4)")
    ap.add_argument("--bad-rate", type=float, default=0.01, help="share of bad files, over 5 kinds (default: 0.01)")
    ap.add_argument("--seed", type=int, default=0, help="data, corruption and kill-time seed (default: 0)")
    ap.add_argument("--batch", type=int, default=16, help="images per infer request (default: 16)")
    ap.add_argument("--kills", type=int, default=2, help="kill-and-rerun rounds of `cxrzoo score` (default: 2)")
    ap.add_argument("--driver-memory", default="4g", help="driver JVM heap, also of the killed command (default: 4g)")
    ap.add_argument("--mem-factor", type=float, default=1.25, help="memory bar: end peak <= factor x checkpoint "
                    "peak + slack (default: 1.25)")
    ap.add_argument("--mem-slack-mb", type=float, default=256, help="memory bar's slack in MB (default: 256)")
    ap.add_argument("--workdir", default=None, help="work directory, kept (default: a temporary one, removed)")


def _ir(root: Path) -> Path:
    from bench_score import _plain_model_dir  # seeded random weights, engine-neutral (no training engine needed)

    from cxrzoo.export import export_openvino

    from cxrzoo.models import modeldir

    model = _plain_model_dir(root, "tiny")
    card = json.loads((model / modeldir.CARD).read_text())
    if getattr(modeldir, "FORMAT", None):  # the card's layout version, where this cxrzoo checks one
        card.setdefault("format", modeldir.FORMAT)
        (model / modeldir.CARD).write_text(json.dumps(card))
    return export_openvino(model, root / "ir", image_size=IMAGE_SIZE)


def _ingest(spark, ph: dict, out: Path) -> tuple[dict, float]:
    from pyspark.sql import functions as F

    from cxrzoo import jobs

    t0 = time.perf_counter()
    jobs.ingest(spark, ph["dir"], ph["labels"], str(out), size=IMAGE_SIZE)
    dt = time.perf_counter() - t0
    report = json.loads((out / "_ingest_report.json").read_text())
    rows = [r.asDict() for r in spark.read.parquet(str(out)).select(
        "path", "image_index", F.col("image").isNotNull().alias("has_image"), "error").collect()]
    rows = [{**r, "path": r["path"].removeprefix("file://").removeprefix("file:")} for r in rows]
    return account(rows, ph, "path", "has_image", ingest=True, report=report), dt


def score_rows(spark, out: Path, labels: list[str], heatmaps: bool) -> tuple[list[dict], str]:
    """The scores' rows as dicts (key, ``has_probs``, ``error``[, ``has_heat``]) and the key column."""
    from pyspark.sql import functions as F

    df = spark.read.parquet(str(out))
    key = "path" if "path" in df.columns else "image_index"
    cols = [key, F.col(f"`{labels[0]}`").isNotNull().alias("has_probs"), "error"]
    if heatmaps:
        cols.append(F.col("heatmaps").isNotNull().alias("has_heat") if "heatmaps" in df.columns
                    else F.lit(False).alias("has_heat"))
    return [r.asDict() for r in df.select(*cols).collect()], key


def _score(spark, ir: Path, ph: dict, out: Path, batch: int, heatmaps: bool, labels: list[str]) -> tuple[dict, float]:
    from cxrzoo import jobs

    t0 = time.perf_counter()
    jobs.score(spark, str(ir), str(out), images=ph["dir"], batch_size=batch, heatmaps=heatmaps)
    dt = time.perf_counter() - t0
    rows, key = score_rows(spark, out, labels, heatmaps)
    return account(rows, ph, key, "has_probs", heatmaps=heatmaps), dt


def _rate(r: float | None) -> str:
    return f"{r:.0f}" if r else "-"


def _bad_format(spark, truth: dict, out: Path) -> dict:
    """An unknown label in one CSV row: refused naming the CSV line (or an error row naming that image)."""
    from pyspark.sql import functions as F

    from cxrzoo import jobs

    bf, ph = truth["bad_format"], truth["phases"]["first"]
    where = f"{Path(bf['csv']).name}:{bf['line']}"
    try:
        jobs.ingest(spark, ph["dir"], bf["csv"], str(out), size=IMAGE_SIZE)
    except ValueError as e:  # LabelFileError, UnknownLabelError
        ok = where in str(e) and bf["image"] in str(e) and not out.exists()
        return {"ok": ok, "how": f"refused ({type(e).__name__})", "message": str(e)[:300],
                "problems": [] if ok else [f"the refusal does not name {where} ({bf['image']}): {e}"]}
    err = spark.read.parquet(str(out)).where(F.col("image_index") == bf["image"]).select("error").collect()
    ok = len(err) == 1 and bool(err[0].error)
    return {"ok": ok, "how": "ingested", "error": err[0].error if err else None,
            "problems": [] if ok else [f"an unknown label at {where} was ingested without an error"]}


def _cli() -> list[str]:
    exe = Path(sys.executable).with_name("cxrzoo")
    return [str(exe)] if exe.exists() else [sys.executable, "-c", "from cxrzoo.cli import main; main()"]


def _kills(spark, args, root: Path, ir: Path, ph: dict, labels: list[str], rate: float) -> list[dict]:
    out = root / "killed-scores.parquet"
    cmd = _cli() + ["-q", "--log-file", str(root / "kill.log"), "score", "--model", str(ir), "--images", ph["dir"],
                    "--out", str(out), "--batch-size", str(args.batch), "--master", "local[2]",
                    "--driver-memory", args.driver_memory]
    rng = np.random.default_rng(args.seed + 1)
    rounds = []
    expected = len(ph["files"]) / rate + COLD_START_S
    for i in range(args.kills):
        rec = kill_and_rerun(cmd, out, expected, rng, root / "kill.log")
        rec["expected_write_s"], expected = round(expected, 1), rec["rerun_write_s"] or expected
        rec["replacing_an_output"] = i > 0
        acc = {"ok": False, "problems": [f"the rerun failed (exit code {rec['rerun_rc']}); see {root / 'kill.log'}"]}
        if rec["rerun_rc"] == 0 and out.exists():
            def check() -> tuple[dict, float]:
                rows, key = score_rows(spark, out, labels, False)
                return account(rows, ph, key, "has_probs"), 0.0

            got: dict[str, dict] = {}
            _guarded(got, "kill", check)
            acc = got["kill"]
        if rec["siblings_after_rerun"]:
            acc["ok"] = False
            acc["problems"] = acc.get("problems", []) + [f"hidden siblings left: {rec['siblings_after_rerun']}"]
        if not rec["killed"]:
            acc["ok"] = False
            acc["problems"] = acc.get("problems", []) + ["no run could be killed before it finished"]
        rec["accounting"] = acc
        rounds.append(rec)
        log.info("kill round %d: %s, rerun %.0f s: %d rows for %d files -> %s", i + 1,
                 "killed" if rec["killed"] else "not killed", rec["rerun_s"], acc.get("rows", 0), len(ph["files"]),
                 "OK" if acc["ok"] else "FAIL")
    return rounds


def _guarded(checks: dict, name: str, fn) -> float | None:
    """``checks[name], seconds = fn()``; a job that raises is a failed check naming the exception (so a crash on
    a bad file is reported with the rest), and None."""
    try:
        checks[name], dt = fn()
        return dt
    except Exception as e:  # noqa: BLE001 - reported as the check's failure, the soak goes on
        log.exception("%s raised", name)
        msg = str(e).strip().splitlines()[0][:400] if str(e).strip() else ""
        checks[name] = {"ok": False, "problems": [f"the job raised {type(e).__name__}: {msg}"]}
        return None


def make_data(args, root: Path) -> dict:
    """The soak's files and their ground truth (before Spark starts: the synth's forked workers would otherwise
    inherit, and on exit close, the driver's py4j connections)."""
    checkpoint = max(1, min(args.checkpoint, args.n // 4))
    return build(root / "data", args.n, args.size, args.seed, checkpoint, args.bad_rate)


def run(spark, args, root: Path, truth: dict | None = None) -> dict:
    """The whole soak on ``spark``; the result (``ok`` and every measurement)."""
    from cxrzoo.score import read_card

    truth = truth if truth is not None else make_data(args, root)
    checkpoint = max(1, min(args.checkpoint, args.n // 4))
    ir = _ir(root)
    labels = list(read_card(ir)["labels"])
    checks: dict[str, dict] = {}
    _guarded(checks, "bad_label_format", lambda: (_bad_format(spark, truth, root / "bad-format.parquet"), 0.0))
    rates: dict[str, dict] = {"ingest": {}, "score_heatmaps_off": {}, "score_heatmaps_on": {}}
    memory: dict[str, dict] = {}
    with ProcSampler(jvm_pid(spark)) as sampler:
        for phase in ("first", "all"):
            ph = truth["phases"][phase]
            files = len(ph["files"])
            dt = _guarded(checks, f"ingest_{phase}", lambda: _ingest(spark, ph, root / f"ingest-{phase}.parquet"))
            rates["ingest"][phase] = files / dt if dt else None
            for heat in (False, True):
                name = f"score_heatmaps_{'on' if heat else 'off'}"
                dt = _guarded(checks, f"{name}_{phase}", lambda: _score(
                    spark, ir, ph, root / f"{name}-{phase}.parquet", args.batch, heat, labels))
                rates[name][phase] = files / dt if dt else None
            memory[phase] = sampler.checkpoint()
            memory[phase]["heap"] = jvm_heap(spark)
            memory[phase]["images"] = checkpoint if phase == "first" else args.n
            log.info("%s (%d files): ingest %s, scoring %s / %s images/s (heatmaps off / on); peaks: %s",
                     phase, files, *(_rate(rates[k][phase]) for k in rates),
                     ", ".join(f"{k} {v:.0f}" for k, v in memory[phase]["cumulative"].items()))
    mem_ok, bars = no_growth(memory["first"], memory["all"], args.mem_factor, args.mem_slack_mb)
    checks["memory_no_growth"] = {"ok": mem_ok, "bar": f"peak after {args.n} <= {args.mem_factor} x peak after "
                                  f"{checkpoint} + {args.mem_slack_mb:.0f} MB (JVM RSS: + its committed heap's "
                                  "growth)", "metrics": bars,
                                  "problems": [f"{k}: {v['end']} MB > {v['bar']} MB" for k, v in bars.items()
                                               if not v["ok"]]}
    kills = _kills(spark, args, root, ir, truth["phases"]["all"], labels, rates["score_heatmaps_off"]["all"] or 100.0)
    for i, k in enumerate(kills):
        checks[f"kill_rerun_{i + 1}"] = k["accounting"]
    return {"checks": checks, "rates": rates, "memory": memory, "kills": kills, "truth": truth,
            "checkpoint": checkpoint}


def _report(args, res: dict, root: Path | None) -> dict:
    checks = res["checks"]
    log.info("%-28s %6s %s", "check", "result", "first problem")
    for name, c in checks.items():
        log.info("%-28s %6s %s", name, "OK" if c["ok"] else "FAIL", (c.get("problems") or [""])[0][:200])
    for name, c in checks.items():
        for p in (c.get("problems") or [])[1:10]:
            log.warning("%s: %s", name, p[:300])
    for k, v in checks["memory_no_growth"]["metrics"].items():
        log.info("memory %-26s after %6d: %8.1f MB  after %6d: %8.1f MB  %s", k, res["checkpoint"], v["checkpoint"],
                 args.n, v["end"], f"(bar {v['bar']:.1f}) {'OK' if v['ok'] else 'FAIL'}" if v["bar"] else "")
    ph = res["truth"]["phases"]["all"]
    ok = all(c["ok"] for c in checks.values())
    out = {"benchmark": "soak", "ok": ok, "n": args.n, "size": args.size, "checkpoint": res["checkpoint"],
           "files_on_disk": len(ph["files"]), "kinds": kind_counts(ph), "cpu": cpu_name(),
           "images_per_s": {k: {p: r and round(r, 1) for p, r in v.items()} for k, v in res["rates"].items()},
           "checks": {k: c["ok"] for k, c in checks.items()},
           "problems": {k: c["problems"][:5] for k, c in checks.items() if c.get("problems")},
           "ingest_report": checks["ingest_all"].get("report", {}).get("counts"),
           "memory_mb": {k: {"after_checkpoint": v["checkpoint"], "after_n": v["end"], "bar": v["bar"]}
                         for k, v in checks["memory_no_growth"]["metrics"].items()},
           "memory_window_mb": {p: m["window"] for p, m in res["memory"].items()},
           "worker_processes_seen": res["memory"]["all"]["worker_processes_seen"],
           "kills": [{"killed_after_write_start_s": k["tries"][-1].get("killed_after_write_start_s"),
                      "expected_write_s": k["expected_write_s"], "replacing_an_output": k["replacing_an_output"],
                      "attempts": len(k["tries"]), "survivors_after_grace": k["tries"][-1].get("survivors_after_grace"),
                      "session_processes_after_kill": k["tries"][-1].get("session_processes_after_kill"),
                      "rerun_s": k["rerun_s"], "rows": k["accounting"].get("rows")} for k in res["kills"]],
           "workdir": str(root) if root else None, "time": time.strftime("%Y-%m-%d %H:%M")}
    log.info("soak %s: %d files (%s), %d checks, %d failed", "OK" if ok else "FAILED", len(ph["files"]),
             ", ".join(f"{v} {k}" for k, v in out["kinds"].items()), len(checks),
             sum(not c["ok"] for c in checks.values()))
    return out


def main(argv: list[str] | None = None) -> int:
    if argv is not None:
        sys.argv[1:] = argv
    args = bench_args(__doc__, repeats=1, add=_options)
    from cxrzoo.session import get_spark

    root = Path(args.workdir) if args.workdir else Path(tempfile.mkdtemp(prefix="cxrzoo-soak-"))
    root.mkdir(parents=True, exist_ok=True)
    try:
        truth = make_data(args, root)
        spark = get_spark(master="local[2]", driver_memory=args.driver_memory, app_name="cxrzoo-soak")
        out = _report(args, run(spark, args, root, truth), root if args.workdir else None)
    finally:
        if not args.workdir:
            shutil.rmtree(root, ignore_errors=True)
    emit(json.dumps(out))
    return 0 if out["ok"] else 1


if __name__ == "__main__":
    raise SystemExit(main())
