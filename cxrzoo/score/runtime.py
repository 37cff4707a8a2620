"""Load an exported IR once per Python worker and run it on batches of gray images."""
from __future__ import annotations

import json
import threading
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import openvino as ov

from cxrzoo.export.ir import CARD, XML

_CACHE: dict[tuple[str, str], "CompiledScorer"] = {}
_LOCK = threading.Lock()


class NotAnIRDirError(ValueError):
    """The directory is not an exported cxrzoo OpenVINO model."""


@dataclass
class CompiledScorer:
    """A compiled model with its card."""

    compiled: ov.CompiledModel
    card: dict

    @property
    def image_size(self) -> int:
        """Side of the square uint8 images the model takes."""
        return int(self.card["input"]["shape"][1])

    @property
    def labels(self) -> list[str]:
        """Output label names."""
        return list(self.card["labels"])

    def infer(self, images: np.ndarray) -> np.ndarray:
        """``(N, S, S)`` uint8 → ``(N, classes)`` float32 probabilities."""
        if images.dtype != np.uint8 or images.ndim != 3 or images.shape[1:] != (self.image_size,) * 2:
            raise ValueError(f"expected (N, {self.image_size}, {self.image_size}) uint8, got "
                             f"{images.dtype} {images.shape}")
        if len(images) == 0:
            return np.zeros((0, len(self.labels)), np.float32)
        return np.asarray(self.compiled(images)[0], dtype=np.float32)


def read_card(ir_dir: str | Path) -> dict:
    """The model card of an exported IR directory."""
    d = Path(ir_dir)
    if not (d / XML).exists() or not (d / CARD).exists():
        raise NotAnIRDirError(f"{d} is not an exported cxrzoo IR (need {XML} and {CARD}); "
                              "run `cxrzoo export --model MODEL_DIR --out IR_DIR`")
    return json.loads((d / CARD).read_text())


def load_scorer(ir_dir: str | Path, precision: str = "f32", threads: int | None = None) -> CompiledScorer:
    """Compile ``ir_dir`` for the CPU, once per process (cached by path and precision).

    ``precision`` is OpenVINO's ``INFERENCE_PRECISION_HINT``: ``f32`` keeps the
    exported model's answers; ``bf16`` is faster where the CPU supports it.
    """
    key = (str(Path(ir_dir).resolve()), precision)
    with _LOCK:
        if key not in _CACHE:
            card = read_card(ir_dir)
            config = {"INFERENCE_PRECISION_HINT": precision, "PERFORMANCE_HINT": "THROUGHPUT"}
            if threads:
                config["INFERENCE_NUM_THREADS"] = int(threads)
            compiled = ov.Core().compile_model(str(Path(ir_dir) / XML), "CPU", config)
            _CACHE[key] = CompiledScorer(compiled, card)
        return _CACHE[key]
