"""Ingest decode microbenchmark: 1024² NIH PNG → 256² gray, images/s on one core.

Same images for every contender, median of repeats after a warm-up:
cxrzoo's PNG path (libdeflate + numba unfilter + fused block-mean downscale) vs
``cv2.imdecode`` + ``cv2.resize(INTER_AREA)`` vs PIL (when installed) vs the seed's
reader, BigDL's ``NNImageReader.readImages(..., resizeH=256, resizeW=256)`` on
Spark ``local[1]`` (with ``--seed-reader``; it starts a JVM).

    .venv/bin/python benchmarks/bench_decode.py [--repeats 5] [--seed-reader] [--json]
"""
from __future__ import annotations

import io
import json
import logging
import tempfile
from pathlib import Path

import cv2
import numpy as np

from _common import bench_args, cpu_name, emit, median_seconds

log = logging.getLogger("bench_decode")
SHARED = Path(__file__).resolve().parents[2] / "shared" / "data" / "nih-sample"


def corpus() -> tuple[list[bytes], str]:
    """Real 1024² NIH PNGs when ../shared/data is there, else synthetic ones."""
    files = [p for p in sorted(SHARED.glob("*.png"))] if SHARED.is_dir() else []
    data = [p.read_bytes() for p in files]
    data = [d for d in data if cv2.imdecode(np.frombuffer(d, np.uint8), cv2.IMREAD_GRAYSCALE).shape == (1024, 1024)]
    if data:
        return data, f"{len(data)} real NIH PNGs"
    from cxrzoo.synth import render
    from cxrzoo.synth.pngwrite import encode_gray_png

    return [encode_gray_png(render("Effusion", 1024, i)) for i in range(12)], "12 synthetic PNGs"


def rate(fn, data: list[bytes], repeats: int) -> float:
    """Median images/s of ``fn`` over ``data``."""
    return len(data) / median_seconds(lambda: [fn(d) for d in data], repeats)


def seed_reader_rate(data: list[bytes], repeats: int) -> float:
    """BigDL NNImageReader on local[1]: images/s for read + decode + resize (JVM), collected."""
    from bigdl.dllib.nnframes import NNImageReader

    from cxrzoo.session import get_spark

    spark = get_spark(master="local[1]", app_name="bench-decode")
    with tempfile.TemporaryDirectory() as tmp:
        for i, d in enumerate(data):
            Path(tmp, f"{i:08d}_000.png").write_bytes(d)
        return len(data) / median_seconds(
            lambda: NNImageReader.readImages(tmp, spark.sparkContext, resizeH=256, resizeW=256,
                                             image_codec=1).count(), repeats)


def main() -> None:
    """Run and print the table, then one JSON line."""
    args = bench_args(__doc__, 5, lambda ap: ap.add_argument(
        "--seed-reader", action="store_true", help="also time BigDL's NNImageReader (starts Spark)"))
    cv2.setNumThreads(1)
    from cxrzoo.ingest import decode_gray

    data, what = corpus()
    res = {"benchmark": "decode", "images": what, "cpu": cpu_name(), "cores_used": 1}
    res["cxrzoo"] = rate(lambda d: decode_gray(d, 256), data, args.repeats)
    res["cv2"] = rate(lambda d: cv2.resize(cv2.imdecode(np.frombuffer(d, np.uint8), cv2.IMREAD_GRAYSCALE),
                                           (256, 256), interpolation=cv2.INTER_AREA), data, args.repeats)
    try:
        from PIL import Image

        res["pil"] = rate(lambda d: np.asarray(Image.open(io.BytesIO(d)).convert("L").resize((256, 256), Image.BOX)),
                          data, args.repeats)
    except ImportError:
        res["pil"] = None
    if args.seed_reader:
        from cxrzoo.cli import _stdout_to_stderr

        with _stdout_to_stderr():  # BigDL prints progress on stdout; keep stdout for the JSON line
            res["seed_nnimagereader"] = seed_reader_rate(data, args.repeats)
    else:
        res["seed_nnimagereader"] = None
    res["speedup_vs_cv2"] = res["cxrzoo"] / res["cv2"]
    log.info("decode + resize, 1024² PNG → 256² gray, one core, %s (%s)", what, res["cpu"])
    log.info("%-28s %10s %8s", "reader", "images/s", "vs cv2")
    for key, name in [("cxrzoo", "cxrzoo"), ("cv2", "cv2.imdecode + resize"), ("pil", "PIL"),
                      ("seed_nnimagereader", "BigDL NNImageReader")]:
        if res[key] is not None:
            log.info("%-28s %10.1f %7.2fx", name, res[key], res[key] / res["cv2"])
    emit(json.dumps({k: (round(v, 2) if isinstance(v, float) else v) for k, v in res.items()}))  # noqa: T201


if __name__ == "__main__":
    main()
