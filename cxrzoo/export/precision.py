"""Reduced-precision exports: BF16 (a runtime hint) and INT8 (NNCF post-training quantization), each checked
against FP32 on labelled images before it is accepted.

The exported graph takes gray uint8 images and does its own preprocessing, so calibration and checking need
nothing but ingested images: an ingested Parquet dataset is read with pyarrow (no Spark, no BigDL).
"""
from __future__ import annotations

import logging
from dataclasses import dataclass
from pathlib import Path
from typing import Sequence

import numpy as np
import openvino as ov

from cxrzoo.bootstrap import auc_table
from cxrzoo.labels import LABELS, target_array
from cxrzoo.errors import InputError

log = logging.getLogger(__name__)

PRECISIONS = ("fp32", "bf16", "int8")
MAX_AUC_DROP = 0.005
CALIBRATION_IMAGES = 300


class PrecisionRefusedError(InputError):
    """The precision cannot be exported: the CPU lacks it, or it moves the mean AUC too far from FP32."""


def cpu_supports_bf16(core: ov.Core | None = None) -> bool:
    """Whether OpenVINO's CPU plugin computes natively in BF16 here (AVX512_BF16 or AMX)."""
    caps = (core or ov.Core()).get_property("CPU", "OPTIMIZATION_CAPABILITIES")
    return "BF16" in [str(c).upper() for c in caps]


def read_labelled_images(parquet: str | Path, size: int, limit: int | None = None, seed: int = 0,
                         label_names: Sequence[str] = LABELS) -> tuple[np.ndarray, np.ndarray]:
    """Decoded ``(N, size, size)`` uint8 images and ``(N, len(label_names))`` labels of an ingested Parquet
    dataset (the model's labels picked from the harmonised ones, NaN where ``label_mask`` is 0).

    Rows with an error, no image or another image size are skipped; with ``limit``, a seeded random
    subset of that many rows is taken.
    """
    import pyarrow.parquet as pq

    names = pq.ParquetDataset(str(parquet)).schema.names
    cols = ["image_index", "image", "labels"] + (["label_mask"] if "label_mask" in names else [])
    table = pq.read_table(str(parquet), columns=cols)
    idx = np.argsort(np.array(table.column("image_index").to_pylist(), dtype=object))  # stable order
    images = table.column("image").to_pylist()
    labels = table.column("labels").to_pylist()
    masks = table.column("label_mask").to_pylist() if "label_mask" in cols else None
    ok = [i for i in idx if images[i] is not None and len(images[i]) == size * size and labels[i] is not None]
    if not ok:
        raise InputError(f"{parquet} has no {size}x{size} images with labels (ingest with --size {size})")
    if limit is not None and len(ok) > limit:
        ok = sorted(np.random.default_rng(seed).choice(ok, limit, replace=False).tolist())
    x = np.frombuffer(b"".join(images[i] for i in ok), np.uint8).reshape(len(ok), size, size)
    return x, target_array([labels[i] for i in ok], [masks[i] for i in ok] if masks else None, label_names)


def infer_all(compiled: ov.CompiledModel, images: np.ndarray, batch: int = 16) -> np.ndarray:
    """Probabilities for every image, in batches."""
    out = [np.asarray(compiled(images[i:i + batch], share_inputs=False)[0], np.float32)  # see SHARED_INPUTS_CORRUPT
           for i in range(0, len(images), batch)]
    return np.concatenate(out) if out else np.zeros((0, 0), np.float32)


def quantize_int8(model: ov.Model, calibration: np.ndarray, batch: int = 1) -> ov.Model:
    """NNCF post-training INT8 quantization of ``model`` with ``calibration`` images (uint8, N×S×S)."""
    import nncf

    items = [calibration[i:i + batch] for i in range(0, len(calibration), batch)]
    return nncf.quantize(model, nncf.Dataset(items), subset_size=len(calibration),
                         preset=nncf.QuantizationPreset.PERFORMANCE)


@dataclass
class PrecisionCheck:
    """FP32 vs a reduced precision on the same labelled images."""

    precision: str
    n: int
    fp32: dict
    reduced: dict
    max_drop: float = MAX_AUC_DROP

    @property
    def drop(self) -> float:
        """Mean AUC of FP32 minus that of the reduced precision."""
        return float(self.fp32["mean_auc"] - self.reduced["mean_auc"])

    def as_dict(self) -> dict:
        """For the model card."""
        return {"precision": self.precision, "images": self.n, "fp32": self.fp32, self.precision: self.reduced,
                "mean_auc_drop": self.drop, "max_mean_auc_drop": self.max_drop}

    def table(self) -> str:
        """Per-disease AUC side by side."""
        lines = [f"{'label':<20}{'FP32':>8}{self.precision.upper():>8}"]
        for name, a in self.fp32["auc"].items():
            b = self.reduced["auc"][name]
            lines.append(f"{name:<20}{(f'{a:8.4f}' if a is not None else '     n/a')}"
                         f"{(f'{b:8.4f}' if b is not None else '     n/a')}")
        lines.append(f"{'mean':<20}{self.fp32['mean_auc']:8.4f}{self.reduced['mean_auc']:8.4f}  "
                     f"(drop {self.drop:+.4f}, allowed {self.max_drop})")
        return "\n".join(lines)


def check_precision(fp32_model: ov.Model, reduced_model: ov.Model, precision: str, images: np.ndarray,
                    labels_y: np.ndarray, label_names: list[str], max_drop: float = MAX_AUC_DROP) -> PrecisionCheck:
    """Score ``images`` with both models and refuse the reduced one if the mean AUC drops more than ``max_drop``."""
    core = ov.Core()
    f32 = core.compile_model(fp32_model, "CPU", {"INFERENCE_PRECISION_HINT": "f32"})
    hint = "bf16" if precision == "bf16" else "f32"
    red = core.compile_model(reduced_model, "CPU", {"INFERENCE_PRECISION_HINT": hint})
    check = PrecisionCheck(precision, len(images), auc_table(labels_y, infer_all(f32, images), label_names),
                           auc_table(labels_y, infer_all(red, images), label_names), max_drop)
    if check.fp32["mean_auc"] is None:
        raise InputError("the check images have no label with both positives and negatives; use another set")
    log.info("%s vs FP32 on %d images:\n%s", precision.upper(), len(images), check.table())
    if check.drop > max_drop:
        raise PrecisionRefusedError(f"{precision} lowers the mean AUC by {check.drop:.4f} (> {max_drop}) on "
                                    f"{len(images)} images; export fp32, or try int8 with more calibration images\n"
                                    + check.table())
    return check
