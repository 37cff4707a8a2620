"""Augmentation microbenchmark: 256² uint8 gray → 224² 3-channel float32 CHW, images/s on one core.

Same images for every contender, median of repeats after a warm-up: cxrzoo's
batch kernel (one numba pass, written into a preallocated buffer) vs the obvious
per-image NumPy/OpenCV chain (crop, cv2.flip, brightness, clip, 3 channels,
normalize) vs, with ``--bigdl``, BigDL's own chain in the JVM on the same images
(see ``_bigdl_chain.py``; it starts a Spark ``local[1]`` JVM).

    .venv/bin/python benchmarks/bench_augment.py [--batch 64] [--repeats 7] [--bigdl] [--json]
"""
from __future__ import annotations

import json
import logging

import cv2
import numpy as np

from _common import bench_args, cpu_name, emit, median_seconds

from cxrzoo.preprocess.chain import ChainConfig, apply_chain, row_params

log = logging.getLogger("bench_augment")


def per_image_chain(images: np.ndarray, keys: list[str], cfg: ChainConfig) -> list[np.ndarray]:
    """The baseline: one image at a time with NumPy and OpenCV (decisions drawn the same way)."""
    p = row_params(keys, images.shape[1], cfg, 0, 0)
    mean = np.array(cfg.mean, np.float32)[:, None, None]
    out = []
    for i, img in enumerate(images):
        c = img[p.y0[i]:p.y0[i] + cfg.crop, p.x0[i]:p.x0[i] + cfg.crop]
        if p.flip[i]:
            c = cv2.flip(c, 1)
        x = np.minimum(c.astype(np.float32) + p.delta[i], 255.0)
        out.append(np.repeat(x[None], 3, axis=0) - mean)
    return out


def main() -> None:
    """Run and print the table, then one JSON line."""
    def extra(ap):
        ap.add_argument("--batch", type=int, default=64)
        ap.add_argument("--bigdl", action="store_true", help="also time BigDL's JVM chain (starts Spark)")
        ap.add_argument("--bigdl-images", type=int, default=2048)

    args = bench_args(__doc__, 7, extra)
    cv2.setNumThreads(1)
    rng = np.random.default_rng(0)
    images = rng.integers(0, 256, (args.batch, 256, 256), dtype=np.uint8)
    keys = [f"{i:08d}_000.png" for i in range(args.batch)]
    cfg = ChainConfig()
    buf = np.empty((args.batch, 3, 224, 224), np.float32)

    def timed(fn) -> float:
        return args.batch / median_seconds(fn, args.repeats)

    ours = timed(lambda: apply_chain(images, keys, cfg, out=buf))
    base = timed(lambda: per_image_chain(images, keys, cfg))
    np.testing.assert_allclose(np.stack(per_image_chain(images, keys, cfg)), apply_chain(images, keys, cfg),
                               atol=1e-4)
    res = {"benchmark": "augment", "cpu": cpu_name(), "cores_used": 1, "batch": args.batch,
           "cxrzoo_images_per_s": round(ours, 1), "numpy_cv2_images_per_s": round(base, 1),
           "speedup_vs_numpy_cv2": round(ours / base, 2),
           "cxrzoo_output_gb_per_s": round(ours * 3 * 224 * 224 * 4 / 1e9, 2), "bigdl_jvm_chain": None}
    if args.bigdl:
        from _bigdl_chain import bigdl_jvm_chain_rate

        many = np.concatenate([images] * -(-args.bigdl_images // args.batch))[:args.bigdl_images]
        jvm = bigdl_jvm_chain_rate(many, args.repeats)
        res["bigdl_jvm_chain"] = None if jvm["images_per_s"] is None else round(jvm["images_per_s"], 1)
        res["speedup_vs_bigdl_jvm"] = None if jvm["images_per_s"] is None else round(ours / jvm["images_per_s"], 2)
    log.info("augmentation 256² u8 → 224² ×3 f32, one core (%s), batch %d", res["cpu"], args.batch)
    log.info("%-32s %10s", "chain", "images/s")
    log.info("%-32s %10.0f   (%.2f GB/s written)", "cxrzoo batch kernel", ours, res["cxrzoo_output_gb_per_s"])
    log.info("%-32s %10.0f", "per-image NumPy/OpenCV", base)
    if res["bigdl_jvm_chain"]:
        log.info("%-32s %10.0f   (cxrzoo %.1fx)", "BigDL JVM chain (local[1])", res["bigdl_jvm_chain"],
                 res["speedup_vs_bigdl_jvm"])
    emit(json.dumps(res))  # noqa: T201


if __name__ == "__main__":
    main()
