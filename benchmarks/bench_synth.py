"""Synthetic data generation throughput: cxrzoo's phantom + PNG writer vs OpenCV's PNG encoder.

One core, the same images for both: median seconds per image over repeats after a warm-up.
The brief's bar is >= 50 images/s per core at 1024² (render + encode).

    .venv/bin/python benchmarks/bench_synth.py [--size 1024] [--n 20] [--repeats 5] [--json]
"""
from __future__ import annotations

import json
import logging
import os
import statistics

import cv2
from _common import bench_args, cpu_name, emit, median_seconds

from cxrzoo.synth.cohort import sample_cohort
from cxrzoo.synth.phantom import render
from cxrzoo.synth.pngwrite import encode_gray_png

log = logging.getLogger("bench_synth")


def _median_rate(fn, jobs, repeats: int) -> float:
    return len(jobs) / median_seconds(lambda: fn(jobs), repeats)


def main() -> None:
    """Run the benchmark and print a table, then one JSON line."""
    def add(ap) -> None:
        ap.add_argument("--size", type=int, default=1024)
        ap.add_argument("--n", type=int, default=20, help="images per repeat")

    args = bench_args(__doc__, 5, add)
    cv2.setNumThreads(1)
    jobs = [(s.findings, s.seed, s.view) for s in sample_cohort(args.n, seed=1)]
    images = [render(f, args.size, seed, v) for f, seed, v in jobs]

    render_only = _median_rate(lambda js: [render(f, args.size, s, v) for f, s, v in js], jobs, args.repeats)
    ours = _median_rate(lambda js: [encode_gray_png(render(f, args.size, s, v)) for f, s, v in js], jobs,
                        args.repeats)
    opencv = _median_rate(lambda js: [cv2.imencode(".png", render(f, args.size, s, v))[1] for f, s, v in js],
                          jobs, args.repeats)
    size_ours = statistics.mean(len(encode_gray_png(im)) for im in images)
    size_cv = statistics.mean(len(cv2.imencode(".png", im)[1]) for im in images)
    res = {"benchmark": "synth", "size": args.size, "cpu": cpu_name(), "cores_used": 1, "os_cores": os.cpu_count(),
           "render_images_per_s": round(render_only, 1), "render_png_images_per_s": round(ours, 1),
           "render_cv2png_images_per_s": round(opencv, 1), "speedup_vs_cv2png": round(ours / opencv, 2),
           "png_kb_ours": round(size_ours / 1024), "png_kb_cv2": round(size_cv / 1024)}
    log.info("synthetic %d² radiographs, one core (%s), median of %d × %d images", args.size, res["cpu"],
             args.repeats, args.n)
    log.info("%-34s %10s", "pipeline", "images/s")
    log.info("%-34s %10.1f", "render only", render_only)
    log.info("%-34s %10.1f   (%d KB/file)", "render + cxrzoo PNG writer", ours, res["png_kb_ours"])
    log.info("%-34s %10.1f   (%d KB/file)", "render + cv2.imencode (baseline)", opencv, res["png_kb_cv2"])
    emit(json.dumps(res))  # noqa: T201 - the benchmark's one JSON line


if __name__ == "__main__":
    main()
